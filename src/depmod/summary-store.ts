import type { BigIntStats } from 'node:fs';
import { CacheDamaged } from './cache-damage.js';
import { Interner } from './interner.js';
import type { ModuleSummary } from './module-summary.js';
import { findString, SectionReader, SectionWriter, StringColumn, type ByteSource, type LoadedStrings } from './sections.js';

/**
 * The module summaries kept in the depmod cache (cache-file.ts), keyed by host path and
 * checked against the file's size, mtime, ctime, inode and device (ctime: a file rewritten in
 * place with its mtime put back still differs), so that a later run decompresses
 * and parses only new or changed modules. A full run stores every summary it used in
 * columns: one string table and flat typed arrays, read back as views into the file's bytes
 * (sections.ts), so that loading costs no more than reading. An incremental run appends what
 * it parsed, its strings numbered on from the ones before. Records are numbered across both,
 * which is how the run state refers to them. A summary is only used for a file whose
 * identity it matches or that the run state vouches for; anything unreadable is left out.
 *
 * What is read is checked as it is read (cache-file.ts checks its CRCs): lengths and offsets
 * when loaded, string numbers of each summary when it is taken. Anything out of place throws,
 * and runDepmod starts over without the cache.
 */

const VERSION = 9;

export interface FileIdentity {
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly ino: bigint;
  readonly dev: bigint;
}

/** size, mtimeNs, ctimeNs, ino, dev per record. */
const ID_WORDS = 5;

/** Summaries in columns: record i's exports are expName[expOff[i], expOff[i + 1]), and so on. */
export interface Columns {
  readonly hosts: StringColumn;
  /** ID_WORDS per record. */
  readonly ids: BigUint64Array;
  readonly expOff: Uint32Array;
  readonly expName: Uint32Array;
  readonly expCrc: BigUint64Array;
  readonly depOff: Uint32Array;
  readonly depName: Uint32Array;
  readonly depCrc: BigUint64Array;
  readonly depWeak: Uint8Array;
  readonly infoOff: Uint32Array;
  readonly info: Uint32Array;
  /** kmod could not load the record's file: [record, strerror text]. */
  readonly errors: readonly (readonly [number, string])[];
}

/** Which records need and export each string: records needRec[needOff[s], needOff[s + 1]), and so on. */
export interface SymbolIndex {
  readonly needOff: Uint32Array;
  readonly needRec: Uint32Array;
  readonly expOff: Uint32Array;
  readonly expRec: Uint32Array;
  /** Some record needs a symbol starting with '.' (PPC64 function descriptors, resolved by name). */
  readonly dotted: boolean;
}

const S = {
  meta: 1,
  strings: 2, // and 3: ends
  hosts: 4, // and 5
  ids: 6,
  expOff: 7,
  expName: 8,
  expCrc: 9,
  depOff: 10,
  depName: 11,
  depCrc: 12,
  depWeak: 13,
  infoOff: 14,
  info: 15,
  errors: 16,
  needOff: 17,
  needRec: 18,
  symExpOff: 19,
  symExpRec: 20,
  stringTable: 21,
} as const;

interface Extra {
  readonly host: string;
  readonly id: FileIdentity;
  readonly summary: ModuleSummary;
}

/** What the full run's frame says of itself. */
interface Meta {
  version: number;
  /** Some record needs a symbol starting with '.'. */
  dotted?: boolean;
  /** The string numbers of the modinfo keys depmod writes out (absent ones left out). */
  keys?: Record<string, number>;
}

/** After this many summaries taken one by one from the file, the columns are read whole. */
const SINGLE_READS = 64;

export class SummaryStore {
  readonly strings: Interner;
  /** Records of the full run's frame. */
  readonly cached: number;
  /** Records appended since (they follow the full run's). */
  readonly appended: number;
  private readonly base: SectionReader | undefined;
  private readonly meta: Meta | undefined;
  private whole: Columns | undefined;
  private singles = 0;
  private readonly extra: Extra[] = [];
  private hostIndex: Map<string, number> | undefined;
  private lookups = 0;
  private readonly decoded = new Map<number, ModuleSummary>();
  private errorMap: Map<number, string> | undefined;
  /** Strings present when loaded (what additions leave out). */
  private readonly loadedStrings: number;
  /**
   * What went wrong looking a string up in the cache, if anything: parsing a module interns
   * its strings, and the parsers take any error for a broken module, so the failure is kept
   * here for the run to see (and to start over without the cache).
   */
  damage: unknown;

