import { threadId } from 'node:worker_threads';
import { xzBatchClock } from '../../native-bindings/index.js';
import type { KabiFs } from '../fs.js';
import type { ModuleFile } from '../kernel/module-tree.js';
import { isCompressedName } from '../module/read-module.js';
import type { ModuleReaderPool } from '../module/reader-pool.js';
import { Interner } from './interner.js';
import type { ModuleSummary } from './module-summary.js';
import { readClock } from './read-image.js';
import { identityOf, readSummaries } from './run-io.js';
import type { FileIdentity } from './summary-store.js';

/**
 * Module files read in batches, by a reader that may be on another thread: a cold depmod
 * run reads thousands of modules, which one core does at a fraction of kmod's speed (and
 * .ko.xz ones at less). Each reader numbers strings with its own Interner and sends, with
 * each batch, the strings it met for the first time and the summaries in flat typed arrays
 * (whose buffers are transferred, not copied). The run's side (BatchMerger) takes each new
 * string into the run's Interner once and renumbers the arrays through a table, so the
 * summaries are the ones reading in-process gives, whatever thread read them.
 *
 * A reader does what a run does for one file (identityOf, then readSummary) for each file of a
 * batch, compressed files decoded together (readSummaries).
 */

/** size, mtimeNs, ctimeNs, ino, dev per file (as summary-store.ts keeps them). */
const ID_WORDS = 5;

export interface PackedBatch {
  /** Which reader: its batches must be merged in the order it answered them. */
  readonly reader: string;
  /** The reader's strings from number `firstString` on, new in this batch, NUL-joined (C strings hold no NUL). */
  readonly firstString: number;
  readonly stringCount: number;
  readonly strings: string;
  /** Per file, ID_WORDS words; hasId[i] 0 when the file could not be stat'ed. */
  readonly ids: BigUint64Array;
  readonly hasId: Uint8Array;
  /** Per file: how many exports, dependency symbols and modinfo numbers. */
  readonly counts: Uint32Array;
  readonly expName: Uint32Array;
  readonly expCrc: BigUint64Array;
  readonly depName: Uint32Array;
  readonly depCrc: BigUint64Array;
  readonly depWeak: Uint8Array;
  readonly info: Uint32Array;
  /** [file index, strerror text] of files kmod could not load. */
  readonly errors: readonly (readonly [number, string])[];
  /** Milliseconds spent: on the whole batch, and of it stat'ing, reading bytes, decompressing. */
  readonly clock: BatchClock;
}

export interface BatchClock {
  busyMs: number;
  statMs: number;
  readMs: number;
  decompressMs: number;
  /** CPU time of the xz processes that decoded batches of .ko.xz files, and how many ran. */
  xzCpuMs: number;
  xzProcesses: number;
}

export function emptyClock(): BatchClock {
  return { busyMs: 0, statMs: 0, readMs: 0, decompressMs: 0, xzCpuMs: 0, xzProcesses: 0 };
}

let readers = 0;

export class BatchReader {
  private readonly strings = new Interner();
  private sent = 0;
  readonly name = `${threadId}:${readers++}`;

  constructor(private readonly fs: KabiFs) {}

