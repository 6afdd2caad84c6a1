import { KabiError } from '../errors.js';
import { INDEX_MAGIC, INDEX_VERSION, type IndexLayout, type IndexValue } from './index-format.js';

/**
 * Changing a few keys of a kmod index without rebuilding it. kmod's trie is canonical for its
 * key set (every node below the root holds the longest common prefix of the keys under it),
 * so the trie after an edit differs from the old one only along the edited keys' paths. Those
 * nodes are parsed and changed; every other subtree is copied as bytes, which in either
 * layout occupy one contiguous range, with the offsets inside it moved by the distance it
 * moved. A renumbering of priorities (module indexes) is applied to every value on the way.
 * The result is byte for byte what writing the new key set from scratch gives.
 *
 * Moving a subtree means finding the offset words (and, to renumber, the priorities) inside
 * it. Given where all of them are in the old index (indexTables()), the patch rewrites them
 * without walking the nodes, and returns the same tables for the new index.
 */

export interface IndexEdit {
  readonly key: string;
  /** The key's complete new list, in index order; empty removes the key. */
  readonly values: readonly IndexValue[];
}

const FLAG_PREFIX = 0x80000000;
const FLAG_VALUES = 0x40000000;
const FLAG_CHILDS = 0x20000000;
const OFFSET_MASK = 0x0fffffff;

/** An old node's values left as they are: the byte range after the value count. */
interface RawValues {
  readonly count: number;
  readonly start: number;
  readonly end: number;
}

interface Node {
  prefix: string;
  values: readonly IndexValue[] | RawValues | undefined;
  /** Present children in ascending character order. */
  chars: number[];
  /** A changed child, or an old one's offset word (copied untouched). */
  kids: (Node | number)[];
  size: number;
  total: number;
}

/**
 * The index `old` (as written by IndexBuilder in `layout`) with the edits applied and every
 * priority p outside the edited keys replaced by remap[p]. `old` must be a complete index.
 */
/** Where an index's child offset words and value priorities are, in ascending order. */
export interface IndexTables {
  readonly words: Uint32Array;
  readonly prios: Uint32Array;
}

export interface PatchedIndex {
  readonly data: Uint8Array;
  /** The new index's tables, when the old one's were given or every node was visited. */
  readonly tables: IndexTables | undefined;
}

