import { KabiError } from '../errors.js';

/**
 * kmod's binary index (modules.*.bin): a path-compressed trie over 7-bit ASCII keys, each key
 * holding a list of (priority, value) strings. All integers are big-endian u32.
 *
 *   header: magic 0xB007F457, version 0x00020001, root node offset word
 *   node:   [prefix NUL] [u8 first, u8 last, u32 child[last-first+1]] [u32 n, n × (u32 prio, value NUL)]
 *
 * A node offset word is the absolute file offset in its low 28 bits plus flags saying which of
 * the three parts the node has. kmod up to 33 writes nodes post-order (children before their
 * parent, root last); kmod 34 writes them pre-order (root at offset 12). Readers follow the
 * offsets, so both layouts read the same.
 */

export const INDEX_MAGIC = 0xb007f457;
export const INDEX_VERSION = 0x00020001;
const FLAG_PREFIX = 0x80000000;
const FLAG_VALUES = 0x40000000;
const FLAG_CHILDS = 0x20000000;
const OFFSET_MASK = 0x0fffffff;

export type IndexLayout = 'post-order' | 'pre-order';

export interface IndexValue {
  readonly priority: number;
  readonly value: string;
}

/**
 * Collects insertions the way kmod's index_insert() orders them: a key's values sorted by
 * priority, a new value going before existing ones of equal priority (so equal priorities
 * end up newest first). Duplicates are kept, as kmod keeps them.
 */
export class IndexBuilder {
  private readonly keys = new Map<string, IndexValue[]>();

  insert(key: string, value: string, priority: number): void {
    const list = this.keys.get(key);
    if (list === undefined) {
      this.keys.set(key, [{ priority, value }]);
      return;
    }
    let at = 0;
    while (at < list.length && list[at]!.priority < priority) at++;
    list.splice(at, 0, { priority, value });
  }

  /** Whether the key already holds this value (what depmod -w warns about). */
  has(key: string, value: string): boolean {
    return this.keys.get(key)?.some((v) => v.value === value) ?? false;
  }

  get size(): number {
    return this.keys.size;
  }

  /** Serialise in the given layout. */
  write(layout: IndexLayout): Uint8Array {
    return layout === 'post-order' ? writePostOrder(this.keys) : writeIndex(this.keys, layout);
  }
}

const NOT_ASCII = /[^\x01-\x7f]/;

/** kmod refuses (or, built with a signed char, corrupts) anything beyond 7-bit ASCII. */
function checkAscii(parts: Iterable<string>): void {
  for (const s of parts) {
    const at = s.search(NOT_ASCII);
    if (at >= 0) {
      throw new KabiError(
        'DEPMOD_FORMAT',
        `index key or value ${JSON.stringify(s)} has a character outside 7-bit ASCII (0x${s.charCodeAt(at).toString(16)}); kmod's index cannot hold it`,
      );
    }
  }
}

/**
 * kmod ≤ 33's post-order layout in one pass over the sorted keys, without building the trie:
 * a stack holds the open nodes along the previous key's path; each key's common prefix with
 * the previous one says which of them are complete (written out, children before parents,
 * in character order) and where an open node's prefix has to be split. Gives the same bytes
 * as writing the trie built by buildTrie() in post-order, with far less allocation.
 */
