import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { readTextIfExists } from '../fs.js';

export type EntryType = 'dir' | 'file' | 'link';

/** One entry of a saved module directory; `path` is relative to it ('' is the directory itself). */
export interface TreeEntry {
  readonly path: string;
  readonly type: EntryType;
  readonly mode: number;
  /** Files: size and modification time, to notice a saved file changed behind our back. */
  readonly size?: number;
  readonly mtimeMs?: number;
  /** Links: the target as written. */
  readonly target?: string;
}

export interface Manifest {
  readonly format: 'kabi-preserve';
  readonly version: 1;
  readonly release: string;
  /** System path of the module directory the tree was saved from (and is restored to). */
  readonly moduleDir: string;
  readonly savedAt: string;
  /** How the files were saved: hard links, copies (another file system, or links refused), or both. */
  readonly method: 'hardlink' | 'copy' | 'mixed';
  readonly entries: readonly TreeEntry[];
}

/** What `restore` put into the live tree: the only things `prune` may take out of it again. */
export interface RestoredRecord {
  readonly format: 'kabi-preserve-restored';
  readonly version: 1;
  readonly restoredAt: string;
  /** Relative paths with the identity they had when restored (a package file in their place is left alone). */
  readonly files: readonly { path: string; dev: number; ino: number }[];
  readonly links: readonly { path: string; target: string }[];
  /** Directories restore created, parents first. */
  readonly dirs: readonly string[];
}

/** Write a JSON file atomically: beside it, fsync'd, renamed over it. */
export async function writeJsonAtomic(fs: KabiFs, file: string, value: unknown): Promise<void> {
  const tmp = posix.join(posix.dirname(file), `.${posix.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  const h = await fs.open(tmp, 'wx', 0o644);
  try {
    await h.writeFile(JSON.stringify(value, null, 1) + '\n');
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.rename(tmp, file);
}

export async function readJson<T>(fs: KabiFs, file: string, format: string): Promise<T | undefined> {
  const text = await readTextIfExists(fs, file);
  if (text === undefined) return undefined;
  let v: { format?: unknown; version?: unknown };
  try {
    v = JSON.parse(text) as { format?: unknown; version?: unknown };
  } catch (e) {
    throw new KabiError('IO', `unreadable preserve record: ${(e as Error).message}`, { file });
  }
  if (v.format !== format || v.version !== 1) throw new KabiError('IO', `not a ${format} version 1 record`, { file });
  return v as T;
}