  /**
   * The store of a cache file's frames, read as asked for; anything foreign or damaged
   * makes it start empty.
   */
  constructor(summaries?: Uint8Array | ByteSource, additions: readonly Uint8Array[] = []) {
    let base: SectionReader | undefined;
    let meta: Meta | undefined;
    try {
      if (summaries !== undefined) {
        base = new SectionReader(summaries);
        meta = base.json<Meta>(S.meta);
        if (meta.version !== VERSION || !soundBase(base, meta)) base = meta = undefined;
      }
    } catch {
      base = meta = undefined;
    }
    const added: { columns: Columns; strings: StringColumn }[] = [];
    let stringCount = base ? base.length(S.strings + 1) / 4 : 0;
    for (const a of base ? additions : []) {
      try {
        const r = new SectionReader(a);
        if (r.json<Meta>(S.meta).version !== VERSION) break;
        const strings = r.strings(S.strings);
        if (!soundColumn(strings)) break;
        const columns = readColumns(r, stringCount + strings.length);
        stringCount += strings.length;
        added.push({ columns, strings });
      } catch {
        break;
      }
    }
    const more: string[] = [];
    for (const a of added) for (let i = 0; i < a.strings.length; i++) more.push(a.strings.get(i));
    this.base = base;
    this.meta = meta;
    const kept =
      <A extends unknown[], R>(f: (...a: A) => R) =>
      (...a: A): R => {
        try {
          return f(...a);
        } catch (e) {
          this.damage ??= e;
          throw e;
        }
      };
    const stored = base?.lazyStrings(S.strings);
    const lazy = stored && { length: stored.length, get: kept(stored.get), column: kept(stored.column) };
    const lookup = base?.has(S.stringTable) ? stringLookup(base, lazy!) : undefined;
    this.strings = new Interner(more, lazy, lookup && kept(lookup));
    this.loadedStrings = this.strings.size;
    this.cached = base ? base.length(S.ids) / (8 * ID_WORDS) : 0;
    for (const a of added) {
      const n = a.columns.ids.length / ID_WORDS;
      const errors = new Map(a.columns.errors);
      for (let i = 0; i < n; i++) this.extra.push({ host: a.columns.hosts.get(i), id: identityAt(a.columns, i), summary: summaryAt(a.columns, i, errors) });
    }
    this.appended = this.extra.length;
  }

  /** The cache's columns whole (records below `cached`), for loops over thousands of summaries. */
  get columns(): Columns | undefined {
    if (this.whole === undefined && this.base !== undefined) this.whole = readColumns(this.base, this.base.length(S.strings + 1) / 4);
    return this.whole;
  }

  get size(): number {
    return this.cached + this.extra.length;
  }

  /** Whether anything was added since loading. */
  get grown(): boolean {
    return this.extra.length > this.appended;
  }

  /** The number of a modinfo key (alias, softdep, weakdep) among the strings, if any summary has it. */
  keyId(key: string): number | undefined {
    const id = this.meta?.keys?.[key];
    return id !== undefined ? id : (this.strings.findAdded(key) ?? (this.meta?.keys === undefined ? this.strings.find(key) : undefined));
  }

  host(rec: number): string {
    if (rec >= this.cached) return this.extra[rec - this.cached]!.host;
    if (this.whole !== undefined) return this.whole.hosts.get(rec);
    const ends = this.base!.u32Range(S.hosts + 1, rec === 0 ? 0 : rec - 1, rec + 1);
    const start = rec === 0 ? 0 : ends[0]! + 1;
    const b = this.base!.u8Range(S.hosts, start, ends[rec === 0 ? 0 : 1]!);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
  }

  identity(rec: number): FileIdentity {
    if (rec >= this.cached) return this.extra[rec - this.cached]!.id;
    const ids = this.whole?.ids.subarray(ID_WORDS * rec, ID_WORDS * rec + ID_WORDS) ?? this.base!.u64Range(S.ids, ID_WORDS * rec, ID_WORDS * rec + ID_WORDS);
    return idAt(ids, 0);
  }

