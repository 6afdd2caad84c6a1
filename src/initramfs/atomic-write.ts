import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound } from '../fs.js';

export const BACKUP_SUFFIX = '.kabi-bak';

export interface ReplaceOptions {
  /** Keep the previous contents at `path` + BACKUP_SUFFIX (one backup: the older one is replaced). */
  backup: boolean;
  /** Called with the bytes read back from the new file; throws to abort (the original stays). */
  verify: (written: Uint8Array) => Promise<void>;
}

/**
 * Replace a regular file without a moment where it is missing or half written: write a
 * sibling, flush it, read it back and verify it, keep a backup, then rename over the
 * original. A symlink at `path` is refused: kabi never writes through a link it did not create.
 */
export async function replaceFile(fs: KabiFs, path: string, bytes: Uint8Array, opts: ReplaceOptions): Promise<{ backup: string | undefined }> {
  const st = await fs.lstat(path).catch((e: unknown) => {
    throw new KabiError('IO', `cannot stat: ${(e as Error).message}`, { file: path, cause: e });
  });
  if (st.isSymbolicLink()) throw new KabiError('UNSAFE_PATH', 'is a symbolic link; kabi does not write through links it did not create', { file: path });
  if (!st.isFile()) throw new KabiError('UNSAFE_PATH', 'is not a regular file', { file: path });

  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.kabi-${process.pid}-${randomBytes(4).toString('hex')}`);
  let created = false;
  try {
    const fh = await fs.open(tmp, 'wx', st.mode & 0o7777);
    created = true;
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.chmod(tmp, st.mode & 0o7777);
    await fs.chown(tmp, st.uid, st.gid).catch((e: unknown) => {
      if (errnoCode(e) !== 'EPERM') throw e;
    });
    await opts.verify(await fs.readFile(tmp));

    let backup: string | undefined;
    if (opts.backup) {
      backup = path + BACKUP_SUFFIX;
      await keepBackup(fs, path, backup);
    }
    await fs.rename(tmp, path);
    created = false;
    await syncDir(fs, dir);
    return { backup };
  } catch (e) {
    if (created) await fs.unlink(tmp).catch(() => undefined);
    if (e instanceof KabiError) throw e;
    throw new KabiError('IO', `cannot replace the file: ${(e as Error).message}`, { file: path, cause: e });
  }
}

/** Hard-link (or copy) the current file to a temporary name, then rename it over the old backup. */
async function keepBackup(fs: KabiFs, path: string, backup: string): Promise<void> {
  const tmp = join(dirname(backup), `.${basename(backup)}.kabi-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.link(path, tmp);
  } catch (e) {
    const code = errnoCode(e);
    if (code !== 'EPERM' && code !== 'EXDEV' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw e;
    await fs.copyFile(path, tmp, 1 /* COPYFILE_EXCL */);
  }
  try {
    await fs.rename(tmp, backup);
  } catch (e) {
    await fs.unlink(tmp).catch(() => undefined);
    throw e;
  }
}

async function syncDir(fs: KabiFs, dir: string): Promise<void> {
  try {
    const fh = await fs.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    // Some filesystems refuse fsync on a directory; the rename has happened either way.
    if (!isNotFound(e) && errnoCode(e) !== 'EISDIR' && errnoCode(e) !== 'EINVAL' && errnoCode(e) !== 'EBADF') throw e;
  }
}
