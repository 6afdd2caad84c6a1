import { latin1 } from '../elf/reader.js';
import { findString, StringColumn, type LoadedStrings } from './sections.js';

/**
 * One number per distinct string (symbol names, aliases, modinfo values) across all module
 * summaries of a run. Summaries then hold typed arrays of these numbers, which the cache
 * stores and reloads without rebuilding thousands of small arrays, and symbol resolution
 * becomes array indexing.
 *
 * Strings loaded from the cache stay in the bytes they were stored as and are cut out only
 * when asked for: an incremental run looks at a few hundred of the tens of thousands.
 */
const MANY = 4096;

export class Interner {
  private readonly loaded: LoadedStrings | undefined;
  private readonly base: number;
  private readonly added: string[];
  private all: string[] | undefined;
  /** Built on first use: a run that only reloads cached summaries never needs it. */
  private ids: Map<string, number> | undefined;
  private lookups = 0;

  private addedIds: Map<string, number> | undefined;
  /** Strings interned from bytes, by the bytes: built only while no strings were loaded. */
  private byBytes: ByteIndex | undefined;

  /**
   * `loaded`: strings stored by column(), numbered from 0 and before `initial`; `lookup`
   * finds one of them by its text (a hash table stored with them) without reading them all.
   */
  constructor(
    initial: string[] = [],
    loaded?: StringColumn | LoadedStrings,
    private readonly lookup?: (s: string) => number | undefined,
  ) {
    this.loaded = loaded instanceof StringColumn ? { length: loaded.length, get: (i) => loaded.get(i), column: () => loaded } : loaded;
    this.base = loaded?.length ?? 0;
    this.added = initial;
  }

  /** Every string by number (cut out of the loaded bytes on first use). */
  get strings(): readonly string[] {
    if (this.all === undefined) {
      const all = new Array<string>(this.size);
      const c = this.loaded?.column();
      for (let i = 0; i < this.base; i++) all[i] = c!.get(i);
      for (let i = 0; i < this.added.length; i++) all[this.base + i] = this.added[i]!;
      this.all = all;
    }
    return this.all;
  }

  get(id: number): string {
    return id < this.base ? this.loaded!.get(id) : this.added[id - this.base]!;
  }

  /** Every string's first character code (0 for an empty one), by number. */
  firstChars(): Uint8Array {
    const out = new Uint8Array(this.size);
    const c = this.loaded?.column();
    if (c !== undefined) {
      const { bytes, ends } = c;
      let start = 0;
      for (let i = 0; i < this.base; i++) {
        const end = ends[i]!;
        if (end > start) out[i] = bytes[start]!;
        start = end + 1;
      }
    }
    for (let i = 0; i < this.added.length; i++) out[this.base + i] = this.added[i]!.charCodeAt(0) & 0xff;
    return out;
  }

  private map(): Map<string, number> {
    if (this.ids === undefined) {
      const ids = new Map<string, number>();
      const all = this.strings;
      for (let i = 0; i < all.length; i++) {
        const s = all[i]!;
        if (!ids.has(s)) ids.set(s, i);
      }
      this.ids = ids;
    }
    return this.ids;
  }

  id(s: string): number {
    let i = this.lookup !== undefined && this.ids === undefined && this.lookups < MANY ? this.find(s) : this.map().get(s);
    if (i === undefined) i = this.push(s);
    return i;
  }

  /**
   * The number of the Latin-1 string bytes[start, end): what id() of its text gives, without
   * making the text when it was met before (most symbol names in a tree are met many times).
   */
  idOfBytes(bytes: Uint8Array, start: number, end: number): number {
    if (this.base === 0 && this.lookup === undefined) {
      this.byBytes ??= ByteIndex.of(this.added);
      if (this.byBytes !== undefined) {
        const found = this.byBytes.find(bytes, start, end);
        if (found >= 0) return found;
        // Every string added is in the index: this one is new.
        return this.push(latin1(bytes, start, end));
      }
    }
    return this.id(latin1(bytes, start, end));
  }

  private push(s: string): number {
    const i = this.size;
    this.added.push(s);
    this.all?.push(s);
    this.ids?.set(s, i);
    this.addedIds?.set(s, i);
    if (this.byBytes !== undefined && !this.byBytes.add(s, i)) this.byBytes = undefined;
    return i;
  }