function writePostOrder(map: ReadonlyMap<string, IndexValue[]>): Uint8Array {
  const keys = [...map.keys()].sort();
  checkKeysAndValues(keys, map);
  let buf = Buffer.allocUnsafe(1 << 16);
  let pos = 12;
  const ensure = (n: number) => {
    if (pos + n <= buf.length) return;
    let cap = buf.length;
    while (pos + n > cap) cap *= 2;
    const grown = Buffer.allocUnsafe(cap);
    buf.copy(grown, 0, 0, pos);
    buf = grown;
  };
  /** An open node: its prefix is key[start, end) of keys[key]; children so far, in character order. */
  interface Open {
    start: number;
    end: number;
    key: number;
    values: IndexValue[] | undefined;
    chars: number[];
    words: number[];
  }
  const emit = (n: Open): number => {
    const key = keys[n.key]!;
    const nc = n.chars.length;
    let size = n.end > n.start ? n.end - n.start + 1 : 0;
    if (nc > 0) size += 2 + 4 * (n.chars[nc - 1]! - n.chars[0]! + 1);
    if (n.values) {
      size += 4;
      for (const v of n.values) size += 5 + v.value.length;
    }
    ensure(size);
    const at = pos;
    let p = pos;
    let flags = 0;
    if (n.end > n.start) {
      for (let c = n.start; c < n.end; c++) buf[p++] = key.charCodeAt(c);
      buf[p++] = 0;
      flags |= FLAG_PREFIX;
    }
    if (nc > 0) {
      const first = n.chars[0]!;
      const last = n.chars[nc - 1]!;
      buf[p++] = first;
      buf[p++] = last;
      // Characters with no child keep a zero word.
      buf.fill(0, p, p + 4 * (last - first + 1));
      for (let k = 0; k < nc; k++) buf.writeUInt32BE(n.words[k]!, p + 4 * (n.chars[k]! - first));
      p += 4 * (last - first + 1);
      flags |= FLAG_CHILDS;
    }
    if (n.values) {
      buf.writeUInt32BE(n.values.length, p);
      p += 4;
      for (const v of n.values) {
        buf.writeUInt32BE(v.priority >>> 0, p);
        p += 4;
        const s = v.value;
        // Short strings are cheaper copied here; long ones (dependency lines) natively.
        if (s.length > 24) buf.write(s, p, 'latin1');
        else for (let c = 0; c < s.length; c++) buf[p + c] = s.charCodeAt(c);
        p += s.length;
        buf[p++] = 0;
      }
      flags |= FLAG_VALUES;
    }
    pos = p;
    return (at | flags) >>> 0;
  };
  const finish = (n: Open, parent: Open) => {
    const word = emit(n);
    parent.chars.push(keys[n.key]!.charCodeAt(n.start - 1));
    parent.words.push(word);
  };
  // The root never gets a prefix (index_create() gives it none and nothing splits it).
  const stack: Open[] = [{ start: 0, end: 0, key: 0, values: undefined, chars: [], words: [] }];
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    let common = 0;
    if (i > 0) {
      const prev = keys[i - 1]!;
      const max = Math.min(prev.length, k.length);
      while (common < max && prev.charCodeAt(common) === k.charCodeAt(common)) common++;
    }
    while (stack.length > 1 && stack[stack.length - 1]!.start > common) finish(stack.pop()!, stack[stack.length - 1]!);
    const top = stack[stack.length - 1]!;
    if (top.end > common) {
      // The key leaves the top node inside its prefix: the node keeps [start, common) and its
      // old tail, now complete, becomes its first child.
      const tail: Open = { start: common + 1, end: top.end, key: top.key, values: top.values, chars: top.chars, words: top.words };
      top.end = common;
      top.values = undefined;
      top.chars = [];
      top.words = [];
      finish(tail, top);
    }
    if (k.length === common) top.values = map.get(k);
    else stack.push({ start: common + 1, end: k.length, key: i, values: map.get(k), chars: [], words: [] });
  }
  while (stack.length > 1) finish(stack.pop()!, stack[stack.length - 1]!);
  const rootWord = emit(stack[0]!);
  buf.writeUInt32BE(INDEX_MAGIC, 0);
  buf.writeUInt32BE(INDEX_VERSION, 4);
  buf.writeUInt32BE(rootWord, 8);
  return buf.subarray(0, pos);
}

function checkKeysAndValues(sorted: readonly string[], keys: ReadonlyMap<string, IndexValue[]>): void {
  checkAscii(sorted);
  const checked = new Set<string>();
  for (const list of keys.values()) {
    for (const v of list) {
      if (checked.has(v.value)) continue;
      checked.add(v.value);
      checkAscii([v.value]);
    }
  }
}

interface TrieNode {
  prefix: string;
  values: IndexValue[] | undefined;
  /** Present children in ascending character order. */
  chars: number[];
  kids: TrieNode[];
  /** Bytes of this node alone, and of its whole subtree. */
  size: number;
  total: number;
}

