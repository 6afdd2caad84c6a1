/**
 * Worker-thread side of ModuleReaderPool: decompressing .ko.xz is single-threaded WASM work
 * and a tree holds thousands of modules, so bulk reads go to one worker per core. A request
 * is either one module to parse (the reply is the module as plain data) or a batch of files
 * for depmod's summaries (the reply is packed typed arrays, their buffers transferred).
 * Requests are answered one after another, in the order they came.
 */
import { parentPort } from 'node:worker_threads';
import { BatchReader, batchTransfer } from '../depmod/read-batch.js';
import { KabiError, type KabiErrorCode } from '../errors.js';
import { nodeFs } from '../fs.js';
import type { ModuleFile } from '../kernel/module-tree.js';
import { readModuleFile } from './read-module.js';

/** `session`: one run's batches; a reader's string numbering starts anew with each. */
export type WorkerTask = { kind: 'module'; path: string } | { kind: 'summaries'; session: number; files: readonly ModuleFile[] };
export type WorkerRequest = WorkerTask & { id: number };

export type ReplyError = { kabi: true; code: KabiErrorCode; detail: string; file?: string; offset?: number; line?: number } | { kabi: false; message: string };

let batches: { session: number; reader: BatchReader } | undefined;
let queue: Promise<void> = Promise.resolve();

async function answer(req: WorkerRequest): Promise<void> {
  try {
    if (req.kind === 'summaries') {
      if (batches?.session !== req.session) batches = { session: req.session, reader: new BatchReader(nodeFs) };
      const value = await batches.reader.read(req.files);
      parentPort!.postMessage({ id: req.id, value }, batchTransfer(value));
    } else {
      parentPort!.postMessage({ id: req.id, value: await readModuleFile(req.path) });
    }
  } catch (e) {
    const error: ReplyError =
      e instanceof KabiError
        ? { kabi: true, code: e.code, detail: e.detail, file: e.file, offset: e.offset, line: e.line }
        : { kabi: false, message: (e as Error)?.message ?? String(e) };
    parentPort!.postMessage({ id: req.id, error });
  }
}

parentPort?.on('message', (req: WorkerRequest) => {
  // One at a time: a batch reader's strings are numbered across its batches in reply order.
  queue = queue.then(() => answer(req));
});
