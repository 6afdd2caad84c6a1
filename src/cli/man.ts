import type { CommandModel } from './describe.js';
import { COLOR_OPTION, DRY_RUN_OPTION, HELP_OPTION, JSON_OPTION, ROOT_OPTION, SEMANTICS_OPTION, type OptionSpec, type OptionTable } from './options.js';

/**
 * kabi's man pages, in man(7) roff, written from the same models as completion (describe.ts):
 * kabi(1) lists the commands and what they share; kabi-COMMAND(1) gives a command's synopsis,
 * its --help text as the description, every option of its tables (per subcommand) with what
 * it does, the environment and the exit status. `npm run build` writes them to man/.
 */

export interface ManPage {
  /** File name, e.g. "kabi-check.1". */
  readonly file: string;
  readonly text: string;
}

/** Text made safe for roff: backslashes, a leading dot or quote, and option hyphens. */
function esc(text: string): string {
  return text
    .replaceAll('\\', '\\e')
    .replace(/(^|[\s([|,/=])-/g, '$1\\-')
    .replace(/^[.']/gm, '\\&$&')
    // Anything beyond ASCII as a groff Unicode escape: the page reads the same without preconv.
    .replace(/[^\x00-\x7f]/gu, (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`);
}

/** An option as the synopsis of OPTIONS spells it: \fB\-\-root\fR \fIDIR\fR, \fB\-k\fR \fIK\fR. */
function optionHead(name: string, o: OptionSpec, usage = ''): string {
  const arg = o.type === 'string' ? ` \\fI${esc(o.choices ? o.choices.join('|') : (o.arg ?? argFromUsage(usage, name) ?? 'VALUE'))}\\fR` : '';
  const forms = [...(o.short ? [`\\fB\\-${o.short}\\fR${arg}`] : []), `\\fB\\-\\-${esc(name).replaceAll('-', '\\-')}\\fR${arg}`];
  return forms.join(', ');
}

/** The value's name an option has in the usage lines: "--module PATH", "--strategy native|auto". */
function argFromUsage(usage: string, name: string): string | undefined {
  return new RegExp(`--${name}[ =]([A-Z][A-Z.]*|[a-z]+(?:\\|[a-z-]+)+)`).exec(usage)?.[1];
}

function optionsSection(table: OptionTable, help: string, heading?: string): string {
  const entries = Object.entries(table);
  if (entries.length === 0) return '';
  const { usage, body } = splitUsage(help);
  let out = heading ? `.SS ${esc(heading)}\n` : '';
  for (const [name, o] of entries) {
    let text = o.help ?? COMMON[name] ?? fromHelp(body, name) ?? 'See DESCRIPTION.';
    if (o.multiple) text = `${text.replace(/[.]?$/, '.')} May be given more than once.`;
    out += `.TP\n${optionHead(name, o, usage)}\n${esc(text)}\n`;
  }
  return out;
}

/** A --help text's usage block (the first line and its indented continuations) and the rest. */
function splitUsage(help: string): { usage: string; body: string } {
  const lines = help.split('\n');
  if (!/^Usage:/.test(lines[0] ?? '')) return { usage: '', body: help };
  let i = 1;
  while (i < lines.length && /^\s+\S/.test(lines[i]!)) i++;
  return { usage: lines.slice(0, i).join('\n'), body: lines.slice(i).join('\n') };
}

/** What the options every command spells the same way do, for a table that leaves it out. */
const COMMON: Readonly<Record<string, string>> = {
  json: JSON_OPTION.help,
  help: HELP_OPTION.help,
  'dry-run': DRY_RUN_OPTION.help,
  root: ROOT_OPTION.help,
  semantics: SEMANTICS_OPTION.help,
};

/**
 * An option's line in the --help text, for a table without one: its entry in an option list
 * ("  --store DIR        a module store…", with its continuation lines), else a sentence of
 * prose that begins with it.
 */
export function fromHelp(help: string, name: string): string | undefined {
  const lines = help.split('\n');
  const head = new RegExp(`^(\\s*)(?:-\\w,? +)?--${name}(?:[ =][A-Z][A-Z.|]*)?( {2,})(\\S.*)$`);
  for (let i = 0; i < lines.length; i++) {
    const m = head.exec(lines[i]!);
    if (!m) continue;
    const column = lines[i]!.length - m[3]!.length;
    const text = [m[3]!];
    for (let j = i + 1; j < lines.length && /^\s+\S/.test(lines[j]!) && lines[j]!.search(/\S/) >= column; j++) text.push(lines[j]!.trim());
    return text.join(' ');
  }
  // A sentence of prose that begins with the option ("--module limits the question to…").
  const sentence = help
    .split(/(?<=[.!?])\s+|\n(?=\S)/)
    .map((x) => x.replace(/\s+/g, ' ').trim())
    .find((x) => x.startsWith(`--${name} `));
  return sentence?.trim();
}

/**
 * A --help text as roff: the usage lines go (they are the SYNOPSIS), indented blocks
 * (option lists, examples, tables) stay as they are laid out, other paragraphs are filled.
 */
function description(help: string): string {
  const lines = splitUsage(help.replace(/\r/g, '')).body.split('\n');
  const paragraphs: string[][] = [];
  let current: string[] = [];
  for (const l of lines) {
    if (l.trim() === '') {
      if (current.length) paragraphs.push(current);
      current = [];
    } else current.push(l);
  }
  if (current.length) paragraphs.push(current);
  let out = '';
  for (const p of paragraphs) {
    if (/^Exit status:/.test(p[0]!)) continue; // its own section
    const laidOut = p.some((l) => /^\s/.test(l) || /\S {2,}\S/.test(l.trim()));
    if (laidOut) out += `.PP\n.nf\n${p.map((l) => esc(l)).join('\n')}\n.fi\n`;
    else out += `.PP\n${esc(p.map((l) => l.trim()).join('\n'))}\n`;
  }
  return out;
}

function exitStatus(help: string): string {
  const at = help.search(/^Exit status:/m);
  if (at < 0) return '';
  const text = help.slice(at + 'Exit status:'.length).split(/\n\s*\n/)[0]!;
  return `.SH EXIT STATUS\n${esc(text.trim().replace(/\s*\n\s*/g, '\n'))}\n`;
}

const ENVIRONMENT: readonly (readonly [string, string])[] = [
  ['KABI_ROOT', 'The root used when a command is given no --root (kabi depmod: when it is given neither -b nor --root).'],
  ['KABI_KERNEL', 'The running kernel of a root other than /, where one is needed (kabi preserve, kabi inspect NAME).'],
  ['NO_COLOR', 'When set to anything, no colour (unless --color always).'],
  ['TERM', 'dumb: no colour (unless --color always).'],
  ['KABI_LOCK_TIMEOUT', "Seconds to wait for another run's lock of a root (default 300)."],
  ['KABI_DEBUG', 'Set to 1: an internal error is shown with its stack.'],
];

function environment(): string {
  return `.SH ENVIRONMENT\n${ENVIRONMENT.map(([k, v]) => `.TP\n.B ${k}\n${esc(v)}\n`).join('')}`;
}

function header(title: string, version: string): string {
  return `.\\" Generated by kabi's build (src/cli/man.ts) from its option tables; edit those, not this.\n.TH ${title.toUpperCase()} 1 "" "kabi ${version}" "kabi manual"\n`;
}

function synopsis(usage: string): string {
  const all = usage.replace(/^Usage: */, '').split('\n');
  // The first line and its indented continuations (what follows is help, as in weak-modules').
  const end = all.findIndex((l, i) => i > 0 && !/^\s+\S/.test(l));
  const lines = (end < 0 ? all : all.slice(0, end)).map((l) => l.trim());
  return `.SH SYNOPSIS\n.nf\n${lines.map((l) => esc(l)).join('\n')}\n.fi\n`;
}

/** kabi-COMMAND(1). `name` is the page's name (weak-modules' own bin has a page of its own). */
export function commandPage(m: CommandModel, version: string, name = `kabi-${m.name}`): ManPage {
  let t = header(name, version);
  t += `.SH NAME\n${esc(name)} \\- ${esc(m.summary)}\n`;
  t += synopsis(m.usage);
  t += `.SH DESCRIPTION\n${description(m.help)}`;
  t += '.SH OPTIONS\n';
  if (m.subcommands.length === 0) t += optionsSection(m.options, m.help);
  else {
    // Subcommands that share one table are listed together.
    const groups = new Map<OptionTable, string[]>();
    for (const s of m.subcommands) groups.set(s.options, [...(groups.get(s.options) ?? []), s.name]);
    for (const [table, subs] of groups) t += optionsSection(table, m.help, subs.length === m.subcommands.length ? `all subcommands` : subs.join(', '));
  }
  if (!m.name.startsWith('weak-modules')) t += `.SS every command\n.TP\n${optionHead('color', COLOR_OPTION)}\n${esc(COLOR_OPTION.help)}\n`;
  t += environment();
  t += exitStatus(m.help);
  t += `.SH SEE ALSO\n.BR kabi (1)${m.name === 'weak-modules' && name !== 'weak-modules' ? ',\n.BR weak-modules (1)' : ''}\n`;
  return { file: `${name}.1`, text: t };
}

/** kabi(1): the commands, and the conventions every command follows. */
export function overviewPage(models: readonly CommandModel[], conventions: string, version: string): ManPage {
  let t = header('kabi', version);
  t += `.SH NAME\nkabi \\- decide whether built Linux kernel modules load on each installed kernel, and wire them in\n`;
  t += `.SH SYNOPSIS\n.nf\nkabi \\fICOMMAND\\fR [\\fIOPTIONS\\fR]\nkabi \\-\\-help | \\-\\-version\n.fi\n`;
  t += `.SH DESCRIPTION\n.PP\nkabi judges each module as the kernel's module loader would (vermagic, modversions CRCs, licences, namespaces, struct module size, signatures), links compatible modules into other kernels' weak\\-updates directories, refreshes their depmod files and initramfs images, and shows the state of every out\\-of\\-tree module. It is also a drop\\-in weak\\-modules.\n`;
  t += `.SH COMMANDS\n${models.map((m) => `.TP\n.B ${esc(m.name)}\n${esc(m.summary)} (\\fBkabi\\-${esc(m.name)}\\fR(1))\n`).join('')}`;
  t += `.SH CONVENTIONS\n.PP\n${esc(conventions.replace(/\s*\n\s*/g, '\n'))}\n`;
  t += `.SH OPTIONS\n.TP\n${optionHead('color', COLOR_OPTION)}\n${esc(COLOR_OPTION.help)}\n.TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nList the commands (after a command: its options).\n.TP\n\\fB\\-V\\fR, \\fB\\-\\-version\\fR\nPrint the version.\n`;
  t += environment();
  t += `.SH SEE ALSO\n${models.map((m) => `.BR kabi\\-${esc(m.name)} (1)`).join(',\n')},\n.BR weak\\-modules (1),\n.BR depmod (8),\n.BR modinfo (8)\n`;
  return { file: 'kabi.1', text: t };
}

/** Every page: kabi(1), one per command, and weak-modules(1) for the drop-in's own bin. */
export function manPages(models: readonly CommandModel[], conventions: string, version: string): ManPage[] {
  const pages = [overviewPage(models, conventions, version), ...models.map((m) => commandPage(m, version))];
  const wm = models.find((m) => m.name === 'weak-modules');
  if (wm) pages.push(commandPage({ ...wm, usage: wm.usage.replace(/^Usage: /, '') }, version, 'weak-modules'));
  return pages;
}
