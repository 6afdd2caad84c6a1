/*
 * Just enough of the shell language to read what initramfs generators are configured and
 * extended with (dracut.conf and module-setup.sh, initramfs-tools' initramfs.conf and hooks,
 * mkinitcpio.conf and install hooks) without running any of it: words with their quoting
 * and expansions, and the compound commands those files use (if, for, while, case, function
 * definitions, pipelines, && and ||). Here-documents and arithmetic are recognised only far
 * enough to skip them.
 */

/** A piece of a word: literal text, a parameter expansion, or a command substitution. */
export type Piece =
  | { readonly kind: 'lit'; readonly text: string; readonly quoted: boolean }
  | { readonly kind: 'param'; readonly expr: string; readonly quoted: boolean }
  | { readonly kind: 'subst'; readonly text: string; readonly quoted: boolean };

export interface Word {
  readonly pieces: readonly Piece[];
  /** The word as written, for messages. */
  readonly raw: string;
}

export type Token = { readonly type: 'word'; readonly word: Word; readonly line: number } | { readonly type: 'op'; readonly op: string; readonly line: number };

const OPS = ['&&', '||', ';;', '<<<', '<<', '>>', '&>', '>&', '<(', ';', '|', '&', '(', ')', '<', '>', '\n'];

/** Split shell text into words and operators. Comments and line continuations disappear. */
export function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  let pieces: Piece[] = [];
  let lit = '';
  let start = -1;
  const flushLit = (quoted: boolean) => {
    if (lit !== '' || quoted) pieces.push({ kind: 'lit', text: lit, quoted });
    lit = '';
  };
  const endWord = () => {
    flushLit(false);
    if (pieces.length > 0) out.push({ type: 'word', word: { pieces: mergeLits(pieces), raw: text.slice(start, i) }, line });
    pieces = [];
    start = -1;
  };
  const begin = () => {
    if (start < 0) start = i;
  };
  /** Reads `$…` at i; returns the piece and moves i past it. */
  const dollar = (quoted: boolean): Piece => {
    const c = text[i + 1];
    if (c === '{') {
      const end = matching(text, i + 1, '{', '}');
      const p: Piece = { kind: 'param', expr: text.slice(i + 2, end), quoted };
      i = end + 1;
      return p;
    }
    if (c === '(') {
      const end = matching(text, i + 1, '(', ')');
      const p: Piece = { kind: 'subst', text: text.slice(i + 2, end), quoted };
      i = end + 1;
      return p;
    }
    const m = /^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])/.exec(text.slice(i + 1));
    if (!m) {
      i++;
      return { kind: 'lit', text: '$', quoted };
    }
    i += 1 + m[0].length;
    return { kind: 'param', expr: m[0], quoted };
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\\' && text[i + 1] === '\n') {
      i += 2;
      line++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      if (start >= 0) endWord();
      i++;
      continue;
    }
    if (c === '#' && start < 0) {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === "'") {
      begin();
      flushLit(false);
      const end = text.indexOf("'", i + 1);
      const stop = end < 0 ? text.length : end;
      lit = text.slice(i + 1, stop);
      line += countLines(lit);
      flushLit(true);
      i = stop + 1;
      continue;
    }
    if (c === '"') {
      begin();
      flushLit(false);
      i++;
      let any = false;
      while (i < text.length && text[i] !== '"') {
        const d = text[i]!;
        if (d === '\\' && i + 1 < text.length && '"\\$`\n'.includes(text[i + 1]!)) {
          if (text[i + 1] !== '\n') lit += text[i + 1];
          else line++;
          i += 2;
        } else if (d === '$') {
          if (lit !== '') flushLit(true);
          pieces.push(dollar(true));
          any = true;
        } else if (d === '`') {
          if (lit !== '') flushLit(true);
          const end = text.indexOf('`', i + 1);
          const stop = end < 0 ? text.length : end;
          pieces.push({ kind: 'subst', text: text.slice(i + 1, stop), quoted: true });
          i = stop + 1;
          any = true;
        } else {
          if (d === '\n') line++;
          lit += d;
          i++;
        }
      }
      if (lit !== '' || !any) flushLit(true);
      i++;
      continue;
    }
    if (c === '\\') {
      begin();
      lit += text[i + 1] ?? '';
      i += 2;
      continue;
    }
    if (c === '$') {
      begin();
      flushLit(false);
      pieces.push(dollar(false));
      continue;
    }
    if (c === '`') {
      begin();
      flushLit(false);
      const end = text.indexOf('`', i + 1);
      const stop = end < 0 ? text.length : end;
      pieces.push({ kind: 'subst', text: text.slice(i + 1, stop), quoted: false });
      i = stop + 1;
      continue;
    }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (op !== undefined) {
      // "2>", "1>&2": the digits before a redirection are its file descriptor, not a word.
      if ((op === '>' || op === '<' || op === '>>' || op === '>&') && start >= 0 && pieces.length === 0 && /^\d+$/.test(lit)) {
        lit = '';
        start = -1;
      } else if (start >= 0) endWord();
      if (op === '<<') {
        // A here-document: skip its body (up to the delimiter line).
        i += 2;
        const m = /^-?\s*['"]?([A-Za-z_0-9]+)['"]?/.exec(text.slice(i));
        if (m) {
          i += m[0].length;
          const nl = text.indexOf('\n', i);
          const body = nl < 0 ? text.length : nl + 1;
          const re = new RegExp(`^\\s*${m[1]}\\s*$`, 'm');
          const rest = text.slice(body);
          const hit = re.exec(rest);
          const endAt = hit ? body + hit.index + hit[0].length : text.length;
          line += countLines(text.slice(i, endAt));
          out.push({ type: 'op', op: '\n', line });
          i = endAt;
          continue;
        }
        out.push({ type: 'op', op, line });
        continue;
      }
      out.push({ type: 'op', op, line });
      if (op === '\n') line++;
      i += op.length;
      continue;
    }
    begin();
    lit += c;
    i++;
  }
  if (start >= 0) endWord();
  return out;
}

