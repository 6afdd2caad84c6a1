import type { CommandModel, Operand } from './describe.js';
import { COLOR_OPTION, type Completion, type OptionSpec, type OptionTable } from './options.js';

/**
 * Shell completion for kabi, written from the commands' option tables (describe.ts): command
 * and subcommand names, every option of each, the values an option takes (its choices, a
 * directory, a file, an installed kernel), and the operands (module files, kernels).
 * Installed kernels are listed from the root on the command line (--root), else $KABI_ROOT,
 * else /.
 */

interface Context {
  /** "check", "initramfs update"… */
  readonly key: string;
  readonly options: OptionTable;
  readonly operand: Operand;
}

/** An operand as an option value would be completed. */
const asValue = (o: Operand): OptionSpec => (typeof o === 'string' ? { type: 'string', complete: o } : { type: 'string', choices: o });

/** Every place on a command line with its own options: each command, each subcommand. */
function contexts(models: readonly CommandModel[]): Context[] {
  const out: Context[] = [];
  for (const m of models) {
    if (m.subcommands.length === 0) out.push({ key: m.name, options: withGlobal(m.options), operand: m.operand });
    for (const s of m.subcommands) out.push({ key: `${m.name} ${s.name}`, options: withGlobal(s.options), operand: s.operand });
  }
  return out;
}

const withGlobal = (t: OptionTable): OptionTable => ({ ...t, color: COLOR_OPTION });

const spellings = (name: string, o: OptionSpec) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])];
const valueKind = (o: OptionSpec): Completion | 'choices' => (o.choices ? 'choices' : (o.complete ?? (o.arg === 'DIR' ? 'dir' : 'file')));
/** A description for a menu: its first clause, without the characters shells treat specially. */
const short = (text: string | undefined) => (text ?? '').split(';')[0]!.replace(/[`$"'\\[\]:]/g, '').replace(/\s+/g, ' ').trim().slice(0, 70);

const varName = (key: string) => key.replace(/[^a-z0-9]/g, '_');

// ---- bash ---------------------------------------------------------------------------------

export function bashCompletion(models: readonly CommandModel[]): string {
  const ctx = contexts(models);
  const withSubs = models.filter((m) => m.subcommands.length > 0);
  let s = `# bash completion for kabi (kabi completion bash); generated from kabi's option tables.
# Load it with: source <(kabi completion bash)   or install it as
# /usr/share/bash-completion/completions/kabi

_kabi_kernels() {
  local root=\${KABI_ROOT:-/} i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in
      --root) root=\${COMP_WORDS[i+1]} ;;
      --root=*) root=\${COMP_WORDS[i]#--root=} ;;
    esac
  done
  local d
  for d in "$root/lib/modules"/* "$root/usr/lib/modules"/*; do
    [[ -d $d ]] && printf '%s\\n' "\${d##*/}"
  done | sort -u
}

_kabi() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local i w cmd= i_cmd=0 key
  # The command is the first word that is not an option (nor --color's value), the subcommand the next.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ $w == --color && \${COMP_WORDS[i+1]} == @(auto|always|never) ]]; then ((i++)); continue; fi
    [[ $w == -* ]] && continue
    if [[ -z $cmd ]]; then cmd=$w; i_cmd=$i
    else break; fi
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W ${quoteWords(models.map((m) => m.name))} -- "$cur"))
    return
  fi
  key=$cmd
  case $cmd in
`;
  for (const m of withSubs) {
    s += `    ${m.name})
      if ((COMP_CWORD == i_cmd + 1)); then COMPREPLY=($(compgen -W ${quoteWords(m.subcommands.map((x) => x.name))} -- "$cur")); return; fi
      key="$cmd \${COMP_WORDS[i_cmd+1]}" ;;
`;
  }
  s += `  esac
  # An option's value.
  case "$key:$prev" in
`;
  for (const c of ctx) {
    for (const [name, o] of Object.entries(c.options)) {
      if (o.type !== 'string') continue;
      const pats = spellings(name, o).map((sp) => `"${c.key}:${sp}"`).join('|');
      s += `    ${pats}) ${bashValue(o)}; return ;;\n`;
    }
  }
  s += `  esac
  if [[ $cur == -* ]]; then
    case $key in
