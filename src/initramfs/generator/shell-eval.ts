import { literal, parseShell, tokenize, type AndOr, type Command, type List, type Pipeline, type Word } from './shell-syntax.js';

/*
 * Runs shell code abstractly: nothing is executed, but every call of the commands a model
 * cares about (dracut's instmods, initramfs-tools' manual_add_modules…) is recorded with its
 * arguments as far as they can be known from the text and the variables given, and with the
 * conditions under which it runs. A condition that depends on the running system (a device,
 * a binary's output) is "unknown": code under it may run, and the record says why.
 */

/** A value as far as the text tells it. */
export type Value = { readonly known: true; readonly text: string; readonly items?: readonly string[] } | { readonly known: false; readonly why: string };

/** An argument; one computed at run time keeps the text every value of it starts with, when the code says. */
export type Arg = { readonly known: true; readonly text: string } | { readonly known: false; readonly raw: string; readonly prefix?: string };

/** true: certainly; false: certainly not; undefined: cannot be told from files. */
export type Tri = boolean | undefined;

export interface Call {
  readonly command: string;
  readonly args: readonly Arg[];
  /** Variables set for this command only (`hostonly='' instmods …`). */
  readonly prefix: ReadonlyMap<string, Value>;
  /** Whether the call certainly happens (true) or may happen (undefined). */
  readonly certain: boolean;
  /** The undecided conditions it depends on, as written. */
  readonly because: readonly string[];
  /** What is piped into it, as written, when it is the end of a pipeline. */
  readonly stdin: string | undefined;
  readonly line: number;
  /** The function it was called from (innermost), if any. */
  readonly inFunction: string | undefined;
}

export interface EvalHooks {
  /** Commands whose calls are recorded. */
  readonly record: ReadonlySet<string>;
  /** Output of a command substitution, when the model knows it (`uname -m`). */
  substitution?(text: string): Value | undefined;
  /** A command used as a condition, when the model can decide it (`dracut_module_included x`). */
  condition?(command: string, args: readonly Arg[]): Tri;
  /** `-f`/`-d`/`-e` tests on a path, when the model can look. */
  fileTest?(op: string, path: string): Tri;
}

interface Ctx {
  readonly certain: boolean;
  readonly because: readonly string[];
  readonly inFunction: string | undefined;
  readonly depth: number;
}

type Flow = { readonly returned: Tri; readonly status: Tri };

const NORMAL: Flow = { returned: false, status: undefined };
const MAX_DEPTH = 12;
const MAX_ITERATIONS = 512;
const IFS = /[ \t\n]+/;

export class ShellEval {
  readonly calls: Call[] = [];
  readonly vars = new Map<string, Value>();
  private readonly functions = new Map<string, List>();
  private positional: Value[] = [];

  constructor(private readonly hooks: EvalHooks) {}

  set(name: string, v: Value | string): void {
    this.vars.set(name, typeof v === 'string' ? { known: true, text: v } : v);
  }

  /** Define the functions (and run the top-level code) of a script. */
  load(text: string): void {
    this.list(parseShell(text), top());
  }

  hasFunction(name: string): boolean {
    return this.functions.has(name);
  }

  /** Call a function the loaded scripts defined, with arguments. */
  callFunction(name: string, args: readonly string[] = []): void {
    const body = this.functions.get(name);
    if (body === undefined) return;
    const saved = this.positional;
    this.positional = args.map((a) => ({ known: true, text: a }));
    this.list(body, { ...top(), inFunction: name, depth: 1 });
    this.positional = saved;
  }

  /** Run shell code in the current state. */
  run(text: string): void {
    this.list(parseShell(text), top());
  }

  // ---- statements --------------------------------------------------------------------------

  private list(list: List, ctx: Ctx): Flow {
    let c = ctx;
    let status: Tri = undefined;
    for (const ao of list) {
      const f = this.andOr(ao, c);
      status = f.status;
      if (f.returned === true) return f;
      if (f.returned === undefined) c = { ...c, certain: false, because: [...c.because, 'an earlier return or exit may have been taken'] };
    }
    return { returned: c === ctx ? false : undefined, status };
  }

