import { posix } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import type { KabiFs } from '../fs.js';
import type { DirListing, ScanListings, ScannedEntry } from '../kernel/module-tree.js';
import { Interner } from './interner.js';
import type { ModuleSummary } from './module-summary.js';

/**
 * modules.kabi-cache, kept beside depmod's outputs: the summary of every module file used
 * (keyed by host path and checked against the file's size, mtime, inode and device), the
 * directory listings of the last scan, and the identity of the outputs written with it. A
 * later run reuses summaries of unchanged files instead of decompressing and parsing them
 * again; an incremental run also reuses the listings, which it may only do while the
 * outputs are still the ones written with this cache (nobody else ran depmod since).
 *
 * The file is a V8 structured-clone blob of columns: one string table and flat typed arrays,
 * so that loading it costs little more than reading it. Anything unexpected in it (another
 * version, a different configuration, a decoding error) makes it be ignored, never trusted.
 */

export const CACHE_FILE = 'modules.kabi-cache';
const MAGIC = 'kabi-depmod-cache';
const VERSION = 4;

export interface FileIdentity {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly dev: number;
}

interface Stored {
  magic: string;
  version: number;
  key: string;
  outputs: [name: string, size: number, mtimeMs: number, ino: number][];
  /** Per output: the digest of what it was made from, and whether making it printed nothing. */
  fingerprints: [name: string, fingerprint: string, quiet: boolean][];
  strings: string[];
  /** Names and host paths of directory entries (entryName/entryHost index these). */
  listingStrings: string[];
  listingDirs: string[];
  listingStamps: string[];
  listingOff: Uint32Array;
  entryName: Uint32Array;
  entryHost: Uint32Array;
  /** bit 0: directory, bit 1: symlink, bit 2: skipped (entryHost is then depmod's message). */
  entryFlags: Uint8Array;
  hosts: string[];
  ids: Float64Array;
  expOff: Uint32Array;
  expName: Uint32Array;
  expCrc: BigUint64Array;
  depOff: Uint32Array;
  depName: Uint32Array;
  depCrc: BigUint64Array;
  depWeak: Uint8Array;
  infoOff: Uint32Array;
  info: Uint32Array;
  errors: [index: number, error: string][];
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev;
}

export class SummaryCache {
  private readonly fresh = new Map<string, { id: FileIdentity; summary: ModuleSummary }>();
  private readonly index = new Map<string, number>();
  private trust = false;
  /** The strings every summary of this run is numbered against (the cache's own table, grown). */
  readonly strings: Interner;
  /** The listings of the scan the cache was written with (when trusted). */
  listings: ScanListings | undefined;

  private constructor(
    private readonly key: string,
    private readonly stored: Stored | undefined,
  ) {
    this.strings = new Interner(stored ? stored.strings : []);
    if (stored) stored.hosts.forEach((h, i) => this.index.set(h, i));
  }

  /** Load the cache of a module directory; a missing, foreign or damaged file gives an empty cache. */
  static async load(fs: KabiFs, dirHost: string, key: string): Promise<SummaryCache> {
    let stored: Stored | undefined;
    try {
      const raw = deserialize(await fs.readFile(posix.join(dirHost, CACHE_FILE))) as Stored;
      if (raw?.magic === MAGIC && raw.version === VERSION && typeof raw.key === 'string' && Array.isArray(raw.strings)) stored = raw;
    } catch {
      stored = undefined;
    }
    const cache = new SummaryCache(key, stored);
    if (stored && stored.key === key) {
      cache.trust = await outputsUnchanged(fs, dirHost, stored.outputs);
      if (cache.trust) cache.listings = decodeListings(stored);
    }
    return cache;
  }

  /** Written with the same configuration, and the outputs are still the ones written with it. */
  canTrust(): boolean {
    return this.trust;
  }

  /** An output file of the last run that may be reused as is when its inputs digest the same. */
  reusable(name: string, fingerprint: string): boolean {
    if (!this.trust || !this.stored) return false;
    return this.stored.fingerprints.some(([n, f, quiet]) => n === name && f === fingerprint && quiet);
  }

  /** The cached summary of a file the caller knows to be unchanged (incremental runs). */
  trusted(host: string): ModuleSummary | undefined {
    if (!this.trust) return undefined;
    const i = this.index.get(host);
    if (i === undefined) return undefined;
    this.keepIndex(host, i);
    return this.fresh.get(host)!.summary;
  }

  /** The cached summary of a file, if it still has the identity it was summarised with. */
  get(host: string, id: FileIdentity): ModuleSummary | undefined {
    const i = this.index.get(host);
    if (i === undefined || !this.stored) return undefined;
    const ids = this.stored.ids;
    const old = { size: ids[4 * i]!, mtimeMs: ids[4 * i + 1]!, ino: ids[4 * i + 2]!, dev: ids[4 * i + 3]! };
    if (!sameIdentity(old, id)) return undefined;
    this.keepIndex(host, i);
    return this.fresh.get(host)!.summary;
  }

  put(host: string, id: FileIdentity, summary: ModuleSummary): void {
    this.fresh.set(host, { id, summary });
  }

  private keepIndex(host: string, i: number): void {
    if (this.fresh.has(host)) return;
    const s = this.stored!;
    const ids = s.ids;
    this.fresh.set(host, {
      id: { size: ids[4 * i]!, mtimeMs: ids[4 * i + 1]!, ino: ids[4 * i + 2]!, dev: ids[4 * i + 3]! },
      summary: decodeSummary(s, i),
    });
  }