function countLines(s: string): number {
  let n = 0;
  for (const ch of s) if (ch === '\n') n++;
  return n;
}

function mergeLits(pieces: Piece[]): Piece[] {
  const out: Piece[] = [];
  for (const p of pieces) {
    const last = out.at(-1);
    if (p.kind === 'lit' && last?.kind === 'lit' && last.quoted === p.quoted) out[out.length - 1] = { kind: 'lit', text: last.text + p.text, quoted: p.quoted };
    else out.push(p);
  }
  return out;
}

/** Index of the bracket closing the one at `open` (quotes and nesting respected). */
function matching(text: string, open: number, o: string, c: string): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\') {
      i++;
      continue;
    }
    if (ch === "'" && o !== '{') {
      const e = text.indexOf("'", i + 1);
      i = e < 0 ? text.length : e;
      continue;
    }
    if (ch === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      continue;
    }
    if (ch === o) depth++;
    else if (ch === c && --depth === 0) return i;
  }
  return text.length;
}

/** The literal value of a word, or undefined if it has any expansion. */
export function literal(w: Word): string | undefined {
  let s = '';
  for (const p of w.pieces) {
    if (p.kind !== 'lit') return undefined;
    s += p.text;
  }
  return s;
}

// ---- commands ----------------------------------------------------------------------------------

export type Command =
  | { readonly type: 'simple'; readonly assigns: readonly Assign[]; readonly words: readonly Word[]; readonly line: number; readonly stdinFrom?: string }
  | { readonly type: 'if'; readonly arms: readonly { readonly cond: List; readonly body: List }[]; readonly otherwise: List | undefined }
  | { readonly type: 'for'; readonly variable: string; readonly items: readonly Word[] | undefined; readonly body: List }
  | { readonly type: 'loop'; readonly cond: List; readonly body: List }
  | { readonly type: 'case'; readonly subject: Word; readonly arms: readonly { readonly patterns: readonly Word[]; readonly body: List }[] }
  | { readonly type: 'group'; readonly body: List }
  | { readonly type: 'function'; readonly name: string; readonly body: List }
  | { readonly type: 'test'; readonly words: readonly Word[]; readonly line: number };

export interface Assign {
  readonly name: string;
  readonly append: boolean;
  /** Scalar value, or the elements of an array assignment a=(…). */
  readonly value: Word | readonly Word[];
}

/** One pipeline; `negated` for a leading '!'. */
export interface Pipeline {
  readonly negated: boolean;
  readonly commands: readonly Command[];
}

/** Pipelines joined by && and ||. */
export interface AndOr {
  readonly first: Pipeline;
  readonly rest: readonly { readonly op: '&&' | '||'; readonly pipeline: Pipeline }[];
}

export type List = readonly AndOr[];

const RESERVED_END = new Set(['then', 'fi', 'elif', 'else', 'do', 'done', 'esac', '}']);

/** Parse shell text into a command list. Anything it cannot read is skipped to the next line. */
export function parseShell(text: string): List {
  const p = new Parser(tokenize(text));
  return p.list(new Set());
}

class Parser {
  private at = 0;
  constructor(private readonly toks: Token[]) {}

  private peek(): Token | undefined {
    return this.toks[this.at];
  }

  private word(): string | undefined {
    const t = this.peek();
    return t?.type === 'word' ? literal(t.word) : undefined;
  }

  private isOp(op: string): boolean {
    const t = this.peek();
    return t?.type === 'op' && t.op === op;
  }

