import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, fdatasync, fsyncSync, linkSync, openSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs } from '../fs.js';

type Ops = Pick<KabiFs, 'writeFile' | 'link' | 'rename' | 'unlink' | 'readdir'>;

/**
 * node:fs's own calls, made synchronously: a replacement is a few dozen small calls, each
 * several times cheaper than a promise round trip through the thread pool.
 */
const syncNodeFs: Ops = {
  writeFile: (async (path: string, data: Uint8Array | string, opts?: { mode?: number; flag?: string }) => writeFileSync(path, data, opts)) as Ops['writeFile'],
  link: async (a, b) => linkSync(a, b),
  rename: async (a, b) => renameSync(a, b),
  unlink: async (p) => unlinkSync(p),
  readdir: (async (p: string) => readdirSync(p)) as Ops['readdir'],
};

const opsOf = (fs: KabiFs): Ops => (fs === nodeFs ? syncNodeFs : fs);

/**
 * A larger transaction a replacement can join: the linker's, whose journal covers a kernel's
 * weak-updates links and its depmod outputs together. When a replacement of files that
 * `joins` in the transaction's directory has renamed every new file into place (while its
 * commit marker still says so), `committed` is called: from then on the transaction is done
 * and a crash is finished forwards.
 */
export interface ReplaceTransaction {
  /** Identity of the directory (stat dev and ino). */
  readonly dev: number;
  readonly ino: number;
  joins(names: readonly string[]): boolean;
  committed(): Promise<void>;
}

const transactions = new AsyncLocalStorage<ReplaceTransaction>();

/** Run `fn` with replacements in the transaction's directory joining it (see ReplaceTransaction). */
export function withinTransaction<T>(tx: ReplaceTransaction, fn: () => Promise<T>): Promise<T> {
  return transactions.run(tx, fn);
}

async function joinedTransaction(kfs: KabiFs, dir: string, names: readonly string[]): Promise<ReplaceTransaction | undefined> {
  const tx = transactions.getStore();
  if (tx === undefined || !tx.joins(names)) return undefined;
  try {
    const st = await kfs.stat(dir);
    return st.dev === tx.dev && st.ino === tx.ino ? tx : undefined;
  } catch {
    return undefined;
  }
}

export interface OutputFile {
  readonly name: string;
  readonly data: Uint8Array;
}

/**
 * Replace a set of files in one directory all together or not at all. Every new file is
 * written beside its target under a temporary name first; only when all are written are
 * they renamed into place. The previous versions are kept as hard links until every rename
 * has succeeded, so a rename failing half-way puts the old files back. On any error the
 * temporary files are removed and a KabiError names the file that failed.
 *
 * The new files' data reach the disk before any is renamed into place, and the renames before
 * this returns: otherwise a power cut could leave a file with its new size, mtime and inode
 * but blocks never written (zeros), which the next run would build on (the run state records
 * identities) and which the recovery below would rename into place.
 */