  async read(files: readonly ModuleFile[]): Promise<PackedBatch> {
    const start = performance.now();
    const read0 = readClock.readMs;
    const decompress0 = readClock.decompressMs;
    const xz0 = { ...xzBatchClock };
    const n = files.length;
    const ids = new BigUint64Array(ID_WORDS * n);
    const hasId = new Uint8Array(n);
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      try {
        const id = await identityOf(this.fs, files[i]!.host);
        ids.set([id.size, id.mtimeNs, id.ctimeNs, id.ino, id.dev], ID_WORDS * i);
        hasId[i] = 1;
      } catch {
        /* read anyway: the summary says what kmod would make of it */
      }
    }
    const statMs = performance.now() - t;
    const sums = await readSummaries(this.fs, files, this.strings);
    const counts = new Uint32Array(3 * n);
    let exps = 0;
    let deps = 0;
    let infos = 0;
    sums.forEach((s, i) => {
      counts[3 * i] = s.exports.length;
      counts[3 * i + 1] = s.deps.length;
      counts[3 * i + 2] = s.info.length;
      exps += s.exports.length;
      deps += s.deps.length;
      infos += s.info.length;
    });
    const b = {
      expName: new Uint32Array(exps),
      expCrc: new BigUint64Array(exps),
      depName: new Uint32Array(deps),
      depCrc: new BigUint64Array(deps),
      depWeak: new Uint8Array(deps),
      info: new Uint32Array(infos),
    };
    const errors: [number, string][] = [];
    let e = 0;
    let d = 0;
    let f = 0;
    sums.forEach((s, i) => {
      b.expName.set(s.exports, e);
      b.expCrc.set(s.exportCrcs, e);
      b.depName.set(s.deps, d);
      b.depCrc.set(s.depCrcs, d);
      b.depWeak.set(s.depWeak, d);
      b.info.set(s.info, f);
      e += s.exports.length;
      d += s.deps.length;
      f += s.info.length;
      if (s.error !== undefined) errors.push([i, s.error]);
    });
    const firstString = this.sent;
    const fresh: string[] = [];
    for (let k = firstString; k < this.strings.size; k++) fresh.push(this.strings.get(k));
    this.sent = this.strings.size;
    return {
      reader: this.name,
      firstString,
      stringCount: fresh.length,
      strings: fresh.join('\0'),
      ids,
      hasId,
      counts,
      ...b,
      errors,
      clock: {
        busyMs: performance.now() - start,
        statMs,
        readMs: readClock.readMs - read0,
        decompressMs: readClock.decompressMs - decompress0,
        xzCpuMs: xzBatchClock.cpuMs - xz0.cpuMs,
        xzProcesses: xzBatchClock.processes - xz0.processes,
      },
    };
  }
}

/** The buffers a batch can hand over to the thread it is posted to. */
export function batchTransfer(b: PackedBatch): ArrayBuffer[] {
  return [b.ids, b.hasId, b.counts, b.expName, b.expCrc, b.depName, b.depCrc, b.depWeak, b.info].map((a) => a.buffer as ArrayBuffer);
}

export interface ReadFile {
  readonly id: FileIdentity | undefined;
  readonly summary: ModuleSummary;
}

/** Takes one reader's batches, in the order it answered them, into the run's strings. */
export class BatchMerger {
  private local = new Uint32Array(1024);
  private known = 0;

  constructor(private readonly strings: Interner) {}

  merge(b: PackedBatch): ReadFile[] {
    if (b.firstString !== this.known) throw new Error(`batch of reader ${b.reader} out of order: strings from ${b.firstString}, ${this.known} known`);
    if (b.stringCount > 0) {
      const fresh = b.strings.split('\0');
      if (fresh.length !== b.stringCount) throw new Error(`batch of reader ${b.reader}: ${fresh.length} strings, ${b.stringCount} announced`);
      if (this.known + fresh.length > this.local.length) {
        const grown = new Uint32Array(Math.max(2 * this.local.length, this.known + fresh.length));
        grown.set(this.local.subarray(0, this.known));
        this.local = grown;
      }
      for (const s of fresh) this.local[this.known++] = this.strings.id(s);
    }
    const renumber = (ids: Uint32Array) => {
      for (let k = 0; k < ids.length; k++) {
        const x = ids[k]!;
        if (x >= this.known) throw new Error(`batch of reader ${b.reader}: string ${x} of ${this.known}`);
        ids[k] = this.local[x]!;
      }
      return ids;
    };
    const errors = new Map(b.errors);
    const out: ReadFile[] = [];
    let e = 0;
    let d = 0;
    let f = 0;
    for (let i = 0; i < b.hasId.length; i++) {
      const ne = b.counts[3 * i]!;
      const nd = b.counts[3 * i + 1]!;
      const nf = b.counts[3 * i + 2]!;
      const error = errors.get(i);
      const w = b.ids.subarray(ID_WORDS * i, ID_WORDS * i + ID_WORDS);
      out.push({
        id: b.hasId[i] ? { size: w[0]!, mtimeNs: w[1]!, ctimeNs: w[2]!, ino: w[3]!, dev: w[4]! } : undefined,
        summary: {
          exports: renumber(b.expName.subarray(e, e + ne)),
          exportCrcs: b.expCrc.subarray(e, e + ne),
          deps: renumber(b.depName.subarray(d, d + nd)),
          depCrcs: b.depCrc.subarray(d, d + nd),
          depWeak: b.depWeak.subarray(d, d + nd),
          info: renumber(b.info.subarray(f, f + nf)),
          ...(error !== undefined ? { error } : {}),
        },
      });
      e += ne;
      d += nd;
      f += nf;
    }
    return out;
  }
}