  private skipSeparators(): void {
    while (this.isOp('\n') || this.isOp(';') || this.isOp('&')) this.at++;
  }

  private expectWord(w: string): void {
    this.skipSeparators();
    if (this.word() === w) this.at++;
  }

  /** Commands until one of `stops` (a reserved word) or a closing operator. */
  list(stops: ReadonlySet<string>): AndOr[] {
    const out: AndOr[] = [];
    for (;;) {
      this.skipSeparators();
      const t = this.peek();
      if (t === undefined) return out;
      if (t.type === 'op' && (t.op === ')' || t.op === ';;')) return out;
      const w = this.word();
      if (w !== undefined && stops.has(w)) return out;
      const before = this.at;
      const ao = this.andOr(stops);
      if (ao) out.push(ao);
      if (this.at === before) this.at++; // never stall on something unreadable
    }
  }

  private andOr(stops: ReadonlySet<string>): AndOr | undefined {
    const first = this.pipeline(stops);
    if (!first) return undefined;
    const rest: { op: '&&' | '||'; pipeline: Pipeline }[] = [];
    while (this.isOp('&&') || this.isOp('||')) {
      const op = (this.peek() as { op: '&&' | '||' }).op;
      this.at++;
      while (this.isOp('\n')) this.at++;
      const p = this.pipeline(stops);
      if (!p) break;
      rest.push({ op, pipeline: p });
    }
    return { first, rest };
  }

  private pipeline(stops: ReadonlySet<string>): Pipeline | undefined {
    let negated = false;
    if (this.word() === '!') {
      negated = true;
      this.at++;
    }
    const commands: Command[] = [];
    for (;;) {
      const c = this.command(stops);
      if (!c) break;
      commands.push(c);
      if (!this.isOp('|')) break;
      this.at++;
      while (this.isOp('\n')) this.at++;
    }
    if (commands.length === 0) return undefined;
    return { negated, commands };
  }

  private command(stops: ReadonlySet<string>): Command | undefined {
    const t = this.peek();
    if (t === undefined) return undefined;
    if (t.type === 'op') {
      if (t.op === '(') {
        this.at++;
        const body = this.list(new Set());
        if (this.isOp(')')) this.at++;
        return { type: 'group', body };
      }
      return undefined;
    }
    const w = literal(t.word);
    if (w !== undefined && stops.has(w)) return undefined;
    switch (w) {
      case 'if':
        return this.ifCommand();
      case 'for':
        return this.forCommand();
      case 'while':
      case 'until': {
        this.at++;
        const cond = this.list(new Set(['do']));
        this.expectWord('do');
        const body = this.list(new Set(['done']));
        this.expectWord('done');
        return { type: 'loop', cond, body };
      }
      case 'case':
        return this.caseCommand();
      case '{': {
        this.at++;
        const body = this.list(new Set(['}']));
        this.expectWord('}');
        return { type: 'group', body };
      }
      case '[[':
        return this.testCommand(']]');
      case 'function': {
        this.at++;
        const name = this.word();
        if (name === undefined) return undefined;
        this.at++;
        if (this.isOp('(')) this.at += 2;
        return this.functionBody(name.replace(/\(\)$/, ''));
      }
      default:
        break;
    }
    // name() { … }
    const next = this.toks[this.at + 1];
    if (w !== undefined && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(w) && next?.type === 'op' && next.op === '(' && this.toks[this.at + 2]?.type === 'op' && (this.toks[this.at + 2] as { op: string }).op === ')') {
      this.at += 3;
      return this.functionBody(w);
    }
    return this.simple(stops);
  }

  private functionBody(name: string): Command {
    while (this.isOp('\n')) this.at++;
    const body = this.command(new Set());
    return { type: 'function', name, body: body ? [{ first: { negated: false, commands: [body] }, rest: [] }] : [] };
  }

  /** `[[ … ]]`, `[ … ]` (close: the closing word) or `test …` (close: undefined, up to the next operator). */
  private testCommand(close: string | undefined): Command {
    const line = this.peek()!.line;
    this.at++;
    const words: Word[] = [];
    for (;;) {
      const t = this.peek();
      if (t === undefined || (t.type === 'op' && t.op === '\n')) break;
      if (close === undefined && t.type === 'op' && ['&&', '||', ';', '|', ')', ';;'].includes(t.op)) break;
      this.at++;
      if (t.type === 'word') {
        if (close !== undefined && literal(t.word) === close) break;
        words.push(t.word);
      } else words.push({ pieces: [{ kind: 'lit', text: t.op, quoted: false }], raw: t.op });
    }
    return { type: 'test', words, line };
  }