  private get errors(): Map<number, string> {
    this.errorMap ??= new Map(this.base === undefined ? [] : checkedErrors(this.base.json<unknown>(S.errors), this.cached));
    return this.errorMap;
  }

  /** Whether any record is of a file kmod could not load. */
  get anyError(): boolean {
    return this.errors.size > 0 || this.extra.some((e) => e.summary.error !== undefined);
  }

  /** kmod's error loading the record's file, if any. */
  error(rec: number): string | undefined {
    return rec < this.cached ? this.errors.get(rec) : this.extra[rec - this.cached]!.summary.error;
  }

  summary(rec: number): ModuleSummary {
    if (rec >= this.cached) return this.extra[rec - this.cached]!.summary;
    let s = this.decoded.get(rec);
    if (s === undefined) {
      if (this.whole === undefined && ++this.singles <= SINGLE_READS) s = this.readOne(rec);
      else s = summaryAt(this.columns!, rec, this.errors);
      this.decoded.set(rec, s);
    }
    return s;
  }

  /** One record's summary, read by its parts from the file. */
  private readOne(r: number): ModuleSummary {
    const b = this.base!;
    const e = b.u32Range(S.expOff, r, r + 2);
    const d = b.u32Range(S.depOff, r, r + 2);
    const i = b.u32Range(S.infoOff, r, r + 2);
    const error = this.errors.get(r);
    const strings = b.length(S.strings + 1) / 4;
    return {
      exports: checkedIds(b.u32Range(S.expName, e[0]!, e[1]!), strings),
      exportCrcs: b.u64Range(S.expCrc, e[0]!, e[1]!),
      deps: checkedIds(b.u32Range(S.depName, d[0]!, d[1]!), strings),
      depCrcs: b.u64Range(S.depCrc, d[0]!, d[1]!),
      depWeak: b.u8Range(S.depWeak, d[0]!, d[1]!),
      info: checkedIds(b.u32Range(S.info, i[0]!, i[1]!), strings),
      ...(error !== undefined ? { error } : {}),
    };
  }

  /** The latest record of a host path. */
  latest(host: string): number | undefined {
    // A few lookups (an incremental run's) search the stored bytes; many build a map.
    if (this.hostIndex === undefined && ++this.lookups <= 64) {
      for (let i = this.extra.length - 1; i >= 0; i--) if (this.extra[i]!.host === host) return this.cached + i;
      if (this.base === undefined) return undefined;
      return findString(this.base.bytes(S.hosts), this.base.u32(S.hosts + 1), host, true);
    }
    if (this.hostIndex === undefined) {
      void this.columns;
      const index = new Map<string, number>();
      for (let i = 0; i < this.size; i++) index.set(this.host(i), i);
      this.hostIndex = index;
    }
    return this.hostIndex.get(host);
  }

  /** The record of a file, if it still has the identity it was summarised with. */
  find(host: string, id: FileIdentity): number | undefined {
    const rec = this.latest(host);
    return rec !== undefined && sameIdentity(this.identity(rec), id) ? rec : undefined;
  }

  add(host: string, id: FileIdentity, summary: ModuleSummary): number {
    const rec = this.size;
    this.extra.push({ host, id, summary });
    this.hostIndex?.set(host, rec);
    return rec;
  }

  /** The given records, renumbered 0… in that order, strings no longer used dropped: the frame of a full run. */
  serialize(recs: readonly number[]): Uint8Array {
    void this.columns;
    const old = this.strings;
    const remap = new Int32Array(old.size).fill(-1);
    const strings: string[] = [];
    const renumber = (arr: Uint32Array): Uint32Array => {
      const out = new Uint32Array(arr.length);
      for (let k = 0; k < arr.length; k++) {
        const o = arr[k]!;
        let n = remap[o]!;
        if (n < 0) {
          n = remap[o] = strings.length;
          strings.push(old.get(o));
        }
        out[k] = n;
      }
      return out;
    };
    const w = writeColumns(
      recs.map((r) => ({ host: this.host(r), id: this.identity(r), summary: this.summary(r) })),
      renumber,
    );
    const column = StringColumn.of(strings);
    return writeIndex(w, recs.length, w.columns, column).strings(S.strings, column).add(S.stringTable, stringTable(strings)).finish();
  }