  private andOr(ao: AndOr, ctx: Ctx): Flow {
    let f = this.pipeline(ao.first, ctx);
    let returned: Tri = f.returned;
    let status = f.status;
    for (const { op, pipeline } of ao.rest) {
      if (returned === true) break;
      // `a && b` runs b when a succeeded; `a || b` when it failed.
      const runs: Tri = status === undefined ? undefined : op === '&&' ? status : !status;
      if (runs === false) continue;
      const sub = runs === true ? ctx : under(ctx, `${op === '&&' ? '' : 'not '}${describe(ao.first)}`);
      f = this.pipeline(pipeline, sub);
      if (f.returned === true && runs !== true) returned = undefined;
      else if (f.returned !== false) returned = f.returned;
      status = runs === true ? f.status : f.status === (op === '||') ? f.status : undefined;
    }
    return { returned, status };
  }

  private pipeline(p: Pipeline, ctx: Ctx): Flow {
    let stdin: string | undefined;
    let f: Flow = NORMAL;
    for (const c of p.commands) {
      f = this.command(c, ctx, stdin);
      stdin = p.commands.length > 1 ? commandText(c) : undefined;
    }
    const status = p.negated ? (f.status === undefined ? undefined : !f.status) : f.status;
    // A return inside a pipeline element runs in a subshell: it ends nothing here.
    return { returned: p.commands.length > 1 ? false : f.returned, status };
  }

  private command(c: Command, ctx: Ctx, stdin: string | undefined): Flow {
    switch (c.type) {
      case 'simple':
        return this.simple(c, ctx, stdin);
      case 'test':
        return { returned: false, status: this.test(c.words) };
      case 'group':
        return this.list(c.body, ctx);
      case 'function':
        this.functions.set(c.name, c.body);
        return { returned: false, status: true };
      case 'if': {
        let rest = ctx;
        let returned: Tri = false;
        for (const arm of c.arms) {
          const cond = this.list(arm.cond, rest);
          if (cond.status !== false) {
            const f = this.list(arm.body, cond.status === true ? rest : under(rest, describeList(arm.cond)));
            if (f.returned === true && cond.status === true && rest.certain) return f;
            if (f.returned !== false) returned = undefined;
          }
          if (cond.status === true) return { returned, status: undefined };
          if (cond.status === undefined) rest = under(rest, `not ${describeList(arm.cond)}`);
        }
        if (c.otherwise) {
          const f = this.list(c.otherwise, rest);
          if (f.returned === true && rest === ctx) return f;
          if (f.returned !== false) returned = undefined;
        }
        return { returned, status: undefined };
      }
      case 'for': {
        const items = c.items === undefined ? undefined : this.fields(c.items);
        const known = items?.every((a) => a.known) === true ? (items as { text: string }[]).map((a) => a.text) : undefined;
        let returned: Tri = false;
        if (known !== undefined && known.length <= MAX_ITERATIONS) {
          for (const v of known) {
            this.vars.set(c.variable, { known: true, text: v });
            const f = this.list(c.body, ctx);
            if (f.returned === true) return f;
            if (f.returned !== false) returned = undefined;
          }
        } else {
          this.vars.set(c.variable, { known: false, why: `the items of "for ${c.variable}"` });
          const f = this.list(c.body, under(ctx, `the items of "for ${c.variable} in …"`));
          if (f.returned !== false) returned = undefined;
        }
        return { returned, status: undefined };
      }
      case 'loop': {
        this.list(c.cond, ctx);
        const f = this.list(c.body, under(ctx, `the loop "while ${describeList(c.cond)}"`));
        return { returned: f.returned === false ? false : undefined, status: undefined };
      }
      case 'case': {
        const subject = this.word(c.subject);
        let returned: Tri = false;
        for (const arm of c.arms) {
          const pats = arm.patterns.map((p) => this.word(p));
          const match: Tri = subject.known && pats.every((p) => p.known) ? pats.some((p) => globMatch((p as { text: string }).text, subject.text)) : undefined;
          if (match === false) continue;
          const f = this.list(arm.body, match === true ? ctx : under(ctx, `case ${c.subject.raw} in ${arm.patterns.map((p) => p.raw).join('|')}`));
          if (match === true) return f;
          if (f.returned !== false) returned = undefined;
        }
        return { returned, status: undefined };
      }
    }
  }