/** Where a run's reading went: the readers' clocks added up, and the run's own merging. */
export interface ReadClock extends BatchClock {
  mergeMs: number;
  /** Reader threads used (0: read in-process). */
  threads: number;
}

let sessions = 0;

/**
 * Files per batch a thread is given, at most: each batch of .ko.xz files is one xz process,
 * and each process costs CPU of its own: decoding the 6.12 tree (4230 files) through
 * xzDecodeConcatenated took 6.5 s of xz CPU in batches of 32 files, 6.2-6.3 s in batches of
 * 128 (xargs xz -dc: 7.6 s, 6.6 s, and 6.2 s in one process). Batches shrink towards the end
 * (batchSize), so that no thread is left decoding one big batch while the others wait.
 */
const MAX_BATCH = 128;
const MIN_BATCH = 4;

/** A share of what is left for each of `lanes` lanes, twice over: big while much is left, small at the end. */
function batchSize(left: number, lanes: number): number {
  return Math.max(MIN_BATCH, Math.min(MAX_BATCH, Math.ceil(left / (lanes * 2))));
}
/** Files per batch read in-process (no thread to keep busy; only the packing to amortise). */
const LOCAL_BATCH = 64;

/**
 * Reads `files` and hands each one's identity and summary to `each`, as batches are merged:
 * on the pool's threads when a pool is given (two batches queued per thread), otherwise, or
 * for any batch a thread could not answer, in-process through `fs`.
 */
export async function readInBatches(
  fs: KabiFs,
  files: readonly ModuleFile[],
  strings: Interner,
  pool: ModuleReaderPool | undefined,
  each: (file: ModuleFile, read: ReadFile) => void,
  clock: ReadClock,
): Promise<void> {
  let local: { reader: BatchReader; merger: BatchMerger } | undefined;
  const mergers = new Map<string, BatchMerger>();
  const take = (batch: readonly ModuleFile[], packed: PackedBatch, merger: BatchMerger) => {
    const t = performance.now();
    const read = merger.merge(packed);
    for (let i = 0; i < batch.length; i++) each(batch[i]!, read[i]!);
    clock.mergeMs += performance.now() - t;
    for (const k of Object.keys(packed.clock) as (keyof BatchClock)[]) clock[k] += packed.clock[k];
  };
  // One local batch at a time: a reader's batches must be merged in the order it numbered
  // their strings, and the reading here and a thread's batch read again here may overlap.
  let localTurn: Promise<void> = Promise.resolve();
  const readLocally = (batch: readonly ModuleFile[]) => {
    const turn = localTurn.then(async () => {
      local ??= { reader: new BatchReader(fs), merger: new BatchMerger(strings) };
      take(batch, await local.reader.read(batch), local.merger);
    });
    localTurn = turn.catch(() => undefined);
    return turn;
  };
  if (pool === undefined || pool.closed) {
    for (let next = 0; next < files.length; ) await readLocally(files.slice(next, (next += LOCAL_BATCH)));
    return;
  }
  // Uncompressed modules are read here even with threads at hand: on two cores, reading a
  // tree of .ko files on two fresh threads took 575-715 ms against 350 ms here (the threads'
  // code starts cold, and their replies compete with the run for the same cores). Threads
  // pay where decoding is the work, and a decoding thread mostly waits on its xz processes.
  const plain = files.filter((f) => !isCompressedName(f.path));
  const packed = files.filter((f) => isCompressedName(f.path));
  if (packed.length > 0) clock.threads = pool.size;
  const session = ++sessions;
  const lanes = 2 * pool.size;
  let next = 0;
  const lane = async () => {
    while (next < packed.length) {
      const batch = packed.slice(next, (next += batchSize(packed.length - next, lanes)));
      let answer: PackedBatch;
      try {
        answer = await pool.summaries(session, batch);
      } catch {
        // A thread that failed (or a pool closed under us): this batch is read here instead.
        await readLocally(batch);
        continue;
      }
      let merger = mergers.get(answer.reader);
      if (merger === undefined) mergers.set(answer.reader, (merger = new BatchMerger(strings)));
      take(batch, answer, merger);
    }
  };
  const here = async () => {
    for (let at = 0; at < plain.length; ) {
      await readLocally(plain.slice(at, (at += LOCAL_BATCH)));
      // Reading here is synchronous: let the threads' answers in between batches.
      if (packed.length > 0) await new Promise((r) => setImmediate(r));
    }
  };
  await Promise.all([here(), ...Array.from({ length: packed.length > 0 ? lanes : 0 }, lane)]);
}
