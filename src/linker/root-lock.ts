import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { acquireLock, type LockOptions } from './lock.js';

/** The lock's name in the directory that holds every kernel's module directory. */
export const ROOT_LOCK = '.kabi.lock';

/** Host path of the root's module base (/lib/modules, or /usr/lib/modules), resolved inside the root; undefined if it has none. */
export async function modulesBase(fs: KabiFs, root: string): Promise<string | undefined> {
  for (const p of ['/lib/modules', '/usr/lib/modules']) {
    const real = await resolveInRoot(fs, root, hostPath(root, p));
    if (real === undefined) continue;
    try {
      if ((await fs.stat(real)).isDirectory()) return real;
    } catch {
      /* not a directory: try the other spelling */
    }
  }
  return undefined;
}

/** Host path of a root's lock file, or undefined when the root has no module tree (nothing to guard). */
export async function rootLockPath(fs: KabiFs, root: string): Promise<string | undefined> {
  const base = await modulesBase(fs, root);
  return base === undefined ? undefined : posix.join(base, ROOT_LOCK);
}

/**
 * Run `fn` holding the root's lock: one per root, taken before anything reads or repairs the
 * linker's state and held until `fn` ends (plan, apply, depmod and initramfs). The same
 * process may take it again inside `fn` (counted); programs `fn` runs inherit it.
 */
export async function withRootLock<T>(root: string, fn: () => Promise<T>, opts: LockOptions & { fs?: KabiFs } = {}): Promise<T> {
  const fs = opts.fs ?? nodeFs;
  const path = await rootLockPath(fs, root);
  if (path === undefined) return fn();
  const lock = await acquireLock(fs, path, opts);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