  private ifCommand(): Command {
    this.at++;
    const arms: { cond: List; body: List }[] = [];
    let otherwise: List | undefined;
    for (;;) {
      const cond = this.list(new Set(['then']));
      this.expectWord('then');
      const body = this.list(new Set(['elif', 'else', 'fi']));
      arms.push({ cond, body });
      this.skipSeparators();
      const w = this.word();
      if (w === 'elif') {
        this.at++;
        continue;
      }
      if (w === 'else') {
        this.at++;
        otherwise = this.list(new Set(['fi']));
        this.skipSeparators();
      }
      if (this.word() === 'fi') this.at++;
      return { type: 'if', arms, otherwise };
    }
  }

  private forCommand(): Command {
    this.at++;
    const variable = this.word() ?? '';
    this.at++;
    let items: Word[] | undefined;
    while (this.isOp('\n')) this.at++;
    if (this.word() === 'in') {
      this.at++;
      items = [];
      for (;;) {
        const t = this.peek();
        if (t === undefined || t.type !== 'word') break;
        items.push(t.word);
        this.at++;
      }
    }
    this.expectWord('do');
    const body = this.list(new Set(['done']));
    this.expectWord('done');
    return { type: 'for', variable, items, body };
  }

  private caseCommand(): Command {
    this.at++;
    const t = this.peek();
    const subject: Word = t?.type === 'word' ? t.word : { pieces: [], raw: '' };
    this.at++;
    this.expectWord('in');
    const arms: { patterns: Word[]; body: List }[] = [];
    for (;;) {
      this.skipSeparators();
      if (this.word() === 'esac' || this.peek() === undefined) {
        this.at++;
        break;
      }
      if (this.isOp('(')) this.at++;
      const patterns: Word[] = [];
      while (this.peek() !== undefined && !this.isOp(')')) {
        const p = this.peek()!;
        if (p.type === 'word') patterns.push(p.word);
        this.at++;
      }
      this.at++; // ')'
      const body = this.list(new Set(['esac']));
      if (this.isOp(';;')) this.at++;
      arms.push({ patterns, body });
    }
    return { type: 'case', subject, arms };
  }

  private simple(stops: ReadonlySet<string>): Command | undefined {
    const assigns: Assign[] = [];
    const words: Word[] = [];
    let line = this.peek()?.line ?? 0;
    for (;;) {
      const t = this.peek();
      if (t === undefined) break;
      if (t.type === 'op') {
        if (['<', '>', '>>', '&>', '>&', '<<<'].includes(t.op)) {
          this.at += 2; // the operator and its target
          continue;
        }
        if (t.op === '<(') {
          // A process substitution: skip to its ')'.
          let depth = 1;
          this.at++;
          while (this.peek() !== undefined && depth > 0) {
            const u = this.peek()!;
            if (u.type === 'op' && (u.op === '(' || u.op === '<(')) depth++;
            if (u.type === 'op' && u.op === ')') depth--;
            this.at++;
          }
          words.push({ pieces: [{ kind: 'subst', text: '', quoted: false }], raw: '<(…)' });
          continue;
        }
        break;
      }
      const w = literal(t.word);
      if (words.length === 0 && w !== undefined && stops.has(w) && RESERVED_END.has(w)) break;
      if (words.length === 0) line = t.line;
      const a = words.length === 0 ? assignmentOf(t.word) : undefined;
      if (a) {
        this.at++;
        // An array: name=( words… )
        if (a.value.pieces.length === 0 && this.isOp('(')) {
          this.at++;
          const items: Word[] = [];
          while (this.peek() !== undefined && !this.isOp(')')) {
            const u = this.peek()!;
            if (u.type === 'word') items.push(u.word);
            this.at++;
          }
          this.at++;
          assigns.push({ name: a.name, append: a.append, value: items });
        } else assigns.push({ name: a.name, append: a.append, value: a.value });
        continue;
      }
      if (words.length === 0 && w === '[') return this.testCommand(']');
      if (words.length === 0 && w === 'test') return this.testCommand(undefined);
      words.push(t.word);
      this.at++;
    }
    if (assigns.length === 0 && words.length === 0) return undefined;
    return { type: 'simple', assigns, words, line };
  }
}

/** `name=value` / `name+=value` at the start of a word (an empty value may be an array's "name=" before its '('). */
function assignmentOf(w: Word): { name: string; append: boolean; value: Word } | undefined {
  const first = w.pieces[0];
  if (first?.kind !== 'lit' || first.quoted) return undefined;
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(\+?)=/.exec(first.text);
  if (!m) return undefined;
  const rest = first.text.slice(m[0].length);
  const pieces: Piece[] = [...(rest !== '' ? [{ ...first, text: rest }] : []), ...w.pieces.slice(1)];
  return { name: m[1]!, append: m[2] === '+', value: { pieces, raw: w.raw.slice(m[0].length) } };
}
