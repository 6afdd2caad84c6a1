import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import { confinedPath, hostPath } from '../kernel/paths.js';

/** What a kernel's weak-updates directory holds, read with lstat only (nothing is followed). */
export interface WeakUpdatesState {
  /** System path of the directory. */
  readonly dir: string;
  readonly exists: boolean;
  /** link system path → target as written in the link. */
  readonly links: ReadonlyMap<string, string>;
  /** Regular files someone put there (kept as they are). */
  readonly files: readonly string[];
  /** Subdirectories (system paths), parents before children. */
  readonly dirs: readonly string[];
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
}

export async function readWeakUpdates(fs: KabiFs, root: string, moduleDir: string): Promise<WeakUpdatesState> {
  const dir = posix.join(moduleDir, 'weak-updates');
  const links = new Map<string, string>();
  const files: string[] = [];
  const dirs: string[] = [];
  let top;
  try {
    top = await fs.lstat(await confinedPath(fs, root, dir, { followLast: false }));
  } catch (e) {
    if (isNotFound(e)) return { dir, exists: false, links, files, dirs, mode: undefined, uid: undefined, gid: undefined };
    throw e;
  }
  if (!top.isDirectory()) {
    // A symlink or file where the directory should be: never write through it.
    const { KabiError } = await import('../errors.js');
    throw new KabiError('UNSAFE_PATH', `${dir} is not a directory (refusing to follow or replace it)`, { file: hostPath(root, dir) });
  }
  const walk = async (sys: string) => {
    const host = await confinedPath(fs, root, sys, { followLast: false });
    const names = (await fs.readdir(host)).sort();
    for (const n of names) {
      const p = posix.join(sys, n);
      const st = await fs.lstat(posix.join(host, n));
      if (st.isSymbolicLink()) links.set(p, await fs.readlink(posix.join(host, n)));
      else if (st.isDirectory()) {
        dirs.push(p);
        await walk(p);
      } else files.push(p);
    }
  };
  await walk(dir);
  return { dir, exists: true, links, files, dirs, mode: top.mode & 0o7777, uid: top.uid, gid: top.gid };
}