  /** What was added since loading, as an additions frame (undefined when nothing was). */
  additions(): Uint8Array | undefined {
    const fresh = this.extra.slice(this.appended);
    if (fresh.length === 0) return undefined;
    return writeColumns(fresh, (a) => a)
      .json(S.meta, { version: VERSION })
      .strings(S.strings, this.strings.column(this.loadedStrings))
      .finish();
  }

  /** Records needing string s (the cache's from its index, the others looked through). */
  needers(s: number): number[] {
    return this.inverted(S.needOff, S.needRec, s, (e) => e.summary.deps);
  }

  /** Records exporting string s. */
  exporters(s: number): number[] {
    return this.inverted(S.symExpOff, S.symExpRec, s, (e) => e.summary.exports);
  }

  private inverted(offName: number, recName: number, s: number, of: (e: Extra) => Uint32Array): number[] {
    const out: number[] = [];
    const b = this.base;
    if (b !== undefined && 4 * (s + 1) < b.length(offName)) {
      const off = b.u32Range(offName, s, s + 2);
      for (const r of b.u32Range(recName, off[0]!, off[1]!)) {
        if (r >= this.cached) throw new Error(`record ${r} in the symbol index of ${this.cached}`);
        out.push(r);
      }
    }
    this.extra.forEach((e, i) => of(e).includes(s) && out.push(this.cached + i));
    return out;
  }

  /** Whether needers() and exporters() can be asked: the cache has its index and no record needs a '.' symbol. */
  get indexed(): boolean {
    if (this.base === undefined || !this.base.has(S.needOff) || this.meta?.dotted !== false) return false;
    for (const e of this.extra) for (const s of e.summary.deps) if (this.strings.get(s).startsWith('.')) return false;
    return true;
  }
}

/** FNV-1a over a string's character codes. */
function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Open addressing by fnv(): id + 1 in the first free slot from the hash on (0: free), at most half full. */
function stringTable(strings: readonly string[]): Uint32Array {
  let size = 1024;
  while (size < strings.length * 2) size *= 2;
  const table = new Uint32Array(size);
  const mask = size - 1;
  strings.forEach((s, id) => {
    let h = fnv(s) & mask;
    while (table[h] !== 0) h = (h + 1) & mask;
    table[h] = id + 1;
  });
  return table;
}

/** A string's number through the stored table, reading only the slots and strings it probes. */
function stringLookup(r: SectionReader, strings: LoadedStrings): (s: string) => number | undefined {
  const slots = r.length(S.stringTable) / 4;
  // stringTable() makes a power of two, at most half full: anything else is not its table.
  if (!(slots >= 1024 && (slots & (slots - 1)) === 0 && slots >= 2 * strings.length)) throw new CacheDamaged(undefined, 'not a string table');
  const mask = slots - 1;
  return (s) => {
    let h = fnv(s) & mask;
    for (let probes = 0; probes < slots; probes++, h = (h + 1) & mask) {
      const e = r.u32Range(S.stringTable, h, h + 1)[0]!;
      if (e === 0) return undefined;
      if (e > strings.length) throw new CacheDamaged(undefined, `string ${e - 1} in the string table of ${strings.length}`);
      if (strings.get(e - 1) === s) return e - 1;
    }
    throw new CacheDamaged(undefined, 'string table without a free slot');
  };
}

/** The identity of no file: a summary that matches nothing. */
export const NO_IDENTITY: FileIdentity = { size: ~0n, mtimeNs: ~0n, ctimeNs: ~0n, ino: ~0n, dev: ~0n };

/** The identity a stat() gives. */
export function identityOfStat(st: BigIntStats): FileIdentity {
  return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, dev: st.dev };
}

export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino && a.dev === b.dev;
}

function idAt(ids: BigUint64Array, at: number): FileIdentity {
  return { size: ids[at]!, mtimeNs: ids[at + 1]!, ctimeNs: ids[at + 2]!, ino: ids[at + 3]!, dev: ids[at + 4]! };
}

function identityAt(c: Columns, i: number): FileIdentity {
  return idAt(c.ids, ID_WORDS * i);
}

/**
 * What loading the full run's frame checks before anything is taken from it: its sections'
 * lengths agree on one record count, the offset columns rise within their arrays, the
 * modinfo keys name the strings they say.
 */