  private simple(c: Extract<Command, { type: 'simple' }>, ctx: Ctx, stdin: string | undefined): Flow {
    if (c.words.length === 0) {
      for (const a of c.assigns) this.assign(a.name, a.append, a.value, ctx);
      return { returned: false, status: true };
    }
    const args = this.fields(c.words);
    const head = args[0]!;
    if (!head.known) {
      this.calls.push({ command: '', args, prefix: new Map(), certain: ctx.certain, because: [...ctx.because, `a command named at run time (${head.raw})`], stdin, line: c.line, inFunction: ctx.inFunction });
      return { returned: false, status: undefined };
    }
    const name = head.text;
    const rest = args.slice(1);
    switch (name) {
      case 'true':
      case ':':
        return { returned: false, status: true };
      case 'false':
        return { returned: false, status: false };
      case 'return':
      case 'exit':
        return { returned: ctx.certain ? true : undefined, status: undefined };
      case 'local':
      case 'declare':
      case 'typeset':
      case 'export':
      case 'readonly':
        for (const w of c.words.slice(1)) {
          const t = literal(w) ?? undefined;
          if (t !== undefined && t.startsWith('-')) continue;
          const m = /^([A-Za-z_][A-Za-z0-9_]*)(\+?)=/.exec(w.raw);
          if (m) {
            const v = this.word({ pieces: w.pieces, raw: w.raw });
            const text = v.known ? v.text.slice(v.text.indexOf('=') + 1) : undefined;
            this.assignValue(m[1]!, m[2] === '+', text === undefined ? { known: false, why: w.raw } : { known: true, text }, ctx);
          } else if (t !== undefined && /^[A-Za-z_][A-Za-z0-9_]*$/.test(t) && !this.vars.has(t)) this.vars.set(t, { known: true, text: '' });
        }
        return { returned: false, status: true };
      case 'unset':
        for (const a of rest) if (a.known && !a.text.startsWith('-')) this.vars.set(a.text, { known: true, text: '' });
        return { returned: false, status: true };
      case 'read':
        for (const a of rest) if (a.known && /^[A-Za-z_]\w*$/.test(a.text)) this.vars.set(a.text, { known: false, why: `read ${a.text}` });
        return { returned: false, status: undefined };
      case 'set': {
        const i = rest.findIndex((a) => a.known && a.text === '--');
        if (i >= 0 || (rest.length > 0 && rest[0]!.known && !rest[0]!.text.startsWith('-'))) {
          this.positional = rest.slice(i + 1).map((a) => (a.known ? { known: true, text: a.text } : { known: false, why: a.raw }));
        }
        return { returned: false, status: true };
      }
      case 'shift':
        this.positional = this.positional.slice(rest[0]?.known ? Number(rest[0].text) || 1 : 1);
        return { returned: false, status: true };
      case 'eval':
        this.calls.push({ command: 'eval', args: rest, prefix: new Map(), certain: ctx.certain, because: ctx.because, stdin, line: c.line, inFunction: ctx.inFunction });
        return { returned: false, status: undefined };
      default:
        break;
    }
    const prefix = new Map<string, Value>();
    for (const a of c.assigns) prefix.set(a.name, Array.isArray(a.value) ? { known: false, why: a.name } : this.word(a.value as Word));
    if (this.hooks.record.has(name)) {
      // A recorded command is what the model reads; its own definition (if loaded) is not followed.
      this.calls.push({ command: name, args: rest, prefix, certain: ctx.certain, because: ctx.because, stdin, line: c.line, inFunction: ctx.inFunction });
      return { returned: false, status: undefined };
    }
    const fn = this.functions.get(name);
    if (fn !== undefined && ctx.depth < MAX_DEPTH) {
      const saved = this.positional;
      const savedVars = new Map<string, Value | undefined>();
      for (const [k, v] of prefix) {
        savedVars.set(k, this.vars.get(k));
        this.vars.set(k, v);
      }
      this.positional = rest.map((a) => (a.known ? { known: true, text: a.text } : { known: false, why: a.raw }));
      const f = this.list(fn, { ...ctx, inFunction: name, depth: ctx.depth + 1 });
      this.positional = saved;
      for (const [k, v] of savedVars) (v === undefined ? this.vars.delete(k) : this.vars.set(k, v));
      return { returned: false, status: f.status };
    }
    const decided = this.hooks.condition?.(name, rest);
    return { returned: false, status: decided };
  }

