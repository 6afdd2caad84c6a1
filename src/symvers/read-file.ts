import { isOutputLimit, maybeDecompress } from '../../native-bindings/index.js';
import { KabiError } from '../errors.js';
import { nodeFs, overBudget, READ_BUDGETS, readRegularFile, type KabiFs } from '../fs.js';
import { parseSymvers, type SymversTable } from './parse.js';

/**
 * The text of a kernel symbol list (Module.symvers, symvers-K.gz, System.map), decompressed
 * when its magic says so: a regular file only (NOT_A_FILE otherwise, without waiting on a
 * FIFO), at most READ_BUDGETS.symbols bytes stored and decompressed (LIMIT), so that a bomb
 * never reaches a string longer than the JavaScript engine can make.
 */
export async function readSymbolFileBytes(path: string, fs: KabiFs = nodeFs): Promise<Uint8Array> {
  const budget = READ_BUDGETS.symbols;
  const bytes = await readRegularFile(fs, path, budget);
  try {
    return (await maybeDecompress(bytes, { file: path, maxOutputBytes: budget.maxBytes })).data;
  } catch (e) {
    if (isOutputLimit(e)) throw overBudget(path, budget, true);
    throw e;
  }
}

/** Read a Module.symvers / symvers-K.{gz,xz,zst}, recognising compression by magic, not by name. */
export async function readSymversFile(path: string, opts: { fs?: KabiFs } = {}): Promise<SymversTable> {
  let data: Uint8Array;
  try {
    data = await readSymbolFileBytes(path, opts.fs);
  } catch (e) {
    if (e instanceof KabiError) throw e;
    throw new KabiError('IO', `cannot read symvers: ${(e as Error).message}`, { file: path, cause: e });
  }
  return parseSymvers(new TextDecoder('utf-8', { fatal: false }).decode(data), { file: path });
}
