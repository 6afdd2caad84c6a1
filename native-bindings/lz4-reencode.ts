import { availableParallelism } from 'node:os';
import { mapPool } from '../src/util/pool.js';
import { corrupt, u32le, type Where } from './common.js';
import { decodeLz4Block, lz4BlockLength, Lz4BlockError } from './lz4-block.js';
import { lz4Compress, napiBlock, walkLegacy } from './lz4-legacy.js';
import { lz4Napi } from './native.js';

/*
 * Encoding the changed stretches of a legacy lz4 stream mostly from the old encoding itself.
 *
 * An LZ4 block is a list of sequences: some literal bytes, then a copy of `length` bytes from
 * `offset` bytes back in the block's output. A copy is right wherever the bytes it makes equal
 * the ones `offset` back, whatever produced those. So where an edit only moved content (a
 * member after a replaced one in a cpio archive), the old encoder's copies are tried at the
 * content's new place and kept where they make the new bytes: where the new content equals
 * the old around a copy (compared a block at a time) it holds as it did, elsewhere it is
 * checked byte for byte. Only what they do not reach goes through the compressor, in one call
 * for the whole stream, and the compressor's copies are placed and checked the same way. Each
 * new block is then written from its copies, with the new content's own bytes as the literals
 * between them, and decoded back with the kernel's rules before it is used.
 *
 * Without this, one changed member early in an 8 MiB chunk meant compressing the whole chunk
 * again (lz4 -l -6 does about 45 MB/s here): the old encoding was thrown away where most of
 * it still held.
 */

/** lz4 -l's chunk: 8 MiB of output. */
const CHUNK = 8 << 20;
const MIN_PIECE = 1 << 20;
/** Fresh content up to this size is compressed in this process when lz4-napi is there. */
const IN_PROCESS = 1 << 20;
/** Old sequences are taken up again only where this much of them checks in a row. */
const MIN_RUN = 64;
/** LZ4's end-of-block rules: the last copy starts this far before the end, and ends this far. */
const MF_LIMIT = 12;
const LAST_LITERALS = 5;

/** Sequences as parallel arrays, by where each one's literals start in the decoded content. */
export interface Sequences {
  start: Int32Array;
  literals: Int32Array;
  /** 0 for a block's last sequence, which is literals only. */
  offset: Int32Array;
  length: Int32Array;
  count: number;
}

/** A legacy chunk and where its output starts in the stream's decoded content. */
export interface PlacedChunk {
  readonly start: number;
  readonly size: number;
  readonly decodedStart: number;
}

/**
 * The sequences of chunks already checked by lz4BlockLength (so no bounds are checked here
 * beyond what keeps reading inside `src`), in order.
 */
export function readSequences(src: Uint8Array, chunks: readonly PlacedChunk[]): Sequences {
  let cap = Math.max(1024, chunks.reduce((n, c) => n + c.size, 0) >>> 2);
  let s: Sequences = { start: new Int32Array(cap), literals: new Int32Array(cap), offset: new Int32Array(cap), length: new Int32Array(cap), count: 0 };
  for (const c of chunks) {
    let ip = c.start;
    const to = c.start + c.size;
    let op = c.decodedStart;
    while (ip < to) {
      if (s.count === cap) {
        cap *= 2;
        s = grow(s, cap);
      }
      const token = src[ip++] as number;
      let lit = token >>> 4;
      if (lit === 15) for (let b = 255; b === 255 && ip < to; lit += b) b = src[ip++] as number;
      const i = s.count++;
      s.start[i] = op;
      s.literals[i] = lit;
      ip += lit;
      op += lit;
      if (ip + 2 > to) {
        s.offset[i] = 0;
        s.length[i] = 0;
        break;
      }
      s.offset[i] = (src[ip] as number) | ((src[ip + 1] as number) << 8);
      ip += 2;
      let len = token & 15;
      if (len === 15) for (let b = 255; b === 255 && ip < to; len += b) b = src[ip++] as number;
      s.length[i] = len + 4;
      op += len + 4;
    }
  }
  return s;
}

function grow(s: Sequences, cap: number): Sequences {
  const more = (a: Int32Array) => {
    const b = new Int32Array(cap);
    b.set(a);
    return b;
  };
  return { start: more(s.start), literals: more(s.literals), offset: more(s.offset), length: more(s.length), count: s.count };
}

