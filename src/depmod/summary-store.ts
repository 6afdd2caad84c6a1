import { Interner } from './interner.js';
import type { ModuleSummary } from './module-summary.js';
import { SectionReader, SectionWriter, StringColumn, type ByteSource, type LoadedStrings } from './sections.js';

/**
 * The module summaries kept in modules.kabi-cache (cache-file.ts), keyed by host path and
 * checked against the file's size, mtime, inode and device, so that a later run decompresses
 * and parses only new or changed modules. A full run stores every summary it used in
 * columns: one string table and flat typed arrays, read back as views into the file's bytes
 * (sections.ts), so that loading costs no more than reading. An incremental run appends what
 * it parsed, its strings numbered on from the ones before. Records are numbered across both,
 * which is how the run state refers to them. A summary is only used for a file whose
 * identity it matches or that the run state vouches for; anything unreadable is left out.
 */

const VERSION = 8;

export interface FileIdentity {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly dev: number;
}

/** Summaries in columns: record i's exports are expName[expOff[i], expOff[i + 1]), and so on. */
export interface Columns {
  readonly hosts: StringColumn;
  /** size, mtimeMs, ino, dev per record. */
  readonly ids: Float64Array;
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
        if (meta.version !== VERSION || base.length(S.ids) % 32 !== 0) base = meta = undefined;
      }
    } catch {
      base = meta = undefined;
    }
    const added: { columns: Columns; strings: StringColumn }[] = [];
    for (const a of base ? additions : []) {
      try {
        const r = new SectionReader(a);
        if (r.json<Meta>(S.meta).version !== VERSION) break;
        added.push({ columns: readColumns(r), strings: r.strings(S.strings) });
      } catch {
        break;
      }
    }
    const more: string[] = [];
    for (const a of added) for (let i = 0; i < a.strings.length; i++) more.push(a.strings.get(i));
    this.base = base;
    this.meta = meta;
    const lazy = base?.lazyStrings(S.strings);
    this.strings = new Interner(more, lazy, base?.has(S.stringTable) ? stringLookup(base, lazy!) : undefined);
    this.loadedStrings = this.strings.size;
    this.cached = base ? base.length(S.ids) / 32 : 0;
    for (const a of added) {
      const n = a.columns.ids.length / 4;
      const errors = new Map(a.columns.errors);
      for (let i = 0; i < n; i++) this.extra.push({ host: a.columns.hosts.get(i), id: identityAt(a.columns, i), summary: summaryAt(a.columns, i, errors) });
    }
    this.appended = this.extra.length;
  }

  /** The cache's columns whole (records below `cached`), for loops over thousands of summaries. */
  get columns(): Columns | undefined {
    if (this.whole === undefined && this.base !== undefined) this.whole = readColumns(this.base);
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
    const ids = this.whole?.ids.subarray(4 * rec, 4 * rec + 4) ?? this.base!.f64Range(S.ids, 4 * rec, 4 * rec + 4);
    return { size: ids[0]!, mtimeMs: ids[1]!, ino: ids[2]!, dev: ids[3]! };
  }

  private get errors(): Map<number, string> {
    this.errorMap ??= new Map(this.base?.json<[number, string][]>(S.errors));
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
    return {
      exports: b.u32Range(S.expName, e[0]!, e[1]!),
      exportCrcs: b.u64Range(S.expCrc, e[0]!, e[1]!),
      deps: b.u32Range(S.depName, d[0]!, d[1]!),
      depCrcs: b.u64Range(S.depCrc, d[0]!, d[1]!),
      depWeak: b.u8Range(S.depWeak, d[0]!, d[1]!),
      info: b.u32Range(S.info, i[0]!, i[1]!),
      ...(error !== undefined ? { error } : {}),
    };
  }

  /** The latest record of a host path. */
  latest(host: string): number | undefined {
    // A few lookups (an incremental run's) search the stored bytes; many build a map.
    if (this.hostIndex === undefined && ++this.lookups <= 64) {
      for (let i = this.extra.length - 1; i >= 0; i--) if (this.extra[i]!.host === host) return this.cached + i;
      if (this.base === undefined) return undefined;
      const bytes = this.base.bytes(S.hosts);
      const needle = Buffer.from(host + '\0', 'latin1');
      let found: number | undefined;
      for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) if (at === 0 || bytes[at - 1] === 0) found = stringAt(this.base.u32(S.hosts + 1), at);
      return found;
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
      for (const r of b.u32Range(recName, off[0]!, off[1]!)) out.push(r);
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
  const mask = r.length(S.stringTable) / 4 - 1;
  return (s) => {
    for (let h = fnv(s) & mask; ; h = (h + 1) & mask) {
      const e = r.u32Range(S.stringTable, h, h + 1)[0]!;
      if (e === 0) return undefined;
      if (strings.get(e - 1) === s) return e - 1;
    }
  };
}

/** The string of a column starting at byte `at`. */
function stringAt(ends: Uint32Array, at: number): number {
  let lo = 0;
  let hi = ends.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ends[mid]! < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev;
}

function identityAt(c: Columns, i: number): FileIdentity {
  const ids = c.ids;
  return { size: ids[4 * i]!, mtimeMs: ids[4 * i + 1]!, ino: ids[4 * i + 2]!, dev: ids[4 * i + 3]! };
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

function readColumns(r: SectionReader): Columns {
  return {
    hosts: r.strings(S.hosts),
    ids: r.f64(S.ids),
    expOff: r.u32(S.expOff),
    expName: r.u32(S.expName),
    expCrc: r.u64(S.expCrc),
    depOff: r.u32(S.depOff),
    depName: r.u32(S.depName),
    depCrc: r.u64(S.depCrc),
    depWeak: r.u8(S.depWeak),
    infoOff: r.u32(S.infoOff),
    info: r.u32(S.info),
    errors: r.json<[number, string][]>(S.errors),
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
  const ids = new Float64Array(records.length * 4);
  const errors: [number, string][] = [];
  records.forEach((r, i) => {
    const s = r.summary;
    ids.set([r.id.size, r.id.mtimeMs, r.id.ino, r.id.dev], 4 * i);
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
