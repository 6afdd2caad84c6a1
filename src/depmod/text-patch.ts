import { compareHashOrder, SYMBOLS_BUCKETS } from './kmod-hash.js';

/**
 * Depmod's text files made from the previous version instead of anew: most of a file is
 * copied as it was, in as few pieces as the change allows.
 */

export interface Spliced {
  readonly data: Buffer;
  /** Where each module's part starts in the new file (n+1 entries). */
  readonly off: Uint32Array;
}

/**
 * Where a new module array takes its parts from: runs of consecutive previous modules
 * (start, previous start, length) and single modules rendered anew (previous start -1).
 */
export type Runs = Int32Array;

/** The runs of an array whose module i is previous module from[i] (< 0: rendered anew). */
export function runsOf(from: Int32Array): Runs {
  const out: number[] = [];
  for (let i = 0; i < from.length; ) {
    const j = from[i]!;
    let len = 1;
    if (j >= 0) while (i + len < from.length && from[i + len] === j + len) len++;
    out.push(i, j < 0 ? -1 : j, len);
    i += len;
  }
  return Int32Array.from(out);
}

/**
 * A text made of a header and one part per module, from the previous one (`old`, with its
 * part offsets `oldOff`, [0] being where the header ends): previous parts copied by runs,
 * the others from render(i). With `headerWhenEmpty` false (modules.devname) the header is
 * only there above a first line.
 */
export function spliceParts(old: Buffer, oldOff: Uint32Array, runs: Runs, n: number, render: (i: number) => string, header: string, headerWhenEmpty = true): Spliced {
  const pieces: Buffer[] = [];
  const off = new Uint32Array(n + 1);
  let pos = 0;
  for (let r = 0; r < runs.length; r += 3) {
    const i0 = runs[r]!;
    const j0 = runs[r + 1]!;
    const len = runs[r + 2]!;
    if (j0 >= 0) {
      const a = oldOff[j0]!;
      const b = oldOff[j0 + len]!;
      const shift = pos - a;
      for (let k = 0; k < len; k++) off[i0 + k] = oldOff[j0 + k]! + shift;
      if (b > a) pieces.push(old.subarray(a, b));
      pos += b - a;
    } else {
      off[i0] = pos;
      const s = render(i0);
      if (s.length > 0) {
        pieces.push(Buffer.from(s, 'latin1'));
        pos += s.length;
      }
    }
  }
  off[n] = pos;
  const h = headerWhenEmpty || pos > 0 ? header : '';
  if (h.length > 0) {
    pieces.unshift(Buffer.from(h, 'latin1'));
    for (let i = 0; i <= n; i++) off[i]! += h.length;
  }
  return { data: Buffer.concat(pieces, pos + h.length), off };
}

export interface SymbolLineEdit {
  readonly name: string;
  /** The owner to name on the symbol's line; undefined: no line for it. */
  readonly owner: string | undefined;
}

const PREFIX = 'alias symbol:';

/**
 * modules.symbols with the lines of some symbols added, changed or removed. Lines are in
 * kmod's symbol hash order, so each symbol's place is found by bisecting the old file.
 */
export function patchSymbolsText(old: Buffer, headerLength: number, edits: readonly SymbolLineEdit[]): Buffer {
  const nameAt = (start: number): string => old.toString('latin1', start + PREFIX.length, old.indexOf(0x20, start + PREFIX.length));
  /** The first line whose symbol is not before `name`, and whether it is `name`'s own. */
  const place = (name: string): { at: number; end: number; own: boolean } => {
    let lo = headerLength;
    let hi = old.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const start = old.lastIndexOf(0x0a, mid - 1) + 1;
      const end = old.indexOf(0x0a, start) + 1;
      if (compareHashOrder(nameAt(start), name, SYMBOLS_BUCKETS) < 0) lo = end;
      else hi = start;
    }
    if (lo >= old.length) return { at: lo, end: lo, own: false };
    const end = old.indexOf(0x0a, lo) + 1;
    return { at: lo, end, own: nameAt(lo) === name };
  };
  const ops: { at: number; end: number; text: string; name: string }[] = [];
  for (const e of edits) {
    const p = place(e.name);
    const line = e.owner === undefined ? '' : `${PREFIX}${e.name} ${e.owner}\n`;
    if (p.own) {
      if (old.toString('latin1', p.at, p.end) !== line) ops.push({ at: p.at, end: p.end, text: line, name: e.name });
    } else if (line !== '') ops.push({ at: p.at, end: p.at, text: line, name: e.name });
  }
  if (ops.length === 0) return old;
  // Insertions before the line they precede; several at one place in hash order.
  ops.sort((x, y) => x.at - y.at || Number(x.end > x.at) - Number(y.end > y.at) || compareHashOrder(x.name, y.name, SYMBOLS_BUCKETS));
  const pieces: Buffer[] = [];
  let pos = 0;
  for (const op of ops) {
    if (op.at > pos) pieces.push(old.subarray(pos, op.at));
    if (op.text !== '') pieces.push(Buffer.from(op.text, 'latin1'));
    pos = Math.max(pos, op.end);
  }
  if (pos < old.length) pieces.push(old.subarray(pos));
  return Buffer.concat(pieces);
}