export function patchIndex(old: Uint8Array, layout: IndexLayout, edits: readonly IndexEdit[], remap?: Int32Array, tables?: IndexTables): PatchedIndex {
  if (edits.length === 0 && remap === undefined) return { data: old, tables };
  const src = Buffer.from(old.buffer, old.byteOffset, old.byteLength);
  if (src.length < 12 || src.readUInt32BE(0) !== INDEX_MAGIC) throw new KabiError('DEPMOD_FORMAT', 'not a kmod index');
  const u32 = (at: number) => ((src[at]! << 24) | (src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!) >>> 0;

  const parse = (word: number): Node => {
    let p = word & OFFSET_MASK;
    let prefix = '';
    if (word & FLAG_PREFIX) {
      const end = src.indexOf(0, p);
      prefix = src.toString('latin1', p, end);
      p = end + 1;
    }
    const chars: number[] = [];
    const kids: number[] = [];
    if (word & FLAG_CHILDS) {
      const first = src[p]!;
      const last = src[p + 1]!;
      p += 2;
      for (let c = first; c <= last; c++, p += 4) {
        const w = u32(p);
        if (w !== 0) {
          chars.push(c);
          kids.push(w);
        }
      }
    }
    let values: RawValues | undefined;
    if (word & FLAG_VALUES) {
      const count = u32(p);
      const start = p + 4;
      let q = start;
      for (let i = 0; i < count; i++) q = src.indexOf(0, q + 4) + 1;
      values = { count, start, end: q };
    }
    return { prefix, values, chars, kids, size: 0, total: 0 };
  };

  /** Where an old node ends. */
  const nodeEnd = (word: number): number => {
    let p = word & OFFSET_MASK;
    if (word & FLAG_PREFIX) p = src.indexOf(0, p) + 1;
    if (word & FLAG_CHILDS) p += 2 + 4 * (src[p + 1]! - src[p]! + 1);
    if (word & FLAG_VALUES) {
      const count = u32(p);
      p += 4;
      for (let i = 0; i < count; i++) p = src.indexOf(0, p + 4) + 1;
    }
    return p;
  };
  const firstChild = (word: number): number => {
    let p = word & OFFSET_MASK;
    if (word & FLAG_PREFIX) p = src.indexOf(0, p) + 1;
    return u32(p + 2);
  };
  const lastChild = (word: number): number => {
    let p = word & OFFSET_MASK;
    if (word & FLAG_PREFIX) p = src.indexOf(0, p) + 1;
    return u32(p + 2 + 4 * (src[p + 1]! - src[p]!));
  };
  /** The bytes an old subtree occupies: post-order ends with its root, pre-order starts with it. */
  const range = (word: number): [number, number] => {
    if (layout === 'post-order') {
      let w = word;
      while (w & FLAG_CHILDS) w = firstChild(w);
      return [w & OFFSET_MASK, nodeEnd(word)];
    }
    let w = word;
    while (w & FLAG_CHILDS) w = lastChild(w);
    return [word & OFFSET_MASK, nodeEnd(w)];
  };

  const root = parse(u32(8));
  const materialize = (n: Node, i: number): Node => {
    const k = n.kids[i]!;
    if (typeof k !== 'number') return k;
    const m = parse(k);
    n.kids[i] = m;
    return m;
  };
  const childIndex = (n: Node, c: number): number => {
    const chars = n.chars;
    for (let i = 0; i < chars.length; i++) {
      if (chars[i] === c) return i;
      if (chars[i]! > c) return -1 - i;
    }
    return -1 - chars.length;
  };

  const insert = (n: Node, key: string, pos: number, values: readonly IndexValue[]): void => {
    for (;;) {
      if (pos === key.length) {
        n.values = values;
        return;
      }
      const c = key.charCodeAt(pos);
      const i = childIndex(n, c);
      if (i < 0) {
        n.chars.splice(-1 - i, 0, c);
        n.kids.splice(-1 - i, 0, { prefix: key.slice(pos + 1), values, chars: [], kids: [], size: 0, total: 0 });
        return;
      }
      const child = materialize(n, i);
      const p = child.prefix;
      let l = 0;
      while (l < p.length && pos + 1 + l < key.length && p.charCodeAt(l) === key.charCodeAt(pos + 1 + l)) l++;
      if (l < p.length) {
        // The key leaves the child's prefix: a new node takes the common part.
        const mid: Node = { prefix: p.slice(0, l), values: undefined, chars: [p.charCodeAt(l)], kids: [child], size: 0, total: 0 };
        child.prefix = p.slice(l + 1);
        n.kids[i] = mid;
        n = mid;
      } else n = child;
      pos += 1 + l;
    }
  };

  /** Removes the key below n; a child left without values and with at most one child of its own goes. */
  const remove = (n: Node, key: string, pos: number): void => {
    if (pos === key.length) {
      n.values = undefined;
      return;
    }
    const i = childIndex(n, key.charCodeAt(pos));
    if (i < 0) return;
    const child = materialize(n, i);
    const p = child.prefix;
    if (!key.startsWith(p, pos + 1)) return;
    remove(child, key, pos + 1 + p.length);
    if (child.values !== undefined) return;
    if (child.chars.length === 0) {
      n.chars.splice(i, 1);
      n.kids.splice(i, 1);
    } else if (child.chars.length === 1) {
      const only = materialize(child, 0);
      only.prefix = p + String.fromCharCode(child.chars[0]!) + only.prefix;
      n.kids[i] = only;
    }
  };

  for (const e of edits) {
    checkAscii(e.key);
    for (const v of e.values) checkAscii(v.value);
    if (e.values.length > 0) insert(root, e.key, 0, e.values);
    else remove(root, e.key, 0);
  }

  const valuesSize = (v: Node['values']): number => {
    if (v === undefined) return 0;
    if ('start' in v) return 4 + v.end - v.start;
    let s = 4;
    for (const x of v as readonly IndexValue[]) s += 5 + x.value.length;
    return s;
  };
  const nodeSize = (n: Node): number => {
    let size = n.prefix.length > 0 ? n.prefix.length + 1 : 0;
    if (n.chars.length > 0) size += 2 + 4 * (n.chars[n.chars.length - 1]! - n.chars[0]! + 1);
    return size + valuesSize(n.values);
  };
  // Sizes first: pre-order needs each subtree's size before writing it; both need the total.
  const ranges = new Map<number, [number, number]>();
  const sizeOf = (n: Node): number => {
    n.size = nodeSize(n);
    let total = n.size;
    for (const k of n.kids) {
      if (typeof k === 'number') {
        const r = range(k);
        ranges.set(k, r);
        total += r[1] - r[0];
      } else total += sizeOf(k);
    }
    n.total = total;
    return total;
  };
  const out = Buffer.alloc(12 + sizeOf(root));
  out.writeUInt32BE(INDEX_MAGIC, 0);
  out.writeUInt32BE(INDEX_VERSION, 4);
  const put32 = (v: number, at: number) => {
    out[at] = v >>> 24;
    out[at + 1] = (v >>> 16) & 0xff;
    out[at + 2] = (v >>> 8) & 0xff;
    out[at + 3] = v & 0xff;
  };

  const tracked = tables !== undefined || remap !== undefined;
  // Both layouts write in ascending position: the new tables come out in order, unless
  // old subtrees had to be walked (children before or after their parents, by layout).
  const newWords = new Positions();
  const newPrios = new Positions();
  let walked = false;
  /** Rewrites the words of an old subtree copied `delta` bytes further (and its priorities). */
  const relocate = (word: number, delta: number): void => {
    walked = true;
    let p = word & OFFSET_MASK;
    if (word & FLAG_PREFIX) p = src.indexOf(0, p) + 1;
    if (word & FLAG_CHILDS) {
      const first = src[p]!;
      const last = src[p + 1]!;
      p += 2;
      for (let c = first; c <= last; c++, p += 4) {
        const w = u32(p);
        if (w === 0) continue;
        if (delta !== 0) put32(w + delta, p + delta);
        newWords.push(p + delta);
        relocate(w, delta);
      }
    }
    if (remap !== undefined && word & FLAG_VALUES) {
      const count = u32(p);
      p += 4;
      for (let i = 0; i < count; i++) {
        put32(remapped(u32(p)), p + delta);
        newPrios.push(p + delta);
        p = src.indexOf(0, p + 4) + 1;
      }
    }
  };
  const remapped = (prio: number): number => {
    const r = remap![prio];
    if (r === undefined || r < 0) throw new KabiError('DEPMOD_FORMAT', `index value with priority ${prio} has no new priority`);
    return r;
  };
  /** The priorities of old values in [s, e), copied `delta` bytes further. */
  const movePrios = (s: number, e: number, delta: number) => {
    const prios = tables!.prios;
    const a = lowerBound(prios, s);
    const b = lowerBound(prios, e);
    if (remap !== undefined) for (let k = a; k < b; k++) put32(remapped(u32(prios[k]!)), prios[k]! + delta);
    newPrios.range(prios, a, b, delta);
  };
  const copy = (word: number, at: number): number => {
    const [s, e] = ranges.get(word)!;
    src.copy(out, at, s, e);
    const delta = at - s;
    if (tables !== undefined) {
      // The subtree's words and priorities are those of the old tables within its bytes.
      const words = tables.words;
      const a = lowerBound(words, s);
      const b = lowerBound(words, e);
      if (delta !== 0) for (let k = a; k < b; k++) put32(u32(words[k]!) + delta, words[k]! + delta);
      newWords.range(words, a, b, delta);
      movePrios(s, e, delta);
    } else if (remap !== undefined || delta !== 0) relocate(word, delta);
    return word + delta;
  };

  const putNode = (n: Node, at: number, words: number[]): number => {
    let p = at;
    let flags = 0;
    if (n.prefix.length > 0) {
      p += out.write(n.prefix, p, 'latin1');
      out[p++] = 0;
      flags |= FLAG_PREFIX;
    }
    const chars = n.chars;
    if (chars.length > 0) {
      const first = chars[0]!;
      const last = chars[chars.length - 1]!;
      out[p++] = first;
      out[p++] = last;
      for (let k = 0; k < chars.length; k++) {
        put32(words[k]!, p + 4 * (chars[k]! - first));
        if (tracked) newWords.push(p + 4 * (chars[k]! - first));
      }
      p += 4 * (last - first + 1);
      flags |= FLAG_CHILDS;
    }
    const v = n.values;
    if (v !== undefined) {
      flags |= FLAG_VALUES;
      if ('start' in v) {
        put32(v.count, p);
        src.copy(out, p + 4, v.start, v.end);
        if (tables !== undefined) movePrios(v.start, v.end, p + 4 - v.start);
        else if (remap !== undefined) {
          for (let i = 0, q = v.start; i < v.count; i++) {
            put32(remapped(u32(q)), p + 4 + q - v.start);
            newPrios.push(p + 4 + q - v.start);
            q = src.indexOf(0, q + 4) + 1;
          }
        }
      } else {
        const list = v as readonly IndexValue[];
        put32(list.length, p);
        let q = p + 4;
        for (const x of list) {
          put32(x.priority >>> 0, q);
          if (tracked) newPrios.push(q);
          q += 4 + out.write(x.value, q + 4, 'latin1');
          out[q++] = 0;
        }
      }
    }
    return (at | flags) >>> 0;
  };

  let rootWord: number;
  if (layout === 'post-order') {
    let pos = 12;
    const post = (n: Node): number => {
      const words = n.kids.map((k) => {
        if (typeof k !== 'number') return post(k);
        const w = copy(k, pos);
        const [s, e] = ranges.get(k)!;
        pos += e - s;
        return w;
      });
      const at = pos;
      pos += n.size;
      return putNode(n, at, words);
    };
    rootWord = post(root);
  } else {
    // The node before its children: their offsets are known from the sizes.
    const flagsOf = (n: Node) => (n.prefix.length > 0 ? FLAG_PREFIX : 0) | (n.chars.length > 0 ? FLAG_CHILDS : 0) | (n.values !== undefined ? FLAG_VALUES : 0);
    const pre = (n: Node, at: number): number => {
      let next = at + n.size;
      const places = n.kids.map((k) => {
        const p = next;
        next += typeof k === 'number' ? ranges.get(k)![1] - ranges.get(k)![0] : k.total;
        return p;
      });
      const word = putNode(
        n,
        at,
        n.kids.map((k, i) => (typeof k === 'number' ? k + places[i]! - ranges.get(k)![0] : (places[i]! | flagsOf(k)) >>> 0)),
      );
      n.kids.forEach((k, i) => (typeof k === 'number' ? copy(k, places[i]!) : pre(k, places[i]!)));
      return word;
    };
    rootWord = pre(root, 12);
  }
  put32(rootWord, 8);
  return { data: out, tables: tracked ? { words: newWords.finish(walked), prios: newPrios.finish(walked) } : undefined };
}

/** Ascending positions, gathered piece by piece: single ones and ranges of an old table. */
class Positions {
  private readonly chunks: Uint32Array[] = [];
  private single: number[] = [];

  push(p: number): void {
    this.single.push(p);
  }

  /** table[a, b), each moved by delta. */
  range(table: Uint32Array, a: number, b: number, delta: number): void {
    if (b <= a) return;
    this.flush();
    if (delta === 0) this.chunks.push(table.subarray(a, b));
    else {
      const moved = new Uint32Array(b - a);
      for (let k = a; k < b; k++) moved[k - a] = table[k]! + delta;
      this.chunks.push(moved);
    }
  }

  private flush(): void {
    if (this.single.length === 0) return;
    this.chunks.push(Uint32Array.from(this.single));
    this.single = [];
  }

  finish(sort: boolean): Uint32Array {
    this.flush();
    let n = 0;
    for (const c of this.chunks) n += c.length;
    const out = new Uint32Array(n);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return sort ? out.sort() : out;
  }
}

/** Where every child offset word and value priority of an index is (a walk of all its nodes). */
export function indexTables(index: Uint8Array): IndexTables {
  const b = Buffer.from(index.buffer, index.byteOffset, index.byteLength);
  const words: number[] = [];
  const prios: number[] = [];
  if (b.length < 12) return { words: new Uint32Array(0), prios: new Uint32Array(0) };
  const stack = [b.readUInt32BE(8)];
  while (stack.length > 0) {
    const word = stack.pop()!;
    let p = word & OFFSET_MASK;
    if (word & FLAG_PREFIX) p = b.indexOf(0, p) + 1;
    if (word & FLAG_CHILDS) {
      const first = b[p]!;
      const last = b[p + 1]!;
      p += 2;
      for (let c = first; c <= last; c++, p += 4) {
        const w = b.readUInt32BE(p);
        if (w === 0) continue;
        words.push(p);
        stack.push(w);
      }
    }
    if (word & FLAG_VALUES) {
      const count = b.readUInt32BE(p);
      p += 4;
      for (let i = 0; i < count; i++) {
        prios.push(p);
        p = b.indexOf(0, p + 4) + 1;
      }
    }
  }
  return { words: Uint32Array.from(words).sort(), prios: Uint32Array.from(prios).sort() };
}

function lowerBound(a: Uint32Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function checkAscii(s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c > 0x7f) {
      throw new KabiError('DEPMOD_FORMAT', `index key or value ${JSON.stringify(s)} has a character outside 7-bit ASCII (0x${c.toString(16)}); kmod's index cannot hold it`);
    }
  }
}