/**
 * The trie kmod's repeated index_insert() ends up with, built directly from the sorted keys
 * (for kmod ≥ 34's pre-order layout, which needs subtree sizes before writing):
 * every node below the root carries the longest common prefix of the key tails under it;
 * the root always keeps an empty prefix (index_create() gives it one and nothing splits it).
 */
function buildTrie(keys: ReadonlyMap<string, IndexValue[]>): TrieNode {
  const sorted = [...keys.keys()].sort();
  checkKeysAndValues(sorted, keys);
  const build = (lo: number, hi: number, depth: number, isRoot: boolean): TrieNode => {
    let end = depth;
    const first = sorted[lo]!;
    if (!isRoot) {
      const last = sorted[hi - 1]!;
      const max = Math.min(first.length, last.length);
      while (end < max && first.charCodeAt(end) === last.charCodeAt(end)) end++;
    }
    const node: TrieNode = { prefix: end > depth ? first.slice(depth, end) : '', values: undefined, chars: [], kids: [], size: 0, total: 0 };
    let i = lo;
    if (first.length === end) {
      node.values = keys.get(first)!;
      i++;
    }
    while (i < hi) {
      const c = sorted[i]!.charCodeAt(end);
      let j = i + 1;
      while (j < hi && sorted[j]!.charCodeAt(end) === c) j++;
      node.chars.push(c);
      node.kids.push(build(i, j, end + 1, false));
      i = j;
    }
    let size = node.prefix.length > 0 ? node.prefix.length + 1 : 0;
    if (node.chars.length > 0) size += 2 + 4 * (node.chars[node.chars.length - 1]! - node.chars[0]! + 1);
    if (node.values) {
      size += 4;
      for (const v of node.values) size += 5 + v.value.length;
    }
    node.size = size;
    let total = size;
    for (const k of node.kids) total += k.total;
    node.total = total;
    return node;
  };
  if (sorted.length === 0) return { prefix: '', values: undefined, chars: [], kids: [], size: 0, total: 0 };
  return build(0, sorted.length, 0, true);
}

function writeIndex(map: ReadonlyMap<string, IndexValue[]>, layout: IndexLayout): Uint8Array {
  const root = buildTrie(map);
  const buf = Buffer.alloc(12 + root.total);
  buf.writeUInt32BE(INDEX_MAGIC, 0);
  buf.writeUInt32BE(INDEX_VERSION, 4);
  const u32 = (v: number, at: number) => {
    buf[at] = v >>> 24;
    buf[at + 1] = (v >>> 16) & 0xff;
    buf[at + 2] = (v >>> 8) & 0xff;
    buf[at + 3] = v & 0xff;
  };
  const str = (s: string, at: number) => {
    // Short strings are cheaper copied here; long ones (dependency lines) natively.
    if (s.length > 24) buf.write(s, at, 'latin1');
    else for (let c = 0; c < s.length; c++) buf[at + c] = s.charCodeAt(c);
    buf[at + s.length] = 0;
    return at + s.length + 1;
  };

  // Writes node n at `at`, given its children's offset words.
  const putNode = (n: TrieNode, at: number, childWords: number[]): number => {
    let p = at;
    let flags = 0;
    if (n.prefix.length > 0) {
      p = str(n.prefix, p);
      flags |= FLAG_PREFIX;
    }
    const chars = n.chars;
    if (chars.length > 0) {
      const first = chars[0]!;
      const last = chars[chars.length - 1]!;
      buf[p++] = first;
      buf[p++] = last;
      // Characters with no child keep a zero word.
      for (let k = 0; k < chars.length; k++) u32(childWords[k]!, p + 4 * (chars[k]! - first));
      p += 4 * (last - first + 1);
      flags |= FLAG_CHILDS;
    }
    if (n.values) {
      u32(n.values.length, p);
      p += 4;
      for (const v of n.values) {
        u32(v.priority >>> 0, p);
        p = str(v.value, p + 4);
      }
      flags |= FLAG_VALUES;
    }
    return (at | flags) >>> 0;
  };

  let rootWord: number;
  if (layout === 'post-order') {
    let pos = 12;
    const post = (n: TrieNode): number => {
      const words = n.kids.map(post);
      const at = pos;
      pos += n.size;
      return putNode(n, at, words);
    };
    rootWord = post(root);
  } else {
    const pre = (n: TrieNode, at: number): number => {
      let next = at + n.size;
      const words = n.kids.map((k) => {
        const w = pre(k, next);
        next += k.total;
        return w;
      });
      return putNode(n, at, words);
    };
    rootWord = pre(root, 12);
  }
  u32(rootWord, 8);
  return buf;
}

