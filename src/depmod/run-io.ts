import { statSync } from 'node:fs';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs, READ_BUDGETS, readRegularFile, readRegularFileSync } from '../fs.js';
import { strerror, type ModuleFile } from '../kernel/module-tree.js';
import { latin1Text } from './c-text.js';
import type { Interner } from './interner.js';
import { summarizeElf, summarizeModuleBytes, unreadableSummary, type ModuleSummary } from './module-summary.js';
import { readModuleImage, withModulePartsSync } from './read-image.js';
import { identityOfStat, type FileIdentity } from './summary-store.js';

/** The reads a depmod run makes besides scanning, shared by its full and incremental paths. */

/**
 * What tells one version of a file from another without reading it: a file rewritten in
 * place keeps its inode, and `touch -r`, `cp -p` or `rsync -t` put its mtime back, but not its
 * ctime; another file system may reuse the inode number.
 */
export async function identityOf(fs: KabiFs, host: string): Promise<FileIdentity> {
  // Thousands of stats: the synchronous call is several times cheaper than a promise each.
  return identityOfStat(fs === nodeFs ? statSync(host, { bigint: true }) : await fs.stat(host, { bigint: true }));
}

/** An identity as a string (for the run state's JSON). */
export function identityKey(id: FileIdentity): string {
  return `${id.dev}:${id.ino}:${id.size}:${id.mtimeNs}:${id.ctimeNs}`;
}

export async function readSummary(fs: KabiFs, file: ModuleFile, strings: Interner): Promise<ModuleSummary> {
  let bytes: Uint8Array;
  try {
    if (fs === nodeFs) {
      // Plain ELF: read only the parts depmod looks at, and summarise before the next read.
      const summary = withModulePartsSync(file.host, (image) => summarizeElf(image, strings, file.host));
      if (summary !== undefined) return summary;
    }
    bytes = await readModuleImage(fs, file.host);
  } catch (e) {
    return unreadableSummary(strerror(e));
  }
  return summarizeModuleBytes(bytes, strings, file.host);
}

/** A file's bytes, or undefined when it cannot be read (missing, not a regular file, past READ_BUDGETS.text). */
export function readFileSyncOrUndefined(path: string): Uint8Array | undefined {
  try {
    return readRegularFileSync(path, READ_BUDGETS.text);
  } catch {
    return undefined;
  }
}

/** A file's bytes, undefined when it is missing; a FIFO or device in its place, or a file past READ_BUDGETS.text, is an error. */
export async function readOptionalBytes(fs: KabiFs, path: string): Promise<Uint8Array | undefined> {
  try {
    return await readRegularFile(fs, path, READ_BUDGETS.text);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    if (e instanceof KabiError) throw e;
    throw new KabiError('IO', `cannot read: ${(e as Error).message}`, { file: path, cause: e });
  }
}

export async function readOptionalText(fs: KabiFs, path: string): Promise<string | undefined> {
  const b = await readOptionalBytes(fs, path);
  return b === undefined ? undefined : latin1Text(b);
}
