import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound } from '../fs.js';
import { hostPath, resolveInRoot, systemPathOf } from '../kernel/paths.js';

/*
 * Saved trees live beside the kernels' module directories, in the same file system (so a save is
 * hard links, not copies):
 *
 *   <modules>/.kabi-preserve/<K>/manifest.json   what was saved, when, from where
 *   <modules>/.kabi-preserve/<K>/tree/…          the module directory as it was
 *   <modules>/.kabi-preserve/<K>/restored.json   what `restore` put back into <modules>/<K>
 *   <modules>/.kabi-preserve/.<K>.new-*          a save being built (removed if found later)
 *   <modules>/.kabi-preserve/.<K>.old-*          the previous save during the swap
 *
 * <modules> is /usr/lib/modules or /lib/modules, wherever the kernel's directory really is. The
 * leading dot keeps depmod, kabi and the initramfs generators from taking it for a kernel.
 */

export const PRESERVE_DIR = '.kabi-preserve';
export const MANIFEST = 'manifest.json';
export const RESTORED = 'restored.json';
export const TREE = 'tree';

const MODULE_BASES = ['/usr/lib/modules', '/lib/modules'];

/** A kernel release as a single path component (never "..", never a slash). */
export function checkRelease(release: string): void {
  if (release === '' || release === '.' || release === '..' || release.startsWith('.') || release.includes('/') || release.includes('\0')) {
    throw new KabiError('USAGE', `"${release}" is not a kernel release`);
  }
}

/** The real (host) directories kernels live in under the root, each once. */
export async function moduleBases(fs: KabiFs, root: string): Promise<string[]> {
  const out: string[] = [];
  for (const sys of MODULE_BASES) {
    const real = await resolveInRoot(fs, root, hostPath(root, sys));
    if (real === undefined || out.includes(real)) continue;
    try {
      if ((await fs.lstat(real)).isDirectory()) out.push(real);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return out;
}

/** Host path of kernel `release`'s module directory (a real directory), if it exists. */
export async function kernelDirectory(fs: KabiFs, root: string, release: string): Promise<string | undefined> {
  checkRelease(release);
  for (const base of await moduleBases(fs, root)) {
    const dir = posix.join(base, release);
    try {
      if ((await fs.lstat(dir)).isDirectory()) return dir;
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return undefined;
}

/** The preserve directories that exist (host paths). */
export async function preserveDirectories(fs: KabiFs, root: string): Promise<string[]> {
  const out: string[] = [];
  for (const base of await moduleBases(fs, root)) {
    const p = posix.join(base, PRESERVE_DIR);
    try {
      const st = await fs.lstat(p);
      if (st.isDirectory()) out.push(p);
      else throw new KabiError('UNSAFE_PATH', 'expected a directory (refusing to follow or replace it)', { file: p });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return out;
}

/** Create (if needed) the preserve directory in `base`, refusing anything but a real directory. */
export async function ensurePreserveDirectory(fs: KabiFs, base: string): Promise<string> {
  const p = posix.join(base, PRESERVE_DIR);
  try {
    await fs.mkdir(p, { mode: 0o755 });
  } catch (e) {
    if (errnoCode(e) !== 'EEXIST') throw e;
  }
  if (!(await fs.lstat(p)).isDirectory()) throw new KabiError('UNSAFE_PATH', 'expected a directory (refusing to follow or replace it)', { file: p });
  return p;
}

/** System spelling of a host path under the root (for messages and manifests). */
export function systemPath(root: string, host: string): string {
  return systemPathOf(root, host) ?? host;
}
