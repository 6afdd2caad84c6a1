import { ModuleReaderPool } from '../module/reader-pool.js';

const pools = new WeakMap<DepmodReaderThreads, ModuleReaderPool | undefined>();

/**
 * Reader threads (one per core) kept open across several depmod runs, so a caller that
 * refreshes many kernels pays for starting them, and for their code to warm up, once. Pass
 * the same object to each run and close() it when done: open threads keep the process alive.
 */
export class DepmodReaderThreads {
  /** End the threads. A run given these threads afterwards starts new ones. */
  close(): void {
    pools.get(this)?.close();
    pools.delete(this);
  }
}

/** The pool behind a DepmodReaderThreads, started on first use (undefined: read in-process). */
export function readerPoolOf(threads: DepmodReaderThreads): ModuleReaderPool | undefined {
  let pool = pools.get(threads);
  if (!pools.has(threads) || pool?.closed) {
    pool = ModuleReaderPool.create(undefined, { held: true });
    pools.set(threads, pool);
  }
  return pool;
}