  /** The id of a string if it was ever interned. */
  find(s: string): number | undefined {
    if (this.ids !== undefined) return this.ids.get(s);
    // The stored table costs reads of the file per lookup; past many, one map is cheaper.
    if (this.lookup !== undefined && ++this.lookups <= MANY) {
      if (this.addedIds === undefined) {
        this.addedIds = new Map();
        this.added.forEach((a, k) => this.addedIds!.has(a) || this.addedIds!.set(a, this.base + k));
      }
      return this.addedIds.get(s) ?? this.lookup(s);
    }
    if (this.lookup !== undefined || ++this.lookups > 64) return this.map().get(s);
    // A few lookups do not justify building the map.
    const i = this.added.indexOf(s);
    if (i >= 0) return this.base + i;
    const c = this.loaded?.column();
    return c !== undefined && c.length > 0 ? findString(c.bytes, c.ends, s) : undefined;
  }

  /** The id of a string interned after the loaded ones, if it was. */
  findAdded(s: string): number | undefined {
    const i = this.added.indexOf(s);
    return i < 0 ? undefined : this.base + i;
  }

  get size(): number {
    return this.base + this.added.length;
  }

  /** Strings [from, size) as a column. */
  column(from = 0): StringColumn {
    const out: string[] = [];
    for (let i = from; i < this.size; i++) out.push(this.get(i));
    return StringColumn.of(out);
  }
}

/**
 * Strings by their Latin-1 bytes: open addressing on FNV-1a of the bytes, each string's bytes
 * kept back to back. Only for strings of one byte per character (as everything read out of
 * ELF files is); add() refuses anything else, and the index is dropped.
 */
class ByteIndex {
  private pool = new Uint8Array(1 << 16);
  private used = 0;
  private starts = new Uint32Array(1024);
  private ends = new Uint32Array(1024);
  /** id + 1, 0 for a free slot; at most half full. */
  private slots = new Int32Array(4096);
  private count = 0;

  static of(strings: readonly string[]): ByteIndex | undefined {
    const x = new ByteIndex();
    for (let i = 0; i < strings.length; i++) if (!x.add(strings[i]!, i)) return undefined;
    return x;
  }

  find(b: Uint8Array, start: number, end: number): number {
    const mask = this.slots.length - 1;
    const pool = this.pool;
    const len = end - start;
    for (let h = hashBytes(b, start, end) & mask; ; h = (h + 1) & mask) {
      const e = this.slots[h]!;
      if (e === 0) return -1;
      const id = e - 1;
      const a = this.starts[id]!;
      if (this.ends[id]! - a !== len) continue;
      let k = 0;
      while (k < len && pool[a + k] === b[start + k]) k++;
      if (k === len) return id;
    }
  }

  add(s: string, id: number): boolean {
    const len = s.length;
    if (this.used + len > this.pool.length) this.pool = grow(this.pool, this.used + len);
    for (let k = 0; k < len; k++) {
      const c = s.charCodeAt(k);
      if (c > 0xff) return false;
      this.pool[this.used + k] = c;
    }
    if (id >= this.starts.length) {
      this.starts = grow(this.starts, id + 1);
      this.ends = grow(this.ends, id + 1);
    }
    this.starts[id] = this.used;
    this.ends[id] = this.used + len;
    this.used += len;
    if (2 * (this.count + 1) > this.slots.length) this.rehash();
    this.place(id);
    this.count++;
    return true;
  }

  private place(id: number): void {
    const mask = this.slots.length - 1;
    let h = hashBytes(this.pool, this.starts[id]!, this.ends[id]!) & mask;
    while (this.slots[h] !== 0) h = (h + 1) & mask;
    this.slots[h] = id + 1;
  }

  private rehash(): void {
    const old = this.slots;
    this.slots = new Int32Array(old.length * 2);
    for (const e of old) if (e !== 0) this.place(e - 1);
  }
}

function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let k = start; k < end; k++) h = Math.imul(h ^ b[k]!, 0x01000193);
  return h >>> 0;
}

function grow<T extends Uint8Array | Uint32Array>(a: T, need: number): T {
  const out = new (a.constructor as new (n: number) => T)(Math.max(need, 2 * a.length));
  out.set(a);
  return out;
}