  private assign(name: string, append: boolean, value: Word | readonly Word[], ctx: Ctx): void {
    if (Array.isArray(value)) {
      const items = this.fields(value as Word[]);
      const known = items.every((a) => a.known) ? (items as { text: string }[]).map((a) => a.text) : undefined;
      const old = this.vars.get(name);
      const prev = append && old?.known ? (old.items ?? (old.text === '' ? [] : [old.text])) : [];
      this.vars.set(name, known === undefined || (append && old !== undefined && !old.known) ? { known: false, why: `${name}=(…)` } : { known: true, text: [...prev, ...known].join(' '), items: [...prev, ...known] });
      return;
    }
    this.assignValue(name, append, this.word(value as Word), ctx);
  }

  private assignValue(name: string, append: boolean, v: Value, ctx: Ctx): void {
    const old = this.vars.get(name);
    if (append) {
      if (old !== undefined && !old.known) return;
      if (!v.known) {
        this.vars.set(name, v);
        return;
      }
      // Appending under a condition that may not hold is kept: the value may hold more, never less.
      this.vars.set(name, { known: true, text: (old?.known ? old.text : '') + v.text });
      return;
    }
    if (!ctx.certain && old?.known && v.known && old.text !== v.text) {
      this.vars.set(name, { known: false, why: `${name} is set under ${ctx.because.at(-1) ?? 'a condition'}` });
      return;
    }
    this.vars.set(name, v);
  }

  // ---- conditions --------------------------------------------------------------------------

  private test(words: readonly Word[]): Tri {
    const items = words.map((w) => ({ op: opOf(w), value: this.word(w) }));
    let at = 0;
    const peekOp = () => items[at]?.op;
    const or = (): Tri => {
      let v = and();
      while (peekOp() === '||' || peekOp() === '-o') {
        at++;
        v = triOr(v, and());
      }
      return v;
    };
    const and = (): Tri => {
      let v = not();
      while (peekOp() === '&&' || peekOp() === '-a') {
        at++;
        v = triAnd(v, not());
      }
      return v;
    };
    const not = (): Tri => {
      if (peekOp() === '!') {
        at++;
        const v = not();
        return v === undefined ? undefined : !v;
      }
      if (peekOp() === '(') {
        at++;
        const v = or();
        if (peekOp() === ')') at++;
        return v;
      }
      return primary();
    };
    const primary = (): Tri => {
      const a = items[at];
      if (a === undefined) return false;
      const b = items[at + 1];
      const c2 = items[at + 2];
      if (a.op !== undefined && /^-[a-zA-Z]$/.test(a.op) && b !== undefined && (c2 === undefined || isJoiner(c2.op))) {
        at += 2;
        const v = b.value;
        if (a.op === '-z') return v.known ? v.text === '' : undefined;
        if (a.op === '-n') return v.known ? v.text !== '' : undefined;
        return v.known ? this.hooks.fileTest?.(a.op, v.text) : undefined;
      }
      if (b?.op !== undefined && ['==', '=', '!=', '=~', '-eq', '-ne'].includes(b.op) && c2 !== undefined) {
        at += 3;
        const x = a.value;
        const y = c2.value;
        if (!x.known || !y.known) return undefined;
        switch (b.op) {
          case '==':
          case '=':
            return globMatch(y.text, x.text);
          case '!=':
            return !globMatch(y.text, x.text);
          case '=~':
            try {
              return new RegExp(y.text).test(x.text);
            } catch {
              return undefined;
            }
          case '-eq':
            return Number(x.text) === Number(y.text);
          case '-ne':
            return Number(x.text) !== Number(y.text);
        }
      }
      at++;
      return a.value.known ? a.value.text !== '' : undefined;
    };
    return or();
  }

