/**
 * One number per distinct string (symbol names, aliases, modinfo values) across all module
 * summaries of a run. Summaries then hold typed arrays of these numbers, which the cache
 * stores and reloads without rebuilding thousands of small arrays, and symbol resolution
 * becomes array indexing.
 */
export class Interner {
  readonly strings: string[];
  /** Built on first use: a run that only reloads cached summaries never needs it. */
  private ids: Map<string, number> | undefined;

  constructor(initial: string[] = []) {
    this.strings = initial;
  }

  private map(): Map<string, number> {
    if (this.ids === undefined) {
      this.ids = new Map();
      for (let i = 0; i < this.strings.length; i++) if (!this.ids.has(this.strings[i]!)) this.ids.set(this.strings[i]!, i);
    }
    return this.ids;
  }

  id(s: string): number {
    const ids = this.map();
    let i = ids.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.strings.push(s);
      ids.set(s, i);
    }
    return i;
  }

  /** The id of a string if it was ever interned. */
  find(s: string): number | undefined {
    if (this.ids !== undefined) return this.ids.get(s);
    // A few lookups do not justify building the map.
    const i = this.strings.indexOf(s);
    return i < 0 ? undefined : i;
  }

  get size(): number {
    return this.strings.length;
  }
}
