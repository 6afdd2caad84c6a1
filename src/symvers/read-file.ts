import { readFile } from 'node:fs/promises';
import { maybeDecompress } from '../../native-bindings/index.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { parseSymvers, type SymversTable } from './parse.js';

/** Read a Module.symvers / symvers-K.{gz,xz,zst}, recognising compression by magic, not by name. */
export async function readSymversFile(path: string, opts: { fs?: KabiFs } = {}): Promise<SymversTable> {
  let bytes: Uint8Array;
  try {
    bytes = opts.fs ? await opts.fs.readFile(path) : await readFile(path);
  } catch (e) {
    throw new KabiError('IO', `cannot read symvers: ${(e as Error).message}`, { file: path, cause: e });
  }
  const { data } = await maybeDecompress(bytes, { file: path });
  return parseSymvers(new TextDecoder('utf-8', { fatal: false }).decode(data), { file: path });
}
