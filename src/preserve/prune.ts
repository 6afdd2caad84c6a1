import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound, nodeFs } from '../fs.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { MANIFEST, RESTORED } from './layout.js';
import { readJson, type Manifest, type RestoredRecord } from './manifest.js';
import { listSaves, recoverPreserveDirectory, withPreserveLock, type PreserveOptions } from './save.js';

export interface PruneOptions extends PreserveOptions {
  /** The running kernel: never touched. */
  running: string;
  /** Saves last used longer ago than this are removed. */
  olderThanMs: number;
  dryRun?: boolean;
}

/** What pruning did with one saved kernel: left the running one alone, kept it, or removed it. */
export interface PruneOutcome {
  readonly release: string;
  readonly action: 'running' | 'kept' | 'removed';
  /** When the save was last made or restored from. */
  readonly lastUsed: string | undefined;
  /** Relative paths restore had put into the live tree and prune took out again. */
  readonly cleaned: readonly string[];
}

/**
 * For every saved kernel that is not running: take out of its live module directory what
 * `restore` put there (only entries still exactly as restored; a package file in their place
 * stays), since nothing runs that kernel any more and a leftover tree would collide with a
 * later reinstall of it; then drop the save itself once it is older than the retention.
 */
export async function pruneSaves(opts: PruneOptions): Promise<PruneOutcome[]> {
  const fs = opts.fs ?? nodeFs;
  const root = opts.root ?? '/';
  const now = (opts.now ?? new Date()).getTime();
  const out: PruneOutcome[] = [];
  for (const save of await listSaves(fs, root)) {
    const outcome = await withPreserveLock(fs, save.preserveDir, async () => {
      await recoverPreserveDirectory(fs, save.preserveDir);
      const manifest = await readJson<Manifest>(fs, posix.join(save.dir, MANIFEST), 'kabi-preserve').catch(() => undefined);
      const restored = await readJson<RestoredRecord>(fs, posix.join(save.dir, RESTORED), 'kabi-preserve-restored').catch(() => undefined);
      const times = [manifest?.savedAt, restored?.restoredAt].filter((t): t is string => t !== undefined).map((t) => Date.parse(t)).filter(Number.isFinite);
      const lastUsed = times.length > 0 ? new Date(Math.max(...times)).toISOString() : undefined;
      if (save.release === opts.running) return { release: save.release, action: 'running' as const, lastUsed, cleaned: [] };
      const cleaned = restored && manifest ? await cleanRestored(fs, root, manifest, restored, opts.dryRun === true) : [];
      if (restored && !opts.dryRun) await fs.unlink(posix.join(save.dir, RESTORED)).catch((e) => (isNotFound(e) ? undefined : Promise.reject(e)));
      // A save without a readable manifest is a broken one: nothing can restore from it.
      const old = lastUsed === undefined || now - Date.parse(lastUsed) >= opts.olderThanMs;
      if (!old) return { release: save.release, action: 'kept' as const, lastUsed, cleaned };
      if (!opts.dryRun) await fs.rm(save.dir, { recursive: true, force: true });
      return { release: save.release, action: 'removed' as const, lastUsed, cleaned };
    });
    out.push(outcome);
  }
  return out;
}

async function cleanRestored(fs: KabiFs, root: string, manifest: Manifest, rec: RestoredRecord, dryRun: boolean): Promise<string[]> {
  const parent = await resolveInRoot(fs, root, hostPath(root, posix.dirname(manifest.moduleDir)));
  if (parent === undefined) return [];
  const base = posix.join(parent, manifest.release);
  const cleaned: string[] = [];
  const remove = async (rel: string, check: (st: Awaited<ReturnType<KabiFs['lstat']>>) => Promise<boolean>) => {
    const p = posix.join(base, rel);
    let st;
    try {
      st = await fs.lstat(p);
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    if (!(await check(st))) return;
    if (!dryRun) await fs.unlink(p);
    cleaned.push(rel);
  };
  for (const f of rec.files) await remove(f.path, async (st) => st.isFile() && st.dev === f.dev && st.ino === f.ino);
  for (const l of rec.links) await remove(l.path, async (st) => st.isSymbolicLink() && (await fs.readlink(posix.join(base, l.path))) === l.target);
  // Directories restore created, deepest first, and only once empty (anything else in them is not ours).
  for (const d of [...rec.dirs].sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? 1 : -1))) {
    const p = d === '' ? base : posix.join(base, d);
    if (dryRun) continue;
    try {
      const st = await fs.lstat(p);
      if (!st.isDirectory()) continue;
      await fs.rmdir(p);
      cleaned.push(d === '' ? '.' : d);
    } catch (e) {
      if (!isNotFound(e) && errnoCode(e) !== 'ENOTEMPTY' && errnoCode(e) !== 'EEXIST') throw e;
    }
  }
  return cleaned;
}
