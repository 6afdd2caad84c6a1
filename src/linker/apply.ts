import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound, nodeFs } from '../fs.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { acquireLock } from './lock.js';
import { recoverInterruptedReplace } from '../depmod/atomic-write.js';
import type { KernelPlan, Plan } from './types.js';
import { readWeakUpdates, type WeakUpdatesState } from './weak-updates-state.js';

const NEW = 'weak-updates.kabi-new';
const OLD = 'weak-updates.kabi-old';
const JOURNAL = '.weak-updates.kabi-journal';

export interface ApplyOptions {
  fs?: KabiFs;
  /** How long to wait for another run's lock. */
  lockTimeoutMs?: number;
}

/** Host path of the directory holding all kernels' module dirs (where the lock lives). */
async function modulesBase(fs: KabiFs, root: string): Promise<string> {
  for (const p of ['/lib/modules', '/usr/lib/modules']) {
    const real = await resolveInRoot(fs, root, hostPath(root, p));
    if (real !== undefined) return real;
  }
  throw new KabiError('KERNEL_NOT_FOUND', `no lib/modules under ${root}`);
}

export async function withLinkerLock<T>(root: string, fs: KabiFs, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  const lock = await acquireLock(fs, posix.join(await modulesBase(fs, root), '.kabi.lock'), { ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/**
 * Apply a plan, one kernel at a time. For each kernel the new weak-updates directory is
 * built beside the old one and swapped in with two renames recorded in a journal, so the
 * directory is always either the old or the new state; an interrupted swap is finished
 * (or undone) by the next run before it does anything else.
 */
export async function applyPlan(plan: Plan, opts: ApplyOptions = {}): Promise<void> {
  const fs = opts.fs ?? nodeFs;
  await withLinkerLock(
    plan.root,
    fs,
    async () => {
      for (const k of plan.kernels) {
        const moduleDir = await kernelDir(fs, plan.root, k.release);
        if (moduleDir === undefined) continue;
        await recoverKernel(fs, moduleDir);
        if (plan.mode === 'remove-kernel') await swapIn(fs, moduleDir, ...keepFilesOnly(await readState(fs, moduleDir)));
        else if (k.ops.length > 0) await applyKernel(fs, moduleDir, k);
      }
    },
    opts.lockTimeoutMs,
  );
}

async function kernelDir(fs: KabiFs, root: string, release: string): Promise<string | undefined> {
  for (const base of ['/lib/modules', '/usr/lib/modules']) {
    const real = await resolveInRoot(fs, root, hostPath(root, `${base}/${release}`));
    if (real !== undefined) return real;
  }
  return undefined;
}

/** Finish or undo an interrupted swap in every kernel under the root (run before any change). */
export async function recoverAll(root: string, opts: { fs?: KabiFs } = {}): Promise<string[]> {
  const fs = opts.fs ?? nodeFs;
  const recovered: string[] = [];
  let base: string;
  try {
    base = await modulesBase(fs, root);
  } catch {
    return recovered;
  }
  for (const name of await fs.readdir(base)) {
    const dir = posix.join(base, name);
    try {
      if (!(await fs.lstat(dir)).isDirectory()) continue;
    } catch {
      continue;
    }
    if (await recoverKernel(fs, dir)) recovered.push(name);
  }
  return recovered;
}

async function exists(fs: KabiFs, p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** Returns true if something had to be repaired. */
export async function recoverKernel(fs: KabiFs, moduleDir: string): Promise<boolean> {
  // depmod's outputs are replaced together too; finish or undo that first.
  const depmodRepaired = await recoverInterruptedReplace(fs, moduleDir);
  return (await recoverWeakUpdates(fs, moduleDir)) || depmodRepaired;
}

async function recoverWeakUpdates(fs: KabiFs, moduleDir: string): Promise<boolean> {
  const cur = posix.join(moduleDir, 'weak-updates');
  const neu = posix.join(moduleDir, NEW);
  const old = posix.join(moduleDir, OLD);
  const journal = posix.join(moduleDir, JOURNAL);
  const hasJournal = await exists(fs, journal);
  const hasNew = await exists(fs, neu);
  const hasOld = await exists(fs, old);
  const hasJournalTmp = await exists(fs, `${journal}.tmp`);
  if (!hasJournal && !hasNew && !hasOld && !hasJournalTmp) return false;
  if (hasJournalTmp) await fs.unlink(`${journal}.tmp`); // never committed
  if (hasJournal) {
    const hasCur = await exists(fs, cur);
    if (!hasCur && hasNew) await fs.rename(neu, cur); // the old one was moved away: roll forward
    else if (hasNew) await removeTree(fs, neu); // the swap never started: roll back
    await fs.unlink(journal);
  } else if (hasNew) {
    await removeTree(fs, neu); // staging never committed
  }
  if (await exists(fs, old)) await removeTree(fs, old);
  return true;
}

/** Remove a tree we created, never following symlinks inside it. */
async function removeTree(fs: KabiFs, p: string): Promise<void> {
  const st = await fs.lstat(p);
  if (!st.isDirectory()) {
    await fs.unlink(p);
    return;
  }
  await fs.rm(p, { recursive: true, force: true });
}

/**
 * Removing a kernel drops its links; a regular file someone put in weak-updates/ is data and
 * stays (the bash tool's `rm -rf *` deletes it).
 */
function keepFilesOnly(state: WeakUpdatesState): [WeakUpdatesState, Pick<WeakUpdatesState, 'links' | 'files' | 'dirs'>] {
  const dirs = state.dirs.filter((d) => state.files.some((f) => f.startsWith(d + '/')));
  return [state, { links: new Map(), files: state.files, dirs }];
}

/** The weak-updates content with host paths (moduleDir is already a host path). */
async function readState(fs: KabiFs, moduleDir: string): Promise<WeakUpdatesState> {
  return readWeakUpdates(fs, '/', moduleDir);
}

async function applyKernel(fs: KabiFs, moduleDir: string, k: KernelPlan): Promise<void> {
  const state = await readState(fs, moduleDir);
  // Plan paths are system paths (/lib/modules/K/weak-updates/…); moduleDir is this kernel's real directory.
  const toHost = (sys: string) => posix.join(moduleDir, sys.replace(/^\/(usr\/)?lib\/modules\/[^/]+\//, ''));
  const links = new Map(state.links);
  for (const op of k.ops) {
    const link = toHost(op.link);
    const now = links.get(link);
    if ((op.kind === 'add' && now !== undefined && now !== op.target) || (op.kind !== 'add' && now !== op.previousTarget)) {
      throw new KabiError('IO', `${link} changed since the plan was made (now ${now ?? 'absent'}); nothing was changed for kernel ${k.release}`);
    }
    if (op.kind === 'remove') links.delete(link);
    else links.set(link, op.target!);
  }
  // Directories left empty by a removal go too (weak-modules prunes them); others stay.
  const emptyBefore = state.dirs.filter((d) => ![...state.links.keys(), ...state.files].some((f) => f.startsWith(d + '/')));
  const needed = new Set<string>();
  for (const f of [...links.keys(), ...state.files]) {
    for (let d = posix.dirname(f); d.startsWith(state.dir + '/'); d = posix.dirname(d)) needed.add(d);
  }
  const dirs = state.dirs.filter((d) => needed.has(d) || emptyBefore.includes(d));
  for (const d of needed) if (!dirs.includes(d)) dirs.push(d);
  dirs.sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1));
  await swapIn(fs, moduleDir, state, { links, files: state.files, dirs });
}

/** Build `next` in the staging directory, then swap it in. */
async function swapIn(fs: KabiFs, moduleDir: string, state: WeakUpdatesState, next: Pick<WeakUpdatesState, 'links' | 'files' | 'dirs'>): Promise<void> {
  const cur = posix.join(moduleDir, 'weak-updates');
  const neu = posix.join(moduleDir, NEW);
  const old = posix.join(moduleDir, OLD);
  const journal = posix.join(moduleDir, JOURNAL);
  const rel = (p: string) => posix.relative(cur, p);
  try {
    if (await exists(fs, neu)) await removeTree(fs, neu);
    await fs.mkdir(neu, { mode: state.mode ?? 0o755 });
    if (state.mode !== undefined) await fs.chmod(neu, state.mode);
    if (state.uid !== undefined && state.gid !== undefined && process.getuid?.() === 0) await fs.chown(neu, state.uid, state.gid);
    for (const d of next.dirs) await fs.mkdir(posix.join(neu, rel(d)), { recursive: true });
    for (const [link, target] of next.links) {
      const dst = posix.join(neu, rel(link));
      await fs.mkdir(posix.dirname(dst), { recursive: true });
      await fs.symlink(target, dst);
    }
    for (const f of next.files) {
      const dst = posix.join(neu, rel(f));
      await fs.mkdir(posix.dirname(dst), { recursive: true });
      try {
        await fs.link(f, dst);
      } catch (e) {
        if (errnoCode(e) !== 'EXDEV' && errnoCode(e) !== 'EPERM') throw e;
        await fs.copyFile(f, dst);
      }
    }
    await syncDir(fs, neu);
    await writeAtomic(fs, journal, JSON.stringify({ new: NEW, old: OLD, started: new Date().toISOString() }) + '\n');
  } catch (e) {
    await recoverKernel(fs, moduleDir).catch(() => undefined);
    throw e;
  }
  try {
    if (state.exists) await fs.rename(cur, old);
    await fs.rename(neu, cur);
    await syncDir(fs, moduleDir);
    await fs.unlink(journal);
    if (await exists(fs, old)) await removeTree(fs, old);
  } catch (e) {
    // Either rename may have happened; the journal tells recovery which way to go.
    await recoverKernel(fs, moduleDir).catch(() => undefined);
    throw e;
  }
}

async function writeAtomic(fs: KabiFs, path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const h = await fs.open(tmp, 'w', 0o644);
  try {
    await h.writeFile(text);
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.rename(tmp, path);
}

async function syncDir(fs: KabiFs, dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } catch (e) {
    if (errnoCode(e) !== 'EINVAL' && errnoCode(e) !== 'EBADF') throw e;
  } finally {
    await h.close();
  }
}
