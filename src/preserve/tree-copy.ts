import { constants } from 'node:fs';
import { posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { KabiFs } from '../fs.js';
import { errnoCode } from '../fs.js';
import type { TreeEntry } from './manifest.js';

/** errno values that mean "no hard link here", so a copy has to do. */
const NO_LINK = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES']);

/**
 * List a directory tree with lstat only: symlinks are recorded, never followed (a module tree
 * has `build` and `source` links pointing into /usr/src that must not be walked). Parents come
 * before their children; names are sorted so manifests are reproducible.
 */
export async function listTree(fs: KabiFs, dir: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const top = await fs.lstat(dir);
  out.push({ path: '', type: 'dir', mode: top.mode & 0o7777 });
  const walk = async (rel: string) => {
    for (const name of (await fs.readdir(posix.join(dir, rel))).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await fs.lstat(posix.join(dir, r));
      if (st.isSymbolicLink()) out.push({ path: r, type: 'link', mode: st.mode & 0o7777, target: await fs.readlink(posix.join(dir, r)) });
      else if (st.isDirectory()) {
        out.push({ path: r, type: 'dir', mode: st.mode & 0o7777 });
        await walk(r);
      } else if (st.isFile()) out.push({ path: r, type: 'file', mode: st.mode & 0o7777, size: st.size, mtimeMs: st.mtimeMs });
      // Sockets, fifos and devices have no business in a module tree and are not saved.
    }
  };
  await walk('');
  return out;
}

/**
 * Put a file at `dst` without ever overwriting: a hard link when the file system allows it,
 * else a copy made beside `dst` and linked into place (link() fails if `dst` appeared meanwhile,
 * and a reader never sees a half-written file). Returns how it was done, or 'exists'.
 */
export async function placeFile(fs: KabiFs, src: string, dst: string, entry: Pick<TreeEntry, 'mode' | 'mtimeMs'>): Promise<'hardlink' | 'copy' | 'exists'> {
  try {
    await fs.link(src, dst);
    return 'hardlink';
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'EEXIST') return 'exists';
    if (code === undefined || !NO_LINK.has(code)) throw e;
  }
  const tmp = posix.join(posix.dirname(dst), `.${posix.basename(dst)}.kabi-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.copyFile(src, tmp, constants.COPYFILE_EXCL);
    await fs.chmod(tmp, entry.mode);
    if (entry.mtimeMs !== undefined) await fs.utimes(tmp, new Date(entry.mtimeMs), new Date(entry.mtimeMs));
    try {
      await fs.link(tmp, dst);
    } catch (e) {
      if (errnoCode(e) === 'EEXIST') return 'exists';
      if (!NO_LINK.has(errnoCode(e) ?? '')) throw e;
      // No hard links at all on this file system: rename, after checking nothing is there.
      try {
        await fs.lstat(dst);
        return 'exists';
      } catch (e2) {
        if (errnoCode(e2) !== 'ENOENT') throw e2;
      }
      await fs.rename(tmp, dst);
      return 'copy';
    }
    return 'copy';
  } finally {
    await fs.unlink(tmp).catch(() => undefined);
  }
}

/** Create a directory with a mode; an existing real directory is fine, anything else is reported. */
export async function placeDirectory(fs: KabiFs, dst: string, mode: number): Promise<'created' | 'exists' | 'blocked'> {
  try {
    await fs.mkdir(dst, { mode });
    await fs.chmod(dst, mode);
    return 'created';
  } catch (e) {
    if (errnoCode(e) !== 'EEXIST') throw e;
  }
  return (await fs.lstat(dst)).isDirectory() ? 'exists' : 'blocked';
}

/** Create a symlink unless something is already there. */
export async function placeLink(fs: KabiFs, target: string, dst: string): Promise<'created' | 'exists'> {
  try {
    await fs.symlink(target, dst);
    return 'created';
  } catch (e) {
    if (errnoCode(e) === 'EEXIST') return 'exists';
    throw e;
  }
}
