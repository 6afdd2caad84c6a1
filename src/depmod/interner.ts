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
    if (i === undefined) {
      i = this.size;
      this.added.push(s);
      this.all?.push(s);
      this.ids?.set(s, i);
      this.addedIds?.set(s, i);
    }
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