`;
  for (const c of ctx) {
    const words = Object.entries(c.options).flatMap(([n, o]) => spellings(n, o));
    s += `      "${c.key}") COMPREPLY=($(compgen -W ${quoteWords(words)} -- "$cur")) ;;\n`;
  }
  s += `    esac
    return
  fi
  case $key in
`;
  for (const c of ctx) if (c.operand !== 'none') s += `    "${c.key}") ${bashValue(asValue(c.operand))} ;;\n`;
  s += `  esac
}
complete -F _kabi kabi
`;
  return s;
}

function bashValue(o: OptionSpec): string {
  const kind = valueKind(o);
  switch (kind) {
    case 'choices':
      return `COMPREPLY=($(compgen -W ${quoteWords(o.choices!)} -- "$cur"))`;
    case 'dir':
      return 'COMPREPLY=($(compgen -d -- "$cur"))';
    case 'kernel':
      return 'COMPREPLY=($(compgen -W "$(_kabi_kernels)" -- "$cur"))';
    case 'command':
      return 'COMPREPLY=($(compgen -c -- "$cur"))';
    case 'none':
      return 'COMPREPLY=()';
    case 'module':
    case 'file':
      return 'COMPREPLY=($(compgen -f -- "$cur"))';
  }
}

function quoteWords(words: readonly string[]): string {
  return `'${words.join(' ')}'`;
}

// ---- zsh ----------------------------------------------------------------------------------

export function zshCompletion(models: readonly CommandModel[]): string {
  let s = `#compdef kabi
# zsh completion for kabi (kabi completion zsh); generated from kabi's option tables.
# Install it as _kabi in a directory of $fpath, or load it with: source <(kabi completion zsh)