/**
 * Whether a copy of `length` bytes from `offset` back, made at `at`, gives data's own bytes
 * there, inside [floor, end). For an overlapping copy too, this is each byte against the one
 * `offset` before it in the content wanted, so one comparison of the two ranges decides it.
 * The bytes compared are charged to `budget` (a unit per 256), so that hostile content cannot
 * make the checks unbounded.
 */
function copyHolds(data: Uint8Array, at: number, offset: number, length: number, floor: number, end: number, budget: { left: number }): boolean {
  const from = at - offset;
  if (offset <= 0 || from < floor || at + length > end) return false;
  budget.left -= length >>> 8;
  if (length >= 64) return Buffer.compare(data.subarray(at, at + length), data.subarray(from, from + length)) === 0;
  for (let k = 0; k < length; k++) if (data[at + k] !== data[from + k]) return false;
  return true;
}

/** Checked copies, in order: where each starts in the new content, its offset and length. */
class Copies {
  at = new Int32Array(1024);
  offset = new Int32Array(1024);
  length = new Int32Array(1024);
  count = 0;
  push(at: number, offset: number, length: number): void {
    if (this.count === this.at.length) {
      const more = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.at = more(this.at);
      this.offset = more(this.offset);
      this.length = more(this.length);
    }
    this.at[this.count] = at;
    this.offset[this.count] = offset;
    this.length[this.count++] = length;
  }
}

/**
 * A stretch of one new chunk: old sequences [first, end) of `old` moved by `d`, all of whose
 * copies hold there; or content for the compressor (fresh), whose checked copies end up as
 * [first, end) of `copies`.
 */
type Stretch = { readonly from: number; readonly to: number } & (
  | { readonly fresh: false; readonly old: Sequences; readonly d: number; readonly first: number; readonly end: number }
  | { fresh: true; copies?: Copies; first: number; end: number }
);

/** Each copy of a stretch, in order, as (where it starts in the new content, offset, length). */
function eachCopy(s: Stretch, use: (at: number, offset: number, length: number) => void): void {
  if (s.fresh) {
    const c = s.copies;
    if (c !== undefined) for (let k = s.first; k < s.end; k++) use(c.at[k]!, c.offset[k]!, c.length[k]!);
    return;
  }
  const { start, literals, offset, length } = s.old;
  for (let i = s.first; i < s.end; i++) if (length[i]! > 0) use(start[i]! + s.d + literals[i]!, offset[i]!, length[i]!);
}

/**
 * Where new content equals the old moved by `d`: [from, to) of the new, grown on demand from
 * a starting point, within [lo, hi). A copy inside such a stretch (its source too) makes the
 * same bytes it made in the old stream, so it needs no check of its own; the stretch is
 * compared a block at a time (memcmp), which costs far less than checking each copy.
 */
class EqualSpan {
  private from: number;
  private to: number;
  private ended = false;
  constructor(
    private readonly data: Uint8Array,
    private readonly oldData: Uint8Array,
    private readonly d: number,
    lo: number,
    private readonly hi: number,
    at: number,
    private readonly budget: { left: number },
  ) {
    // Back as far as a copy can reach (64 KiB), while the bytes agree.
    let from = at;
    const floor = Math.max(lo, at - 65536);
    while (from > floor && data[from - 1] === oldData[from - 1 - d]) from--;
    budget.left -= (at - from) >>> 8;
    this.from = from;
    this.to = Math.max(from, Math.min(at, hi));
  }

  covers(a: number, b: number): boolean {
    if (a < this.from) return false;
    while (b > this.to && !this.ended) this.grow(b);
    return b <= this.to;
  }

  private grow(want: number): void {
    const n = Math.min(Math.max(want - this.to, 1 << 14), this.hi - this.to);
    if (n <= 0) {
      this.ended = true;
      return;
    }
    this.budget.left -= n >>> 8;
    const x = this.data.subarray(this.to, this.to + n);
    const y = this.oldData.subarray(this.to - this.d, this.to - this.d + n);
    if (Buffer.compare(x, y) === 0) {
      this.to += n;
      return;
    }
    let k = 0;
    while (x[k] === y[k]) k++;
    this.to += k;
    this.ended = true;
  }
}

