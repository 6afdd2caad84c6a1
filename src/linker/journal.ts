import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound } from '../fs.js';

/**
 * The record of one kernel's link transaction, written (atomically, and flushed) in the
 * kernel's module directory before the first link changes. It names every link with its
 * target before and after, and the directories the transaction makes, so that a run killed
 * anywhere can be undone (or, once depmod's outputs are in place, finished) by the next.
 */
export interface Journal {
  readonly version: 2;
  /** The run that wrote it (its depmod commit marker carries the same pid). */
  readonly pid: number;
  readonly changes: readonly LinkChange[];
  /** Directories made, relative to the module directory, parents first. */
  readonly made: readonly string[];
  /** After the commit: `links` prunes the directories removed links leave empty; `all` every empty one (a removed kernel). */
  readonly prune: 'links' | 'all';
}

/** One link, relative to weak-updates/: its target before (null: absent) and after (null: removed). */
export interface LinkChange {
  readonly link: string;
  readonly from: string | null;
  readonly to: string | null;
}

export const JOURNAL = '.weak-updates.kabi-journal';
/** The journal once the transaction is done: only cleaning up is left. */
export const COMMITTED = `${JOURNAL}.committed`;
const TMP = `${JOURNAL}.tmp`;

/**
 * Where a transaction's new links wait and the previous ones are kept until the commit: a
 * hidden sibling of the kernel's module directory (same file system, so every move is one
 * rename; outside the tree depmod scans, so no index run ever sees them; skipped by kernel
 * discovery, which ignores dot entries, as the bash tool's `ls` does).
 */
export function stagingDir(moduleDir: string): string {
  return posix.join(posix.dirname(moduleDir), `.${posix.basename(moduleDir)}${STAGING_SUFFIX}`);
}
export const STAGING_SUFFIX = '.kabi-staging';

/** Change number `i`'s new link, or its previous one, in the staging directory. */
export function staged(moduleDir: string, i: number, kind: 'new' | 'old'): string {
  return posix.join(stagingDir(moduleDir), `${i}.${kind}`);
}

export async function writeJournal(fs: KabiFs, moduleDir: string, j: Journal): Promise<void> {
  const tmp = posix.join(moduleDir, TMP);
  const h = await fs.open(tmp, 'w', 0o644);
  try {
    await h.writeFile(JSON.stringify(j) + '\n');
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.rename(tmp, posix.join(moduleDir, JOURNAL));
  await syncDir(fs, moduleDir);
}

/** The journal in `name`, or undefined when there is none. A journal kabi cannot read is an error naming it. */
export async function readJournal(fs: KabiFs, moduleDir: string, name: string): Promise<Journal | undefined> {
  const file = posix.join(moduleDir, name);
  let text: string;
  try {
    text = new TextDecoder().decode(await fs.readFile(file));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  try {
    const j = JSON.parse(text) as Journal;
    const ok =
      j.version === 2 &&
      Number.isInteger(j.pid) &&
      Array.isArray(j.changes) &&
      j.changes.every((c) => typeof c.link === 'string' && safeRelative(c.link) && (c.from === null || typeof c.from === 'string') && (c.to === null || typeof c.to === 'string')) &&
      Array.isArray(j.made) &&
      j.made.every((d) => typeof d === 'string' && safeRelative(d)) &&
      (j.prune === 'links' || j.prune === 'all');
    if (ok) return j;
  } catch {
    /* reported below */
  }
  throw new KabiError('IO', 'not a journal kabi wrote (remove it by hand once no kabi or weak-modules run is in progress)', { file });
}

/** A relative path that stays below its base. */
export function safeRelative(p: string): boolean {
  return p !== '' && !posix.isAbsolute(p) && p.split('/').every((c) => c !== '' && c !== '.' && c !== '..');
}

/** The transaction is done: the journal becomes a note that only cleaning up is left. */
export async function markCommitted(fs: KabiFs, moduleDir: string): Promise<void> {
  await fs.rename(posix.join(moduleDir, JOURNAL), posix.join(moduleDir, COMMITTED));
  await syncDir(fs, moduleDir);
}

export async function syncDir(fs: KabiFs, dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } catch (e) {
    if (errnoCode(e) !== 'EINVAL' && errnoCode(e) !== 'EBADF') throw e;
  } finally {
    await h.close();
  }
}

export async function removeIfPresent(fs: KabiFs, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

export { TMP as JOURNAL_TMP };