_kabi_kernels() {
  local root=\${KABI_ROOT:-/} i
  for ((i = 1; i < $#words; i++)); do
    case $words[i] in
      --root) root=$words[i+1] ;;
      --root=*) root=\${words[i]#--root=} ;;
    esac
  done
  local -a ks
  ks=($root/lib/modules/*(N-/:t) $root/usr/lib/modules/*(N-/:t))
  _describe -t kernels 'installed kernel' ks
}

`;
  for (const m of models) {
    if (m.subcommands.length === 0) {
      s += zshFunction(`_kabi_${varName(m.name)}`, m.options, m.operand);
      continue;
    }
    for (const sub of m.subcommands) s += zshFunction(`_kabi_${varName(m.name)}_${varName(sub.name)}`, sub.options, sub.operand);
    s += `_kabi_${varName(m.name)}() {
  local -a subcommands
  subcommands=(
${m.subcommands.map((x) => `    ${zshQuote(`${x.name}:${short(x.summary)}`)}`).join('\n')}
  )
  if (( CURRENT == 2 )); then
    _describe -t subcommands 'kabi ${m.name} subcommand' subcommands
    return
  fi
  local sub=$words[2]
  shift words
  (( CURRENT-- ))
  case $sub in
${m.subcommands.map((x) => `    ${x.name}) _kabi_${varName(m.name)}_${varName(x.name)} ;;`).join('\n')}
  esac
}

`;
  }
  s += `_kabi() {
  local -a commands
  commands=(
${models.map((m) => `    ${zshQuote(`${m.name}:${short(m.summary)}`)}`).join('\n')}
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'kabi command' commands
    return
  fi
  local cmd=$words[2]
  shift words
  (( CURRENT-- ))
  case $cmd in
${models.map((m) => `    ${m.name}) _kabi_${varName(m.name)} ;;`).join('\n')}
  esac
}

if [[ $funcstack[1] == _kabi ]]; then
  _kabi "$@"
else
  compdef _kabi kabi
fi
`;
  return s;
}

function zshFunction(fn: string, table: OptionTable, operand: Operand): string {
  const specs: string[] = [];
  for (const [name, o] of Object.entries(withGlobal(table))) {
    const desc = `[${short(o.help)}]`;
    const repeat = o.multiple ? "'*'" : '';
    if (o.type === 'boolean') {
      specs.push(o.short ? `${repeat}{-${o.short},--${name}}'${desc}'` : `${repeat}'--${name}${desc}'`);
    } else {
      const action = `:${(o.arg ?? 'value').replace(/[:\\]/g, '')}:${zshAction(o)}`;
      specs.push(o.short ? `${repeat}{-${o.short}+,--${name}=}'${desc}${action}'` : `${repeat}'--${name}=${desc}${action}'`);
    }
  }
  if (operand !== 'none') specs.push(`'*:operand:${zshAction(asValue(operand))}'`);
  return `${fn}() {
  _arguments -s -S \\
${specs.map((x) => `    ${x}`).join(' \\\n')}
}

`;
}

function zshAction(o: OptionSpec): string {
  switch (valueKind(o)) {
    case 'choices':
      return `(${o.choices!.join(' ')})`;
    case 'dir':
      return '_files -/';
    case 'kernel':
      return '_kabi_kernels';
    case 'command':
      return '_command_names -e';
    case 'none':
      return ' ';
    case 'module':
    case 'file':
      return '_files';
  }
}

/** A single-quoted zsh word. */
function zshQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

// ---- fish ---------------------------------------------------------------------------------

export function fishCompletion(models: readonly CommandModel[]): string {
  let s = `# fish completion for kabi (kabi completion fish); generated from kabi's option tables.
# Install it as ~/.config/fish/completions/kabi.fish, or load it with: kabi completion fish | source

function __kabi_kernels
    set -l root /
    set -q KABI_ROOT; and set root $KABI_ROOT
    set -l words (commandline -opc)
    for i in (seq (count $words))
        switch $words[$i]
            case --root
                set -l j (math $i + 1)
                test $j -le (count $words); and set root $words[$j]
            case '--root=*'
                set root (string replace -- --root= '' $words[$i])
        end
    end
    for d in $root/lib/modules/* $root/usr/lib/modules/*
        test -d $d; and basename $d
    end | sort -u
end

# The words that are not options: the command, then its subcommand.
function __kabi_words
    for w in (commandline -opc)[2..-1]
        string match -q -- '-*' $w; or echo $w
    end
end

function __kabi_needs_command
    test (count (__kabi_words)) -eq 0
end

function __kabi_using
    set -l w (__kabi_words)
    test (count $w) -ge (count $argv); or return 1
    for i in (seq (count $argv))
        test "$w[$i]" = "$argv[$i]"; or return 1
    end
end

function __kabi_needs_subcommand
    set -l w (__kabi_words)
    test (count $w) -eq 1; and test "$w[1]" = "$argv[1]"
end

complete -c kabi -f
`;
  for (const m of models) s += `complete -c kabi -n __kabi_needs_command -a ${m.name} -d ${fishQuote(short(m.summary))}\n`;
  for (const m of models) {
    if (m.subcommands.length === 0) {
      s += fishContext(`__kabi_using ${m.name}`, m.options, m.operand);
      continue;
    }
    for (const sub of m.subcommands) s += `complete -c kabi -n '__kabi_needs_subcommand ${m.name}' -a ${sub.name} -d ${fishQuote(short(sub.summary))}\n`;
    for (const sub of m.subcommands) s += fishContext(`__kabi_using ${m.name} ${sub.name}`, sub.options, sub.operand);
  }
  return s;
}

function fishContext(condition: string, table: OptionTable, operand: Operand): string {
  let s = '';
  const c = `-n '${condition}'`;
  for (const [name, o] of Object.entries(withGlobal(table))) {
    const names = `${o.short ? `-s ${o.short} ` : ''}-l ${name}`;
    const desc = `-d ${fishQuote(short(o.help))}`;
    if (o.type === 'boolean') {
      s += `complete -c kabi ${c} ${names} ${desc}\n`;
      continue;
    }
    s += `complete -c kabi ${c} ${names} ${fishValue(o)} ${desc}\n`;
  }
  if (operand !== 'none') s += `complete -c kabi ${c} ${fishValue(asValue(operand)).replace(/^-[rx] /, '')}\n`;
  return s;
}

function fishValue(o: OptionSpec): string {
  switch (valueKind(o)) {
    case 'choices':
      return `-x -a ${fishQuote(o.choices!.join(' '))}`;
    case 'dir':
      return "-x -a '(__fish_complete_directories)'";
    case 'kernel':
      return "-x -a '(__kabi_kernels)'";
    case 'command':
      return "-x -a '(__fish_complete_command)'";
    case 'none':
      return '-x';
    case 'module':
    case 'file':
      return '-r -F';
  }
}

function fishQuote(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** The completion script for `shell`. */
export function completionScript(shell: 'bash' | 'zsh' | 'fish', models: readonly CommandModel[]): string {
  return shell === 'bash' ? bashCompletion(models) : shell === 'zsh' ? zshCompletion(models) : fishCompletion(models);
}