/** Candidate places, one per move, nearest first (a binary heap of [new position, move]). */
class MoveHeap {
  private readonly at: number[] = [];
  private readonly move: number[] = [];
  get size(): number {
    return this.at.length;
  }
  push(at: number, move: number): void {
    let i = this.at.length;
    this.at.push(at);
    this.move.push(move);
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (this.at[up]! <= at) break;
      this.swap(i, up);
      i = up;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.at[0]!, this.move[0]!];
    const lastAt = this.at.pop()!;
    const lastMove = this.move.pop()!;
    if (this.at.length > 0) {
      this.at[0] = lastAt;
      this.move[0] = lastMove;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.at.length && this.at[l]! < this.at[m]!) m = l;
        if (r < this.at.length && this.at[r]! < this.at[m]!) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
  private swap(a: number, b: number): void {
    [this.at[a], this.at[b]] = [this.at[b]!, this.at[a]!];
    [this.move[a], this.move[b]] = [this.move[b]!, this.move[a]!];
  }
}

/**
 * One new chunk, [c0, c1) of `data`, as stretches: runs of old sequences that still hold at
 * one of the candidate moves, and what lies between (fresh). `budget` bounds the checks over
 * the whole stream; once spent, the rest is fresh.
 */
function planChunk(old: Sequences, oldData: Uint8Array, data: Uint8Array, c0: number, c1: number, moves: readonly number[], budget: { left: number }): Stretch[] {
  const { start, literals, offset, length, count } = old;
  const stretches: Stretch[] = [];
  /** Bytes from op i at move d that check in a row, stopping once `enough` is reached. */
  const run = (i: number, d: number, enough: number): number => {
    const from = start[i]! + d;
    let p = from;
    for (; i < count && start[i]! + d === p && p - from < enough; i++) {
      const end = p + literals[i]! + length[i]!;
      if (end > c1 || (length[i]! > 0 && !copyHolds(data, p + literals[i]!, offset[i]!, length[i]!, c0, c1, budget))) break;
      budget.left--;
      p = end;
    }
    return p - from;
  };
  const lowerBound = (x: number) => {
    let lo = 0;
    let hi = count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (start[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  let cur = c0;
  while (cur < c1 && budget.left > 0) {
    // The nearest place, at any move, where old sequences start holding again: each move's
    // candidates are visited in the order of where they would land, so no move is scanned
    // past the first one that works.
    const next = moves.map((d) => lowerBound(cur - d));
    budget.left -= moves.length;
    const heap = new MoveHeap();
    next.forEach((i, m) => i < count && heap.push(start[i]! + moves[m]!, m));
    let found: { i: number; d: number } | undefined;
    while (found === undefined && budget.left > 0 && heap.size > 0) {
      const [p, k] = heap.pop();
      if (p >= c1) break;
      const i = next[k]!++;
      if (i + 1 < count) heap.push(start[i + 1]! + moves[k]!, k);
      budget.left--;
      // A run must begin with a copy: literals alone hold anywhere and save nothing.
      if (length[i]! > 0 && run(i, moves[k]!, MIN_RUN) >= Math.min(MIN_RUN, c1 - p)) found = { i, d: moves[k]! };
    }
    if (found === undefined) break;
    const from = start[found.i]! + found.d;
    if (from > cur) stretches.push({ from: cur, to: from, fresh: true, first: 0, end: 0 });
    const span = new EqualSpan(data, oldData, found.d, Math.max(c0, found.d), Math.min(c1, oldData.length + found.d), from, budget);
    let p = from;
    let i = found.i;
    for (; i < count && start[i]! + found.d === p; i++) {
      const end = p + literals[i]! + length[i]!;
      if (end > c1) break;
      // Where the new content equals the old around a copy, it holds as it did in the old
      // stream; elsewhere it is checked byte for byte.
      const at = p + literals[i]!;
      if (length[i]! > 0 && !span.covers(at - offset[i]!, end) && !copyHolds(data, at, offset[i]!, length[i]!, c0, c1, budget)) break;
      budget.left--;
      p = end;
    }
    stretches.push({ from, to: p, fresh: false, old, d: found.d, first: found.i, end: i });
    cur = p;
  }
  if (cur < c1) stretches.push({ from: cur, to: c1, fresh: true, first: 0, end: 0 });
  return stretches;
}

/** Bytes a length takes beyond its token nibble. */
const extra = (n: number) => (n < 15 ? 0 : 1 + Math.floor((n - 15) / 255));

function putLength(out: Uint8Array, at: number, n: number): number {
  if (n < 15) return at;
  n -= 15;
  while (n >= 255) {
    out[at++] = 255;
    n -= 255;
  }
  out[at++] = n;
  return at;
}

/**
 * One legacy chunk (its size word, then one block) for data[c0, c1) from its stretches'
 * checked copies (in order, not overlapping), the bytes between them as literals. Copies near the end are cut short or left out, so that
 * the block keeps LZ4's end rules (its last LAST_LITERALS bytes literals, no copy starting in
 * its last MF_LIMIT), which the kernel's decoder enforces against the chunk's 8 MiB space; the
 * block's own end is nearer, so the rules hold there too.
 */
function writeBlock(data: Uint8Array, c0: number, c1: number, stretches: readonly Stretch[]): Uint8Array {
  // A copy that runs into the last LAST_LITERALS bytes is cut short there (it makes the same
  // bytes, fewer of them); one left with under 4 bytes, or starting in the last MF_LIMIT, goes.
  const usable = (at: number, length: number) => (at <= c1 - MF_LIMIT ? Math.min(length, c1 - LAST_LITERALS - at) : 0);
  let size = 0;
  let p = c0;
  const count = (at: number, _offset: number, length: number) => {
    const n = usable(at, length);
    if (n < 4) return;
    size += 1 + extra(at - p) + (at - p) + 2 + extra(n - 4);
    p = at + n;
  };
  for (const s of stretches) eachCopy(s, count);
  size += 1 + extra(c1 - p) + (c1 - p);
  // The chunk's size word first, so that the chunk needs no second copy.
  const out = new Uint8Array(4 + size);
  out.set(u32le(size));
  let o = 4;
  p = c0;
  const sequence = (at: number, offset: number, length: number) => {
    const n = length === 0 ? 0 : usable(at, length);
    if (length > 0 && n < 4) return;
    const lit = at - p;
    const len = n - 4;
    out[o++] = (Math.min(lit, 15) << 4) | (n === 0 ? 0 : Math.min(len, 15));
    o = putLength(out, o, lit);
    if (lit < 32) for (let i = 0; i < lit; i++) out[o + i] = data[p + i] as number;
    else out.set(data.subarray(p, at), o);
    o += lit;
    if (n === 0) return;
    out[o++] = offset & 0xff;
    out[o++] = offset >>> 8;
    o = putLength(out, o, len);
    p = at + n;
  };
  for (const s of stretches) eachCopy(s, sequence);
  // The last sequence: literals only.
  sequence(c1, 0, 0);
  if (o !== out.length) throw new Error('lz4 block size miscounted (internal error)');
  return out;
}

/**
 * The compressor's sequences for `joined`, at positions in it. A little (the usual case: a
 * few changed members) goes through lz4-napi in this process, when it is there, rather than
 * lz4 processes started from a big one; lz4-napi has one level, so `level` is not asked of
 * that little. More goes through lz4Compress (lz4 -l at `level`, or lz4-napi where the
 * program is missing), in pieces side by side (one per core), each under one chunk.
 */
async function compressFresh(joined: Uint8Array, level: number | undefined, where: Where): Promise<Sequences[]> {
  const total = joined.length;
  if (total === 0) return [];
  const napi = total <= IN_PROCESS ? lz4Napi() : undefined;
  if (napi) {
    const block = napiBlock(napi, joined);
    if (blockLength(block, 0, block.length, where) !== total) throw corrupt('lz4', 'lz4-napi wrote a block of another length (internal error)', where);
    return [readSequences(block, [{ start: 0, size: block.length, decodedStart: 0 }])];
  }
  const cores = Math.max(1, Math.min(availableParallelism(), 4));
  const piece = Math.min(CHUNK, Math.max(MIN_PIECE, Math.ceil(total / cores)));
  const starts: number[] = [];
  for (let a = 0; a < total; a += piece) starts.push(a);
  return mapPool(starts, cores, async (a) => {
    const bytes = await lz4Compress(joined.subarray(a, Math.min(total, a + piece)), level, where);
    let decodedStart = a;
    const chunks = walkLegacy(bytes, 0, where).chunks.map((c) => {
      const placed = { ...c, decodedStart };
      decodedStart += blockLength(bytes, c.start, c.start + c.size, where);
      return placed;
    });
    return readSequences(bytes, chunks);
  });
}

function blockLength(bytes: Uint8Array, from: number, to: number, where: Where): number {
  try {
    return lz4BlockLength(bytes, from, to);
  } catch (e) {
    if (!(e instanceof Lz4BlockError)) throw e;
    throw corrupt('lz4', `the compressor wrote an invalid block: ${e.message}`, where);
  }
}

export interface Reencoded {
  /** Each gap's new chunks, each with its size word. */
  readonly chunks: Uint8Array[][];
  /** Bytes that went through the compressor. */
  readonly compressedBytes: number;
}

/**
 * New legacy chunks for each gap [from, to) of `data`, cut at 8 MiB as lz4 -l cuts, from the
 * old sequences where they hold at one of `moves` and the compressor (at `level`) for the rest.
 * Every chunk is decoded back and compared before it is returned.
 */
export async function reencodeGaps(old: Sequences, oldData: Uint8Array, data: Uint8Array, gaps: readonly (readonly [number, number])[], moves: readonly number[], level: number | undefined, where: Where): Promise<Reencoded> {
  const budget = { left: 4 * old.count + (1 << 20) };
  const plans: Array<{ c0: number; c1: number; stretches: Stretch[] }[]> = gaps.map(([from, to]) => {
    const chunks = [];
    for (let c0 = from; c0 < to; c0 += CHUNK) {
      const c1 = Math.min(to, c0 + CHUNK);
      chunks.push({ c0, c1, stretches: planChunk(old, oldData, data, c0, c1, moves, budget) });
    }
    return chunks;
  });

  // Everything fresh, end to end, through the compressor: in pieces side by side (one lz4
  // process per core), each under one chunk.
  const fresh = plans.flat().flatMap((c) => c.stretches.filter((s) => s.fresh).map((s) => ({ s, c })));
  const total = fresh.reduce((n, f) => n + f.s.to - f.s.from, 0);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const { s } of fresh) {
    joined.set(data.subarray(s.from, s.to), at);
    at += s.to - s.from;
  }
  const encoded = await compressFresh(joined, level, where);
  // The compressor's copies are a fraction of the content: checked without a budget.
  const unbounded = { left: Infinity };
  const compressed = new Copies();
  let f = 0;
  let open = -1;
  let joinedAt = 0;
  for (const seqs of encoded) {
    for (let i = 0; i < seqs.count; i++) {
      if (seqs.length[i] === 0) continue;
      const q = seqs.start[i]! + seqs.literals[i]!;
      while (q >= joinedAt + fresh[f]!.s.to - fresh[f]!.s.from) joinedAt += fresh[f]!.s.to - fresh[f++]!.s.from;
      const { s, c } = fresh[f]!;
      const newAt = q - joinedAt + s.from;
      if (newAt + seqs.length[i]! > s.to || !copyHolds(data, newAt, seqs.offset[i]!, seqs.length[i]!, c.c0, c.c1, unbounded)) continue;
      if (f !== open) {
        if (open >= 0) fresh[open]!.s.end = compressed.count;
        s.first = compressed.count;
        s.copies = compressed;
        open = f;
      }
      compressed.push(newAt, seqs.offset[i]!, seqs.length[i]!);
    }
  }
  if (open >= 0) fresh[open]!.s.end = compressed.count;

  // One buffer to decode every new chunk back into.
  const back = new Uint8Array(Math.max(0, ...plans.flat().map((c) => c.c1 - c.c0)));
  const chunks = plans.map((gap) =>
    gap.map(({ c0, c1, stretches }) => {
      const chunk = writeBlock(data, c0, c1, stretches);
      const n = decodeLz4Block(chunk, 4, chunk.length, back, 0, c1 - c0, CHUNK);
      if (n !== c1 - c0 || Buffer.compare(back.subarray(0, n), data.subarray(c0, c1)) !== 0) throw corrupt('lz4', 'a re-encoded chunk does not decode to its content (internal error)', where);
      return chunk;
    }),
  );
  return { chunks, compressedBytes: total };
}