function soundBase(b: SectionReader, meta: Meta): boolean {
  const idBytes = b.length(S.ids);
  if (idBytes % (8 * ID_WORDS) !== 0) return false;
  const records = idBytes / (8 * ID_WORDS);
  const strings = b.length(S.strings + 1) / 4;
  if (!Number.isInteger(strings) || b.length(S.hosts + 1) !== 4 * records) return false;
  for (const [off, arrays] of [
    [S.expOff, [[S.expName, 4], [S.expCrc, 8]]],
    [S.depOff, [[S.depName, 4], [S.depCrc, 8], [S.depWeak, 1]]],
    [S.infoOff, [[S.info, 4]]],
  ] as const) {
    if (b.length(off) !== 4 * (records + 1)) return false;
    const o = b.u32(off);
    if (!rising(o)) return false;
    for (const [name, size] of arrays) if (b.length(name) !== size * o[records]!) return false;
  }
  for (const [key, id] of Object.entries(meta.keys ?? {})) if (!(Number.isInteger(id) && id >= 0 && id < strings) || b.lazyStrings(S.strings).get(id) !== key) return false;
  if (b.has(S.needOff) && (b.length(S.needOff) !== 4 * (strings + 1) || b.length(S.symExpOff) !== 4 * (strings + 1))) return false;
  return true;
}

/** Each string ends after the one before, the last at the end of the bytes. */
function soundColumn(c: StringColumn): boolean {
  let start = 0;
  for (let i = 0; i < c.ends.length; i++) {
    if (c.ends[i]! < start) return false;
    start = c.ends[i]! + 1;
  }
  return start === c.bytes.length;
}

function rising(o: Uint32Array): boolean {
  if (o[0] !== 0) return false;
  for (let i = 1; i < o.length; i++) if (o[i]! < o[i - 1]!) return false;
  return true;
}

/** The string numbers, each checked to be one of `count`. */
function checkedIds(ids: Uint32Array, count: number): Uint32Array {
  for (let k = 0; k < ids.length; k++) if (ids[k]! >= count) throw new Error(`string ${ids[k]} of ${count}`);
  return ids;
}

function checkedErrors(v: unknown, records: number): [number, string][] {
  if (!Array.isArray(v) || !v.every((e) => Array.isArray(e) && e.length === 2 && Number.isInteger(e[0]) && e[0] >= 0 && e[0] < records && typeof e[1] === 'string')) throw new Error('malformed error list');
  return v as [number, string][];
}

function summaryAt(c: Columns, i: number, errors: ReadonlyMap<number, string>): ModuleSummary {
  const e0 = c.expOff[i]!;
  const e1 = c.expOff[i + 1]!;
  const d0 = c.depOff[i]!;
  const d1 = c.depOff[i + 1]!;
  const error = errors.get(i);
  return {
    exports: c.expName.subarray(e0, e1),
    exportCrcs: c.expCrc.subarray(e0, e1),
    deps: c.depName.subarray(d0, d1),
    depCrcs: c.depCrc.subarray(d0, d1),
    depWeak: c.depWeak.subarray(d0, d1),
    info: c.info.subarray(c.infoOff[i]!, c.infoOff[i + 1]!),
    ...(error !== undefined ? { error } : {}),
  };
}

/** The columns whole, every offset and string number (of `strings`) checked. */
function readColumns(r: SectionReader, strings: number): Columns {
  const ids = r.u64(S.ids);
  const records = ids.length / ID_WORDS;
  const hosts = r.strings(S.hosts);
  if (!Number.isInteger(records) || hosts.length !== records || !soundColumn(hosts)) throw new Error('malformed host column');
  const offsets = (name: number, ...lengths: number[]) => {
    const o = r.u32(name);
    if (o.length !== records + 1 || !rising(o) || lengths.some((n) => n !== o[records])) throw new Error(`malformed offsets ${name}`);
    return o;
  };
  const expName = checkedIds(r.u32(S.expName), strings);
  const expCrc = r.u64(S.expCrc);
  const depName = checkedIds(r.u32(S.depName), strings);
  const depCrc = r.u64(S.depCrc);
  const depWeak = r.u8(S.depWeak);
  const info = checkedIds(r.u32(S.info), strings);
  return {
    hosts,
    ids,
    expOff: offsets(S.expOff, expName.length, expCrc.length),
    expName,
    expCrc,
    depOff: offsets(S.depOff, depName.length, depCrc.length, depWeak.length),
    depName,
    depCrc,
    depWeak,
    infoOff: offsets(S.infoOff, info.length),
    info,
    errors: checkedErrors(r.json<unknown>(S.errors), records),
  };
}

