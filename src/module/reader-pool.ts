import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { PackedBatch } from '../depmod/read-batch.js';
import { KabiError } from '../errors.js';
import { withJsonForm } from '../json.js';
import type { ModuleFile } from '../kernel/module-tree.js';
import { ModInfo } from './modinfo.js';
import type { KernelModule } from './read-module.js';
import type { SharedModuleValues } from './shared-values.js';
import type { ReplyError, WorkerTask } from './read-worker.js';

type Reply = { id: number; value: unknown } | { id: number; error: ReplyError };

/**
 * Reads modules on worker threads, one per core: parsed modules one by one (the module
 * reader), or depmod's summaries of a batch of files at a time. The pool ends its workers as
 * soon as no request is in flight (and a later read starts a new pool), unless its owner
 * holds it open and closes it itself: `Worker.unref()` is not enough, since Node 20 keeps a worker's public MessagePort referenced after a
 * ref()/unref() cycle, and a process that never exits hangs the package transaction that ran it.
 */
export class ModuleReaderPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private readonly load: number[] = [];
  private nextId = 0;
  private idleCheck = false;
  /** True once the workers were ended; the owner makes a new pool for later reads. */
  closed = false;

  private constructor(
    script: string,
    size: number,
    /** Kept open when idle, until close(): its owner reads in bursts and closes it when done. */
    private readonly held: boolean,
  ) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(script);
      w.unref();
      w.on('message', (r: Reply) => this.settle(i, r));
      w.on('error', (e) => this.failAll(e));
      this.workers.push(w);
      this.load.push(0);
    }
  }

  /** A pool, or undefined where no built worker script exists (running from TypeScript sources). */
  static create(size = Math.max(1, availableParallelism()), opts: { held?: boolean } = {}): ModuleReaderPool | undefined {
    if (size < 2) return undefined;
    // The bundled worker (built beside the bins) starts in half the time of the library's
    // own module files; from dist/src/module that is ../../bin.
    const script = ['../../bin/read-worker.js', './read-worker.js'].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((p) => existsSync(p));
    return script === undefined ? undefined : new ModuleReaderPool(script, size, opts.held === true);
  }

  get size(): number {
    return this.workers.length;
  }

  async read(path: string, shared?: SharedModuleValues): Promise<KernelModule> {
    const m = await this.request<KernelModule>({ kind: 'module', path });
    // Structured cloning keeps the data but not the class: give modinfo its methods back.
    return withJsonForm(shared ? shared.adopt(m) : { ...m, modinfo: new ModInfo(m.modinfo.entries) });
  }

  /**
   * depmod's summaries of a batch of files, read by one worker (read-batch.ts): merge them
   * with a BatchMerger per reader, in the order its batches come back. A session is one
   * run's reading; each worker starts a new reader for a new session.
   */
  summaries(session: number, files: readonly ModuleFile[]): Promise<PackedBatch> {
    return this.request<PackedBatch>({ kind: 'summaries', session, files });
  }

  private request<T>(req: WorkerTask): Promise<T> {
    if (this.closed) return Promise.reject(new Error('module reader pool is closed'));
    const id = this.nextId++;
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[w]!) w = i;
    const busy = this.load[w]!;
    this.load[w] = busy + 1;
    if (busy === 0) this.workers[w]!.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.workers[w]!.postMessage({ ...req, id });
    });
  }

  private settle(worker: number, r: Reply): void {
    const left = this.load[worker]! - 1;
    this.load[worker] = left;
    if (left === 0) this.workers[worker]!.unref();
    if (this.pending.size === 1 && !this.held) this.closeWhenIdle();
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if ('value' in r) p.resolve(r.value);
    else if (r.error.kabi) p.reject(new KabiError(r.error.code, r.error.detail, { file: r.error.file, offset: r.error.offset, line: r.error.line }));
    else p.reject(new Error(r.error.message));
  }

  /**
   * Callers keep a window of reads in flight and issue the next one from the previous one's
   * promise reaction, which runs before setImmediate: the pool closes only when the caller
   * really has nothing more to ask.
   */
  private closeWhenIdle(): void {
    if (this.idleCheck) return;
    this.idleCheck = true;
    setImmediate(() => {
      this.idleCheck = false;
      if (this.pending.size === 0) this.close();
    });
  }

  /** End the workers now; pending reads fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error('module reader pool is closed'));
    for (const w of this.workers) void w.terminate();
  }

  private failAll(e: unknown): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.load.fill(0);
    // A worker that died takes its requests with it; the others are ended too, so nothing
    // is left holding the process.
    if (!this.closed) {
      this.closed = true;
      for (const w of this.workers) void w.terminate();
    }
  }
}
