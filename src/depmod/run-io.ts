import { statSync } from 'node:fs';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs, READ_BUDGETS, readRegularFile, readRegularFileSync } from '../fs.js';
import { strerror, type ModuleFile } from '../kernel/module-tree.js';
import { latin1Text } from './c-text.js';
import type { Interner } from './interner.js';
import { summarizeElf, summarizeModuleFiles, unreadableSummary, type ModuleSummary } from './module-summary.js';
import { readModuleImage, withPlainModuleTimed } from './read-image.js';
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
  return (await readSummaries(fs, [file], strings))[0]!;
}

/** Compressed bytes read ahead before they are decoded (the decoder batches what it is given). */
const READ_AHEAD_BYTES = 16 << 20;

/** readSummary() for many files: compressed ones are decoded together (summarizeModuleFiles). */
export async function readSummaries(fs: KabiFs, files: readonly ModuleFile[], strings: Interner): Promise<ModuleSummary[]> {
  const sums: ModuleSummary[] = new Array<ModuleSummary>(files.length);
  let pending: { bytes: Uint8Array; file: string; at: number }[] = [];
  let pendingBytes = 0;
  const decode = async () => {
    const got = await summarizeModuleFiles(pending, strings);
    pending.forEach((p, k) => (sums[p.at] = got[k]!));
    pending = [];
    pendingBytes = 0;
  };
  for (let at = 0; at < files.length; at++) {
    const file = files[at]!;
    try {
      if (fs === nodeFs) {
        // A plain .ko: summarised from the reused buffer before the next read.
        const summary = withPlainModuleTimed(file.host, (image) => summarizeElf(image, strings, file.host));
        if (summary !== undefined) {
          sums[at] = summary;
          continue;
        }
      }
      const bytes = await readModuleImage(fs, file.host);
      pending.push({ bytes, file: file.host, at });
      pendingBytes += bytes.length;
    } catch (e) {
      sums[at] = unreadableSummary(strerror(e));
      continue;
    }
    if (pendingBytes >= READ_AHEAD_BYTES) await decode();
  }
  await decode();
  return sums;
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