export async function replaceFilesAtomically(kfs: KabiFs, dir: string, files: readonly OutputFile[]): Promise<string[]> {
  const fs = opsOf(kfs);
  await recoverInterruptedReplace(kfs, dir);
  const tag = `.kabi-tmp-${process.pid}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const temps: { tmp: string; final: string }[] = [];
  const cleanup = async (paths: readonly string[]) => {
    for (const p of paths) {
      try {
        await fs.unlink(p);
      } catch {
        /* already gone, or never created */
      }
    }
  };
  for (const f of files) {
    const final = posix.join(dir, f.name);
    const tmp = final + tag;
    try {
      temps.push({ tmp, final });
      await fs.writeFile(tmp, f.data, { mode: 0o644, flag: 'wx' });
    } catch (e) {
      await cleanup(temps.map((t) => t.tmp));
      throw new KabiError('IO', `could not write ${f.name}: ${(e as Error).message}`, { file: tmp, cause: e });
    }
  }

  try {
    await flushFiles(kfs, temps.map((t) => t.tmp));
  } catch (e) {
    await cleanup(temps.map((t) => t.tmp));
    throw new KabiError('IO', `could not flush the new outputs to disk: ${(e as Error).message}`, { file: dir, cause: e });
  }

  const backups: { final: string; backup: string | undefined }[] = [];
  try {
    for (const { final } of temps) {
      const backup = final + tag + '.old';
      try {
        await fs.link(final, backup);
        backups.push({ final, backup });
      } catch (e) {
        if (!isNotFound(e)) throw e;
        backups.push({ final, backup: undefined });
      }
    }
  } catch (e) {
    await cleanup([...temps.map((t) => t.tmp), ...backups.flatMap((b) => (b.backup ? [b.backup] : []))]);
    throw new KabiError('IO', `could not keep the previous outputs: ${(e as Error).message}`, { file: dir, cause: e });
  }

  // From here on every new file is complete: a crash is finished by renaming the rest.
  // Named after the first file, so a leftover says which replacement it belonged to.
  const marker = posix.join(dir, `${posix.basename(temps[0]?.final ?? 'outputs')}${tag}${COMMIT}`);
  try {
    await fs.writeFile(marker, temps.map((t) => posix.basename(t.final)).join('\n') + '\n', { mode: 0o644, flag: 'wx' });
  } catch (e) {
    await cleanup([...temps.map((t) => t.tmp), ...backups.flatMap((b) => (b.backup ? [b.backup] : []))]);
    throw new KabiError('IO', `could not start replacing the outputs: ${(e as Error).message}`, { file: marker, cause: e });
  }

  let renamed = 0;
  try {
    for (const { tmp, final } of temps) {
      await fs.rename(tmp, final);
      renamed++;
    }
  } catch (e) {
    const failed = temps[renamed]!;
    // Put back what was already replaced, so the directory is as it was.
    for (let i = 0; i < renamed; i++) {
      const b = backups[i]!;
      try {
        if (b.backup !== undefined) await fs.rename(b.backup, b.final);
        else await fs.unlink(b.final);
      } catch {
        /* best effort: the error below is what the caller needs */
      }
    }
    await cleanup([...temps.slice(renamed).map((t) => t.tmp), ...backups.slice(renamed).flatMap((b) => (b.backup ? [b.backup] : []))]);
    await cleanup([marker]);
    throw new KabiError('IO', `could not rename into place: ${(e as Error).message}`, { file: failed.final, cause: e });
  }
  const tx = await joinedTransaction(kfs, dir, files.map((f) => f.name));
  if (tx !== undefined) {
    try {
      await tx.committed();
    } catch (e) {
      // The marker stays: the new files are in place and recovery finishes the rest forwards.
      throw new KabiError('IO', `could not record the commit: ${(e as Error).message}`, { file: dir, cause: e });
    }
  }
  await flushDirectory(kfs, dir);
  await cleanup([marker]);
  await cleanup(backups.flatMap((b) => (b.backup ? [b.backup] : [])));
  return temps.map((t) => t.final);
}

/** fdatasync of each file, all at once: the file system commits them together (one journal commit, not one per file). */
async function flushFiles(kfs: KabiFs, paths: readonly string[]): Promise<void> {
  if (kfs === nodeFs) {
    const fds: number[] = [];
    try {
      for (const p of paths) fds.push(openSync(p, 'r'));
      await Promise.all(fds.map((fd) => new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())))));
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    return;
  }
  await Promise.all(
    paths.map(async (p) => {
      const h = await kfs.open(p, 'r');
      try {
        await h.datasync();
      } finally {
        await h.close();
      }
    }),
  );
}

/** The renames made durable; some file systems cannot sync a directory, and lose nothing by it. */
async function flushDirectory(kfs: KabiFs, dir: string): Promise<void> {
  try {
    if (kfs === nodeFs) {
      const fd = openSync(dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return;
    }
    const h = await kfs.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    /* best effort, see above */
  }
}

const COMMIT = '.commit';
const TEMP = /^(.*)(\.kabi-tmp-(\d+)-[0-9a-z]+)(\.old|\.commit)?$/;

/** Whether `names` (a directory's entries) hold the commit marker of a replacement by `pid`. */
export function hasCommitMarker(names: readonly string[], pid: number): boolean {
  return names.some((n) => {
    const m = TEMP.exec(n);
    return m !== null && m[4] === COMMIT && Number(m[3]) === pid;
  });
}

/**
 * Finish or undo a replacement a crashed run left in `dir`: with its commit marker every new
 * file was complete and the rest are renamed into place; without it nothing was renamed yet
 * and the temporary files go. Runs still in progress (a live pid other than ours) are left
 * alone, except the pids in `dead` (known gone: a run whose lock the caller now holds, the
 * pid maybe reused since). Returns true if something was repaired.
 */
export async function recoverInterruptedReplace(kfs: KabiFs, dir: string, dead: ReadonlySet<number> = new Set()): Promise<boolean> {
  const fs = opsOf(kfs);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
  const byTag = new Map<string, { temps: string[]; olds: string[]; commit: string | undefined }>();
  for (const n of names) {
    const m = TEMP.exec(n);
    if (!m) continue;
    const pid = Number(m[3]);
    if (pid !== process.pid && !dead.has(pid) && alive(pid)) continue;
    const g = byTag.get(m[2]!) ?? { temps: [], olds: [], commit: undefined };
    if (m[4] === COMMIT) g.commit = n;
    else if (m[4] === '.old') g.olds.push(n);
    else g.temps.push(n);
    byTag.set(m[2]!, g);
  }
  for (const [tag, g] of byTag) {
    for (const t of g.temps) {
      const p = posix.join(dir, t);
      if (g.commit !== undefined) await fs.rename(p, posix.join(dir, t.slice(0, -tag.length)));
      else await fs.unlink(p);
    }
    for (const o of g.olds) await fs.unlink(posix.join(dir, o));
    if (g.commit !== undefined) await fs.unlink(posix.join(dir, g.commit));
  }
  return byTag.size > 0;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