/** The symbol index of the columns just written (a counting sort by string). */
function writeIndex(w: ColumnsWriter, records: number, c: Columns, strings: StringColumn): SectionWriter {
  const invert = (off: Uint32Array, names: Uint32Array): [Uint32Array, Uint32Array] => {
    const start = new Uint32Array(strings.length + 1);
    for (let k = 0; k < names.length; k++) start[names[k]! + 1]!++;
    for (let s = 0; s < strings.length; s++) start[s + 1]! += start[s]!;
    const fill = start.slice(0, strings.length);
    const recs = new Uint32Array(names.length);
    for (let r = 0; r < records; r++) for (let k = off[r]!; k < off[r + 1]!; k++) recs[fill[names[k]!]!++] = r;
    return [start, recs];
  };
  const [needOff, needRec] = invert(c.depOff, c.depName);
  const [expOff, expRec] = invert(c.expOff, c.expName);
  let dotted = false;
  for (let s = 0; s < strings.length && !dotted; s++) dotted = needOff[s + 1]! > needOff[s]! && strings.bytes[strings.start(s)] === 0x2e && strings.ends[s]! > strings.start(s);
  const keys: Record<string, number> = {};
  for (let s = 0; s < strings.length; s++) {
    const v = strings.get(s);
    if (v === 'alias' || v === 'softdep' || v === 'weakdep') keys[v] = s;
  }
  const meta: Meta = { version: VERSION, dotted, keys };
  return w.json(S.meta, meta).add(S.needOff, needOff).add(S.needRec, needRec).add(S.symExpOff, expOff).add(S.symExpRec, expRec);
}

type ColumnsWriter = SectionWriter & { readonly columns: Columns };

function writeColumns(records: readonly Extra[], renumber: (a: Uint32Array) => Uint32Array): ColumnsWriter {
  const sums = records.map((r) => r.summary);
  const offsets = (f: (s: ModuleSummary) => number) => {
    const off = new Uint32Array(sums.length + 1);
    sums.forEach((s, i) => (off[i + 1] = off[i]! + f(s)));
    return off;
  };
  const expOff = offsets((s) => s.exports.length);
  const depOff = offsets((s) => s.deps.length);
  const infoOff = offsets((s) => s.info.length);
  const expName = new Uint32Array(expOff[sums.length]!);
  const expCrc = new BigUint64Array(expName.length);
  const depName = new Uint32Array(depOff[sums.length]!);
  const depCrc = new BigUint64Array(depName.length);
  const depWeak = new Uint8Array(depName.length);
  const info = new Uint32Array(infoOff[sums.length]!);
  const ids = new BigUint64Array(records.length * ID_WORDS);
  const errors: [number, string][] = [];
  records.forEach((r, i) => {
    const s = r.summary;
    ids.set([r.id.size, r.id.mtimeNs, r.id.ctimeNs, r.id.ino, r.id.dev], ID_WORDS * i);
    expName.set(renumber(s.exports), expOff[i]!);
    expCrc.set(s.exportCrcs, expOff[i]!);
    depName.set(renumber(s.deps), depOff[i]!);
    depCrc.set(s.depCrcs, depOff[i]!);
    depWeak.set(s.depWeak, depOff[i]!);
    info.set(renumber(s.info), infoOff[i]!);
    if (s.error !== undefined) errors.push([i, s.error]);
  });
  const hosts = StringColumn.of(records.map((r) => r.host));
  const w = new SectionWriter()
    .strings(S.hosts, hosts)
    .add(S.ids, ids)
    .add(S.expOff, expOff)
    .add(S.expName, expName)
    .add(S.expCrc, expCrc)
    .add(S.depOff, depOff)
    .add(S.depName, depName)
    .add(S.depCrc, depCrc)
    .add(S.depWeak, depWeak)
    .add(S.infoOff, infoOff)
    .add(S.info, info)
    .json(S.errors, errors);
  return Object.assign(w, { columns: { hosts, ids, expOff, expName, expCrc, depOff, depName, depCrc, depWeak, infoOff, info, errors } });
}