/** A reader for kmod indexes (either layout), for checking what was written. */
export class IndexReader {
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly file?: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < 12) throw this.fail('file too short for an index header', 0);
    if (this.view.getUint32(0) !== INDEX_MAGIC) throw this.fail(`bad magic 0x${this.view.getUint32(0).toString(16)}`, 0);
    if (this.view.getUint32(4) >>> 16 !== 2) throw this.fail(`unsupported index major version ${this.view.getUint32(4) >>> 16}`, 4);
  }

  private fail(why: string, offset: number): KabiError {
    return new KabiError('DEPMOD_FORMAT', why, { file: this.file, offset });
  }

  private str(at: number): { s: string; next: number } {
    const end = this.bytes.indexOf(0, at);
    if (end < 0) throw this.fail('string runs past the end of the file', at);
    let s = '';
    for (let i = at; i < end; i++) s += String.fromCharCode(this.bytes[i]!);
    return { s, next: end + 1 };
  }

  private node(word: number): { prefix: string; children: Map<number, number>; values: IndexValue[] } {
    let p = word & OFFSET_MASK;
    if (p < 12 || p >= this.bytes.length) throw this.fail(`node offset ${p} is outside the file`, p);
    let prefix = '';
    if (word & FLAG_PREFIX) ({ s: prefix, next: p } = this.str(p));
    const children = new Map<number, number>();
    if (word & FLAG_CHILDS) {
      if (p + 2 > this.bytes.length) throw this.fail('child table runs past the end of the file', p);
      const first = this.bytes[p]!;
      const last = this.bytes[p + 1]!;
      p += 2;
      if (last < first || p + 4 * (last - first + 1) > this.bytes.length) throw this.fail('bad child table', p - 2);
      for (let c = first; c <= last; c++, p += 4) {
        const w = this.view.getUint32(p);
        if (w !== 0) children.set(c, w);
      }
    }
    const values: IndexValue[] = [];
    if (word & FLAG_VALUES) {
      const n = this.view.getUint32(p);
      p += 4;
      for (let i = 0; i < n; i++) {
        const priority = this.view.getUint32(p);
        const { s, next } = this.str(p + 4);
        values.push({ priority, value: s });
        p = next;
      }
    }
    return { prefix, children, values };
  }

  /** Values stored under exactly this key. */
  get(key: string): IndexValue[] {
    let word = this.view.getUint32(8);
    let i = 0;
    for (let guard = 0; guard < 1 << 20; guard++) {
      const n = this.node(word);
      if (key.slice(i, i + n.prefix.length) !== n.prefix) return [];
      i += n.prefix.length;
      if (i === key.length) return n.values;
      const next = n.children.get(key.charCodeAt(i));
      if (next === undefined) return [];
      word = next;
      i++;
    }
    throw this.fail('index has a cycle', 8);
  }

  /** Every key with its values, in key order. */
  entries(): [string, IndexValue[]][] {
    const out: [string, IndexValue[]][] = [];
    const seen = new Set<number>();
    const walk = (word: number, acc: string): void => {
      const off = word & OFFSET_MASK;
      if (seen.has(off)) throw this.fail('index node reached twice', off);
      seen.add(off);
      const n = this.node(word);
      const key = acc + n.prefix;
      if (n.values.length > 0) out.push([key, n.values]);
      for (const [c, w] of n.children) walk(w, key + String.fromCharCode(c));
    };
    walk(this.view.getUint32(8), '');
    return out;
  }
}
