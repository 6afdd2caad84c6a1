import { release as hostRelease } from 'node:os';
import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import { nodeFs, type KabiFs } from '../fs.js';
import { withJsonForm } from '../json.js';
import { parseDuration } from '../preserve/duration.js';
import { MANIFEST, RESTORED } from '../preserve/layout.js';
import { readJson, type Manifest, type RestoredRecord } from '../preserve/manifest.js';
import { pruneSaves, type PruneOutcome } from '../preserve/prune.js';
import { restoreTree, type RestoreResult } from '../preserve/restore.js';
import { listSaves, saveTree, type SaveResult } from '../preserve/save.js';
import { requireRoot } from './root.js';

/** Options of the preserve calls. */
export interface PreserveCallOptions {
  /** The system (default "/"). */
  root?: string;
  fs?: KabiFs;
  /** The kernel concerned: default `uname -r` when the root is "/"; required for any other root (an image has no running kernel of its own). */
  kernel?: string;
  /** Called as files are saved or restored (for a progress indicator). */
  onProgress?: (label: string, done: number, total: number) => void;
}

/** Options of preserve.prune(). */
export interface PruneCallOptions extends PreserveCallOptions {
  /** Saves last used longer ago than this are removed: milliseconds, or a systemd-style age ("4w", "10d", "1w 2d"; default "4w"). */
  olderThan?: number | string;
  /** Say what would be removed; remove nothing. */
  dryRun?: boolean;
}

/** A saved module tree, as preserve.list() finds it. */
export interface SavedTree {
  readonly release: string;
  /** System path of the module directory it was saved from (null when its manifest is unreadable: an incomplete save). */
  readonly moduleDir: string | null;
  readonly savedAt: string | null;
  readonly method: Manifest['method'] | null;
  /** When restore last put it back, if ever. */
  readonly restoredAt: string | null;
}

async function context(opts: PreserveCallOptions): Promise<{ root: string; fs: KabiFs; kernel: string }> {
  const fs = opts.fs ?? nodeFs;
  const root = await requireRoot(opts.root, fs);
  if (opts.kernel) return { root, fs, kernel: opts.kernel };
  if (posix.resolve(root) === '/') return { root, fs, kernel: hostRelease() };
  throw new KabiError('USAGE', `the running kernel of ${root} is unknown: name the kernel`);
}

const common = (c: { root: string; fs: KabiFs }, opts: PreserveCallOptions) => ({ root: c.root, fs: c.fs, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });

/**
 * Keep the running kernel's module tree usable while a package upgrade removes it (`kabi
 * preserve`): save() before the transaction, restore() after it, prune() at boot, list().
 */
export const preserve = {
  /** Save the kernel's module directory (hard links, else copies) into <modules>/.kabi-preserve/K/, replacing its previous save atomically. */
  async save(opts: PreserveCallOptions = {}): Promise<SaveResult> {
    const c = await context(opts);
    return withJsonForm(await saveTree(c.kernel, common(c, opts)));
  },
  /** Put back whatever the upgrade removed from the kernel's module directory; nothing that exists is overwritten. */
  async restore(opts: PreserveCallOptions = {}): Promise<RestoreResult> {
    const c = await context(opts);
    return withJsonForm(await restoreTree(c.kernel, common(c, opts)));
  },
  /** For each saved kernel other than the running one (`kernel`), take back what restore put there, and drop saves older than `olderThan`. */
  async prune(opts: PruneCallOptions = {}): Promise<PruneOutcome[]> {
    const c = await context(opts);
    const olderThanMs = typeof opts.olderThan === 'number' ? opts.olderThan : parseDuration(opts.olderThan ?? '4w');
    return pruneSaves({ root: c.root, fs: c.fs, running: c.kernel, olderThanMs, dryRun: opts.dryRun === true });
  },
  /** The saves under the root, with when each was made and last restored. */
  async list(opts: Omit<PreserveCallOptions, 'kernel' | 'onProgress'> = {}): Promise<SavedTree[]> {
    const fs = opts.fs ?? nodeFs;
    const root = await requireRoot(opts.root, fs);
    const out: SavedTree[] = [];
    for (const s of await listSaves(fs, root)) {
      const m = await readJson<Manifest>(fs, posix.join(s.dir, MANIFEST), 'kabi-preserve').catch(() => undefined);
      const r = await readJson<RestoredRecord>(fs, posix.join(s.dir, RESTORED), 'kabi-preserve-restored').catch(() => undefined);
      out.push({ release: s.release, moduleDir: m?.moduleDir ?? null, savedAt: m?.savedAt ?? null, method: m?.method ?? null, restoredAt: r?.restoredAt ?? null });
    }
    return out;
  },
} as const;
