import * as fsp from 'node:fs/promises';

/**
 * The filesystem kabi works through. Every layer that does I/O takes one of these
 * (defaulting to node:fs/promises), so tests can run against a fixture root and inject
 * faults into any single call without touching this machine's /lib/modules or /boot.
 */
export type KabiFs = Pick<
  typeof fsp,
  | 'readFile'
  | 'writeFile'
  | 'readdir'
  | 'lstat'
  | 'stat'
  | 'readlink'
  | 'symlink'
  | 'rename'
  | 'mkdir'
  | 'rmdir'
  | 'unlink'
  | 'rm'
  | 'link'
  | 'chmod'
  | 'chown'
  | 'realpath'
  | 'open'
  | 'copyFile'
  | 'utimes'
  | 'lutimes'
  | 'access'
  | 'mkdtemp'
  | 'opendir'
>;

export const nodeFs: KabiFs = fsp;

/** True if the path exists (without following a final symlink). */
export async function lexists(fs: KabiFs, path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** True if the path exists and, following symlinks, is a regular file. */
export async function isFile(fs: KabiFs, path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isFile();
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

export async function isDirectory(fs: KabiFs, path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isDirectory();
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

export function isNotFound(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** A file's text, or undefined when it does not exist (other errors are thrown). */
export async function readTextIfExists(fs: KabiFs, path: string): Promise<string | undefined> {
  try {
    return new TextDecoder().decode(await fs.readFile(path));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}
