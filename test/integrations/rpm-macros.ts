/*
 * Just enough of rpm's macro language to expand the scriptlet snippets of macros.kabi the way
 * rpmbuild does for a spec: definitions from a macro file (`%name body`, `%name(opts) body`,
 * backslash-newline kept as a newline), `%name` and `%{name}`, `%{?name}`, `%{?name:text}`,
 * `%{!?name:text}`, `%%`, `%{nil}`, and parametric calls `%name args…` (to the end of the line,
 * args expanded first) with `%*`, `%#` and `%1`…`%9` in the body. An undefined `%name` stays
 * as written, as rpm leaves it.
 */

export interface MacroDef {
  readonly body: string;
  readonly parametric: boolean;
}

export type Macros = Map<string, MacroDef>;

export function parseMacroFile(text: string, into: Macros = new Map()): Macros {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (!line.startsWith('%')) continue; // comments, blank lines
    while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + '\n' + lines[++i]!;
    const m = /^%([A-Za-z_][A-Za-z0-9_]*)(\([^)]*\))?[ \t]+([\s\S]*)$/.exec(line);
    if (!m) throw new Error(`bad macro definition: ${line.split('\n')[0]}`);
    into.set(m[1]!, { body: m[3]!.replace(/^[ \t]*\n/, ''), parametric: m[2] !== undefined });
  }
  return into;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

export function expandMacros(text: string, macros: Macros, args: readonly string[] = [], depth = 0): string {
  if (depth > 32) throw new Error('macro recursion too deep');
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c !== '%') {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '%') {
      out += '%';
      i += 2;
    } else if (next === '*') {
      out += args.join(' ');
      i += 2;
    } else if (next === '#') {
      out += String(args.length);
      i += 2;
    } else if (next !== undefined && /[1-9]/.test(next)) {
      out += args[Number(next) - 1] ?? '';
      i += 2;
    } else if (next === '{') {
      let level = 1;
      let j = i + 2;
      for (; j < text.length && level > 0; j++) {
        if (text[j] === '{') level++;
        else if (text[j] === '}') level--;
      }
      if (level !== 0) throw new Error(`unterminated %{ in: ${text.slice(i, i + 40)}`);
      out += expandBraced(text.slice(i + 2, j - 1), macros, args, depth);
      i = j;
    } else {
      const m = NAME.exec(text.slice(i + 1));
      if (!m) {
        out += '%';
        i++;
        continue;
      }
      const name = m[0];
      const def = macros.get(name);
      i += 1 + name.length;
      if (!def) {
        out += `%${name}`;
        continue;
      }
      if (def.parametric) {
        const eol = text.indexOf('\n', i);
        const rest = text.slice(i, eol < 0 ? text.length : eol);
        i = eol < 0 ? text.length : eol;
        const callArgs = expandMacros(rest, macros, args, depth + 1).split(/[ \t]+/).filter((a) => a !== '');
        out += expandMacros(def.body, macros, callArgs, depth + 1);
      } else {
        out += expandMacros(def.body, macros, args, depth + 1);
      }
    }
  }
  return out;
}

function expandBraced(inner: string, macros: Macros, args: readonly string[], depth: number): string {
  const cond = /^(!?)\?([A-Za-z_][A-Za-z0-9_]*)(?::([\s\S]*))?$/.exec(inner);
  if (cond) {
    const defined = macros.has(cond[2]!);
    const wantDefined = cond[1] === '';
    if (defined !== wantDefined) return '';
    if (cond[3] !== undefined) return expandMacros(cond[3], macros, args, depth + 1);
    return defined ? expandMacros(macros.get(cond[2]!)!.body, macros, args, depth + 1) : '';
  }
  if (inner === 'nil') return '';
  const def = macros.get(inner);
  if (!def) return `%{${inner}}`;
  return expandMacros(def.body, macros, def.parametric ? [] : args, depth + 1);
}

/** The definitions rpmbuild has for a sample package plus the macro file under test. */
export function sampleMacros(fileText: string, defines: Record<string, string>): Macros {
  const m: Macros = new Map();
  for (const [k, v] of Object.entries(defines)) m.set(k, { body: v, parametric: false });
  return parseMacroFile(fileText, m);
}
