import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound } from '../fs.js';

/** What earlier kabi versions kept beside a rewritten image; removed whenever kabi holds the image's lock. */
export const LEGACY_BACKUP_SUFFIX = '.kabi-bak';

export interface ReplaceOptions {
  /** Called with the bytes read back from the new file; throws to abort (the original stays). */
  verify: (written: Uint8Array) => Promise<void>;
}

/**
 * The name of the sibling a new image is written to before it is renamed over the original:
 * `.NAME.kabi-PID-HEX`. Only a process holding the image's lock creates one, so whatever such
 * file a lock holder finds was left by a run that was killed (see image-lock.ts).
 */
export function scratchName(path: string): string {
  return join(dirname(path), `.${basename(path)}.kabi-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export function isScratchOf(imageBase: string, name: string): boolean {
  const prefix = `.${imageBase}.kabi-`;
  return name.startsWith(prefix) && /^\d+-[0-9a-f]+$/.test(name.slice(prefix.length));
}

/**
 * Replace a regular file without a moment where it is missing or half written: write a
 * sibling, flush it, read it back and verify it, then rename it over the original and flush
 * the directory. No copy of the old image is kept (a full-size backup on a small /boot is
 * what breaks the next kernel update); the verification before the rename is the safety.
 * A symlink at `path` is refused: kabi never writes through a link it did not create.
 */
export async function replaceFile(fs: KabiFs, path: string, bytes: Uint8Array, opts: ReplaceOptions): Promise<void> {
  const st = await fs.lstat(path).catch((e: unknown) => {
    throw new KabiError('IO', `cannot stat: ${(e as Error).message}`, { file: path, cause: e });
  });
  if (st.isSymbolicLink()) throw new KabiError('UNSAFE_PATH', 'is a symbolic link; kabi does not write through links it did not create', { file: path });
  if (!st.isFile()) throw new KabiError('UNSAFE_PATH', 'is not a regular file', { file: path });
  await writeNew(fs, path, bytes, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, verify: opts.verify });
}

/** Create `path` (which must not exist) the same way: a verified sibling renamed into place. */
export async function createFile(fs: KabiFs, path: string, bytes: Uint8Array, opts: ReplaceOptions & { mode: number }): Promise<void> {
  await writeNew(fs, path, bytes, { mode: opts.mode, verify: opts.verify });
}

async function writeNew(fs: KabiFs, path: string, bytes: Uint8Array, o: { mode: number; uid?: number; gid?: number; verify: ReplaceOptions['verify'] }): Promise<void> {
  const dir = dirname(path);
  const tmp = scratchName(path);
  let created = false;
  try {
    const fh = await fs.open(tmp, 'wx', o.mode);
    created = true;
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.chmod(tmp, o.mode);
    if (o.uid !== undefined && o.gid !== undefined) {
      await fs.chown(tmp, o.uid, o.gid).catch((e: unknown) => {
        if (errnoCode(e) !== 'EPERM') throw e;
      });
    }
    await o.verify(await fs.readFile(tmp));
    await fs.rename(tmp, path);
    created = false;
    await syncDir(fs, dir);
  } catch (e) {
    if (created) await fs.unlink(tmp).catch(() => undefined);
    if (e instanceof KabiError) throw e;
    throw new KabiError('IO', `cannot write the image: ${(e as Error).message}`, { file: path, cause: e });
  }
}

export async function syncDir(fs: KabiFs, dir: string): Promise<void> {
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