  // ---- words -------------------------------------------------------------------------------

  /** Expand words into fields (unquoted expansions split on blanks), as arguments. */
  fields(words: readonly Word[]): Arg[] {
    const out: Arg[] = [];
    for (const w of words) {
      const parts: { text: string; split: boolean }[] = [];
      let unknown = false;
      let arrayItems: readonly string[] | undefined;
      for (const p of w.pieces) {
        if (p.kind === 'lit') {
          if (!p.quoted && /[*?[]/.test(p.text)) unknown = true; // a glob: the file system decides
          parts.push({ text: p.text, split: false });
          continue;
        }
        const v = p.kind === 'param' ? this.param(p.expr) : this.substitution(p.text);
        if (!v.known) {
          unknown = true;
          continue;
        }
        if (v.items !== undefined && p.kind === 'param' && (p.expr === '@' || /\[@\]$/.test(p.expr)) && w.pieces.length === 1) arrayItems = v.items;
        parts.push({ text: v.text, split: !p.quoted });
      }
      if (unknown) {
        const prefix = this.knownPrefix(w);
        out.push(prefix ? { known: false, raw: w.raw, prefix } : { known: false, raw: w.raw });
        continue;
      }
      if (arrayItems !== undefined) {
        for (const t of arrayItems) out.push({ known: true, text: t });
        continue;
      }
      // Field splitting of the unquoted expansions.
      let cur: string | undefined;
      const fields: string[] = [];
      for (const part of parts) {
        if (!part.split) {
          cur = (cur ?? '') + part.text;
          continue;
        }
        const pieces = part.text.split(IFS);
        pieces.forEach((piece, i) => {
          if (i > 0) {
            if (cur !== undefined && cur !== '') fields.push(cur);
            cur = undefined;
          }
          if (piece !== '') cur = (cur ?? '') + piece;
        });
      }
      if (cur !== undefined && (cur !== '' || parts.every((x) => !x.split))) fields.push(cur);
      for (const f of fields) out.push({ known: true, text: f });
    }
    return out;
  }

  /**
   * The text every value of a word computed at run time starts with: its leading literal and
   * known parts, or what a ${list[@]/#/PREFIX} expansion puts before each item.
   */
  private knownPrefix(w: Word): string {
    let prefix = '';
    for (const p of w.pieces) {
      if (p.kind === 'lit') {
        if (!p.quoted && /[*?[]/.test(p.text)) return prefix + p.text.slice(0, p.text.search(/[*?[]/));
        prefix += p.text;
        continue;
      }
      const v = p.kind === 'param' ? this.param(p.expr) : this.substitution(p.text);
      if (v.known) {
        prefix += v.text;
        continue;
      }
      const m = p.kind === 'param' ? /^[A-Za-z_]\w*(?:\[[@*]\])?\/#\/(.*)$/s.exec(p.expr) : null;
      return m && prefix === '' ? m[1]! : prefix;
    }
    return prefix;
  }

  /** One word's value, without field splitting. */
  word(w: Word): Value {
    let text = '';
    for (const p of w.pieces) {
      if (p.kind === 'lit') {
        text += p.text;
        continue;
      }
      const v = p.kind === 'param' ? this.param(p.expr) : this.substitution(p.text);
      if (!v.known) return v;
      text += v.text;
    }
    return { known: true, text };
  }

  private substitution(text: string): Value {
    return this.hooks.substitution?.(text.trim()) ?? { known: false, why: `$(${text.trim()})` };
  }

  private param(expr: string): Value {
    if (/^[0-9]+$/.test(expr)) return this.positional[Number(expr) - 1] ?? { known: true, text: '' };
    if (expr === '@' || expr === '*') {
      if (!this.positional.every((v) => v.known)) return { known: false, why: `$${expr}` };
      const items = this.positional.map((v) => (v as { text: string }).text);
      return { known: true, text: items.join(' '), items };
    }
    if (expr === '#') return { known: true, text: String(this.positional.length) };
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(\[[@*]\])?(.*)$/s.exec(expr);
    if (!m) return { known: false, why: `\${${expr}}` };
    const [, name, , op] = m as unknown as [string, string, string | undefined, string];
    const v = this.vars.get(name!) ?? { known: true, text: '' };
    if (op === '') return v;
    // ${name:-default} / ${name-default}
    const dflt = /^:?-(.*)$/s.exec(op);
    if (dflt) {
      if (!v.known) return v;
      if (v.text !== '' || (!op.startsWith(':') && this.vars.has(name!))) return v;
      // The default is one word, expanded as if quoted (no field splitting here).
      const toks = tokenize(`"${dflt[1]!.replace(/(["\\])/g, '\\$1')}"`);
      const w = toks[0];
      return w?.type === 'word' ? this.word(w.word) : { known: true, text: '' };
    }
    // ${name/pattern/replacement}: the first match; ${name//pattern/replacement}: every one.
    const rep = /^(\/\/?)([^/]*)\/(.*)$/s.exec(op);
    if (rep && v.known) {
      const [, all, pat, by] = rep as unknown as [string, string, string, string];
      if (/[*?[]/.test(pat)) return { known: false, why: `\${${expr}}` };
      return { known: true, text: all === '//' ? v.text.split(pat).join(by) : v.text.replace(pat, by) };
    }
    return { known: false, why: `\${${expr}}` };
  }
}

function top(): Ctx {
  return { certain: true, because: [], inFunction: undefined, depth: 0 };
}

function under(ctx: Ctx, why: string): Ctx {
  return { ...ctx, certain: false, because: [...ctx.because, why] };
}

function triAnd(a: Tri, b: Tri): Tri {
  if (a === false || b === false) return false;
  if (a === true && b === true) return true;
  return undefined;
}

function triOr(a: Tri, b: Tri): Tri {
  if (a === true || b === true) return true;
  if (a === false && b === false) return false;
  return undefined;
}

function isJoiner(op: string | undefined): boolean {
  return op === '&&' || op === '||' || op === '-a' || op === '-o' || op === ')';
}

/** An unquoted literal word that is a test operator. */
function opOf(w: Word): string | undefined {
  if (w.pieces.length !== 1 || w.pieces[0]!.kind !== 'lit' || w.pieces[0]!.quoted) return undefined;
  const t = w.pieces[0]!.text;
  return /^(!|\(|\)|&&|\|\||==|=|!=|=~|-[a-zA-Z]{1,2})$/.test(t) ? t : undefined;
}

function commandText(c: Command): string {
  return c.type === 'simple' ? c.words.map((w) => w.raw).join(' ') : c.type;
}

function describe(p: AndOr['first']): string {
  return p.commands.map((c) => (c.type === 'test' ? `[[ ${c.words.map((w) => w.raw).join(' ')} ]]` : commandText(c))).join(' | ');
}

function describeList(l: List): string {
  return l.map((ao) => [describe(ao.first), ...ao.rest.map((r) => `${r.op} ${describe(r.pipeline)}`)].join(' ')).join('; ');
}

const compiled = new Map<string, RegExp | null>();

/** Shell pattern matching (*, ?, [..]) of a whole string, as fnmatch(3) without flags. */
export function globMatch(pattern: string, text: string): boolean {
  if (!/[*?[\\]/.test(pattern)) return pattern === text;
  let re = compiled.get(pattern);
  if (re === undefined) {
    re = globRegex(pattern);
    if (compiled.size > 50_000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re !== null && re.test(text);
}

function globRegex(pattern: string): RegExp | null {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, end);
        if (body.startsWith('!')) body = '^' + body.slice(1);
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) re += '\\' + pattern[++i];
    else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  try {
    return new RegExp(re + '$', 's');
  } catch {
    return null;
  }
}
