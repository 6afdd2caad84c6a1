/**
 * Worker-thread side of ModuleReaderPool: decompressing .ko.xz is single-threaded WASM work,
 * so bulk reads go to one worker per core. Replies carry the parsed module as plain data.
 */
import { parentPort } from 'node:worker_threads';
import { KabiError } from '../errors.js';
import { readModuleFile } from './read-module.js';

interface Request {
  id: number;
  path: string;
}

parentPort?.on('message', (req: Request) => {
  readModuleFile(req.path).then(
    (module) => parentPort!.postMessage({ id: req.id, module }),
    (e: unknown) => {
      const error =
        e instanceof KabiError
          ? { kabi: true, code: e.code, detail: e.detail, file: e.file, offset: e.offset, line: e.line }
          : { kabi: false, message: (e as Error)?.message ?? String(e) };
      parentPort!.postMessage({ id: req.id, error });
    },
  );
});
