/**
 * Worker-thread side of ModuleReaderPool: decompressing .ko.xz is single-threaded WASM work
 * and a tree holds thousands of modules, so bulk reads go to one worker per core. A request
 * is either one module to parse (the reply is the module as plain data) or a batch of files
 * for depmod's summaries (the reply is packed typed arrays, their buffers transferred).
 * Requests are answered one after another, in the order they came; modules asked for while
 * the worker was busy are read together, so .ko.xz ones are decoded many per xz process.
 */
import { parentPort } from 'node:worker_threads';
import { BatchReader, batchTransfer } from '../depmod/read-batch.js';
import { KabiError, type KabiErrorCode } from '../errors.js';
import { nodeFs } from '../fs.js';
import type { ModuleFile } from '../kernel/module-tree.js';
import { readModuleFiles } from './read-module.js';

/** `session`: one run's batches; a reader's string numbering starts anew with each. */
export type WorkerTask = { kind: 'module'; path: string } | { kind: 'summaries'; session: number; files: readonly ModuleFile[] };
export type WorkerRequest = WorkerTask & { id: number };

export type ReplyError = { kabi: true; code: KabiErrorCode; detail: string; file?: string; offset?: number; line?: number } | { kabi: false; message: string };

let batches: { session: number; reader: BatchReader } | undefined;
let queue: Promise<void> = Promise.resolve();

type ModuleRequest = Extract<WorkerRequest, { kind: 'module' }>;

/** Module requests not yet started, answered together when their turn comes. */
let modules: ModuleRequest[] | undefined;
/** Modules read together at most (their compressed bytes are held at once). */
const MAX_MODULES = 64;

function replyError(id: number, e: unknown): void {
  const error: ReplyError =
    e instanceof KabiError
      ? { kabi: true, code: e.code, detail: e.detail, file: e.file, offset: e.offset, line: e.line }
      : { kabi: false, message: (e as Error)?.message ?? String(e) };
  parentPort!.postMessage({ id, error });
}

async function answerSummaries(req: Extract<WorkerRequest, { kind: 'summaries' }>): Promise<void> {
  try {
    if (batches?.session !== req.session) batches = { session: req.session, reader: new BatchReader(nodeFs) };
    const value = await batches.reader.read(req.files);
    parentPort!.postMessage({ id: req.id, value }, batchTransfer(value));
  } catch (e) {
    replyError(req.id, e);
  }
}

async function answerModules(group: readonly ModuleRequest[]): Promise<void> {
  const answered = new Set<number>();
  try {
    await readModuleFiles(group.map((r) => r.path), (i, r) => {
      answered.add(i);
      if ('module' in r) parentPort!.postMessage({ id: group[i]!.id, value: r.module });
      else replyError(group[i]!.id, r.error);
    });
  } catch (e) {
    group.forEach((r, i) => answered.has(i) || replyError(r.id, e));
  }
}

parentPort?.on('message', (req: WorkerRequest) => {
  // One at a time: a batch reader's strings are numbered across its batches in reply order.
  if (req.kind === 'summaries') {
    queue = queue.then(() => answerSummaries(req));
    return;
  }
  if (modules === undefined || modules.length >= MAX_MODULES) {
    const group: ModuleRequest[] = (modules = []);
    // Started after the messages already here are taken in (setImmediate runs after them): a
    // burst posted at once is one group, not a group of one and then the rest.
    queue = queue
      .then(() => new Promise((r) => setImmediate(r)))
      .then(() => {
        if (modules === group) modules = undefined;
        return answerModules(group);
      });
  }
  modules.push(req);
});