  /**
   * The next cache: every summary used in this run, the scan's listings, the outputs'
   * identities. Strings no longer used are dropped, so the table does not grow run after run.
   */
  serialize(listings: ScanListings, outputs: readonly [string, FileIdentity][], fingerprints: readonly [string, string, boolean][] = [], compact = true): Uint8Array {
    const old = this.strings.strings;
    const remap = new Int32Array(compact ? old.length : 0).fill(-1);
    // Without compaction the table is kept whole (new strings were appended to it): no renumbering.
    const strings: string[] = compact ? [] : old;
    const renumber = (arr: Uint32Array): Uint32Array => {
      if (!compact) return arr;
      const out = new Uint32Array(arr.length);
      for (let k = 0; k < arr.length; k++) {
        const o = arr[k]!;
        let n = remap[o]!;
        if (n < 0) {
          n = remap[o] = strings.length;
          strings.push(old[o]!);
        }
        out[k] = n;
      }
      return out;
    };
    const listingStrings: string[] = [];
    const local = new Map<string, number>();
    const str = (v: string) => {
      let n = local.get(v);
      if (n === undefined) {
        n = listingStrings.length;
        listingStrings.push(v);
        local.set(v, n);
      }
      return n;
    };
    const hosts = [...this.fresh.keys()];
    const sums = hosts.map((h) => this.fresh.get(h)!.summary);
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
    const idArr = new Float64Array(hosts.length * 4);
    const errors: [number, string][] = [];
    sums.forEach((s, i) => {
      const id = this.fresh.get(hosts[i]!)!.id;
      idArr.set([id.size, id.mtimeMs, id.ino, id.dev], 4 * i);
      expName.set(renumber(s.exports), expOff[i]!);
      expCrc.set(s.exportCrcs, expOff[i]!);
      depName.set(renumber(s.deps), depOff[i]!);
      depCrc.set(s.depCrcs, depOff[i]!);
      depWeak.set(s.depWeak, depOff[i]!);
      info.set(renumber(s.info), infoOff[i]!);
      if (s.error !== undefined) errors.push([i, s.error]);
    });
    const listingDirs = [...listings.keys()];
    const listingOff = new Uint32Array(listingDirs.length + 1);
    const entries: ScannedEntry[] = [];
    listingDirs.forEach((d, i) => {
      listingOff[i] = entries.length;
      for (const e of listings.get(d)!.entries) entries.push(e);
    });
    listingOff[listingDirs.length] = entries.length;
    const stored: Stored = {
      magic: MAGIC,
      version: VERSION,
      key: this.key,
      outputs: outputs.map(([name, id]) => [name, id.size, id.mtimeMs, id.ino]),
      fingerprints: [...fingerprints],
      strings,
      listingStrings,
      listingDirs,
      listingStamps: listingDirs.map((d) => listings.get(d)!.stamp),
      listingOff,
      entryName: Uint32Array.from(entries, (e) => str(e.name)),
      entryHost: Uint32Array.from(entries, (e) => str(e.host)),
      entryFlags: Uint8Array.from(entries, (e) => (e.kind === 'dir' ? 1 : 0) | (e.isLink ? 2 : 0) | (e.kind === 'skipped' ? 4 : 0)),
      hosts,
      ids: idArr,
      expOff,
      expName,
      expCrc,
      depOff,
      depName,
      depCrc,
      depWeak,
      infoOff,
      info,
      errors,
    };
    return serialize(stored);
  }
}

function decodeSummary(s: Stored, i: number): ModuleSummary {
  const e0 = s.expOff[i]!;
  const e1 = s.expOff[i + 1]!;
  const d0 = s.depOff[i]!;
  const d1 = s.depOff[i + 1]!;
  const error = s.errors.find(([k]) => k === i)?.[1];
  return {
    exports: s.expName.subarray(e0, e1),
    exportCrcs: s.expCrc.subarray(e0, e1),
    deps: s.depName.subarray(d0, d1),
    depCrcs: s.depCrc.subarray(d0, d1),
    depWeak: s.depWeak.subarray(d0, d1),
    info: s.info.subarray(s.infoOff[i]!, s.infoOff[i + 1]!),
    ...(error !== undefined ? { error } : {}),
  };
}

function decodeListings(s: Stored): ScanListings {
  const out: ScanListings = new Map();
  s.listingDirs.forEach((dir, i) => {
    const entries: ScannedEntry[] = [];
    for (let k = s.listingOff[i]!; k < s.listingOff[i + 1]!; k++) {
      const f = s.entryFlags[k]!;
      entries.push({ name: s.listingStrings[s.entryName[k]!]!, kind: f & 4 ? 'skipped' : f & 1 ? 'dir' : 'file', isLink: (f & 2) !== 0, host: s.listingStrings[s.entryHost[k]!]! });
    }
    const listing: DirListing = { entries, stamp: s.listingStamps[i]! };
    out.set(dir, listing);
  });
  return out;
}

async function outputsUnchanged(fs: KabiFs, dirHost: string, outputs: Stored['outputs']): Promise<boolean> {
  if (outputs.length === 0) return false;
  for (const [name, size, mtimeMs, ino] of outputs) {
    try {
      const st = await fs.stat(posix.join(dirHost, name));
      if (st.size !== size || st.mtimeMs !== mtimeMs || st.ino !== ino) return false;
    } catch {
      return false;
    }
  }
  return true;
}
