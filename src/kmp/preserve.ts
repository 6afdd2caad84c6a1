import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound, readTextIfExists } from '../fs.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { weakUpdatesRel, type Kmp } from './kmp.js';
import { parseKmpName } from './nvr.js';

/*
 * Copies of KMP versions kabi keeps (KmpPolicy.keepFallback). When a kABI break forces a
 * kernel and its KMP to be updated together, `rpm -U` erases the previous KMP, whose modules
 * were the only ones the previous kernel could load: that kernel, the one to fall back to if
 * the new one does not boot, loses the driver (and its initrd with it). So while another
 * version of a KMP is installed, kabi keeps a copy of each version in use, in one directory per
 * package version outside the module hierarchy (a store KMP), and links it where the package
 * itself has gone. A copy goes when no kernel uses it and its package is erased, or when no
 * version of its KMP is installed any more.
 */

export const PRESERVE_DIR = '/usr/lib/kabi/kmp';
const MANIFEST = 'kmp.json';

interface Manifest {
  nvr: string;
  epoch: number | null;
  buildRelease: string | null;
  /** System paths of the copies. */
  modules: string[];
}

/** The copy's directory for a package version. */
export function preservedDir(nvr: string): string {
  return posix.join(PRESERVE_DIR, nvr);
}

/** The copies kabi holds, as store KMPs of origin 'preserved'. */
export async function readPreserved(fs: KabiFs, root: string): Promise<Kmp[]> {
  const dir = await resolveInRoot(fs, root, hostPath(root, PRESERVE_DIR)).catch(() => undefined);
  if (dir === undefined) return [];
  let names: string[];
  try {
    names = (await fs.readdir(dir)).sort();
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  const out: Kmp[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    const text = await readTextIfExists(fs, posix.join(dir, n, MANIFEST)).catch(() => undefined);
    if (text === undefined) continue;
    let m: Manifest;
    try {
      m = JSON.parse(text) as Manifest;
    } catch {
      continue; // a half-written copy is never renamed into place; anything else here is not ours
    }
    if (m.nvr !== n || !Array.isArray(m.modules)) continue;
    let name;
    try {
      name = parseKmpName(m.nvr);
    } catch {
      continue;
    }
    out.push({ ...name, epoch: m.epoch ?? undefined, modules: m.modules, buildRelease: m.buildRelease ?? undefined, layout: 'store', origin: 'preserved' });
  }
  return out;
}

/** The Kmp a copy of `kmp` would be. */
export function preservedKmp(kmp: Kmp): Kmp {
  const dir = preservedDir(kmp.nvr);
  return { ...kmp, modules: kmp.modules.map((m) => posix.join(dir, weakUpdatesRel(m))), layout: 'store', origin: 'preserved' };
}

/**
 * Copy a KMP's modules into its directory (hard links where the filesystem allows). The copy
 * is built beside and renamed into place, so a directory with a manifest is always complete.
 */
export async function keepCopy(fs: KabiFs, root: string, kmp: Kmp): Promise<Kmp> {
  const copy = preservedKmp(kmp);
  const base = hostPath(root, PRESERVE_DIR);
  await fs.mkdir(base, { recursive: true, mode: 0o755 });
  const real = await resolveInRoot(fs, root, base);
  if (real === undefined || !(await fs.lstat(real)).isDirectory()) throw new KabiError('UNSAFE_PATH', `${PRESERVE_DIR} is not a directory`, { file: base });
  const final = posix.join(real, kmp.nvr);
  try {
    await fs.lstat(final);
    return copy; // kept already
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  const staging = posix.join(real, `.${kmp.nvr}.kabi-new`);
  await fs.rm(staging, { recursive: true, force: true });
  await fs.mkdir(staging, { mode: 0o755 });
  try {
    for (const m of kmp.modules) {
      const src = await resolveInRoot(fs, root, hostPath(root, m));
      if (src === undefined) throw new KabiError('IO', `${m} is gone: cannot keep a copy of ${kmp.nvr}`);
      const dst = posix.join(staging, weakUpdatesRel(m));
      await fs.mkdir(posix.dirname(dst), { recursive: true, mode: 0o755 });
      try {
        await fs.link(src, dst);
      } catch (e) {
        if (errnoCode(e) !== 'EXDEV' && errnoCode(e) !== 'EPERM') throw e;
        await fs.copyFile(src, dst);
        await fs.chmod(dst, 0o644);
      }
    }
    const manifest: Manifest = { nvr: kmp.nvr, epoch: kmp.epoch ?? null, buildRelease: kmp.buildRelease ?? null, modules: [...copy.modules] };
    await fs.writeFile(posix.join(staging, MANIFEST), JSON.stringify(manifest, null, 1) + '\n', { mode: 0o644 });
    await fs.rename(staging, final);
  } catch (e) {
    await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  return copy;
}

/** Remove a copy (its manifest goes first, so a half-removed copy is no longer taken as one). */
export async function dropCopy(fs: KabiFs, root: string, nvr: string): Promise<void> {
  const real = await resolveInRoot(fs, root, hostPath(root, preservedDir(nvr))).catch(() => undefined);
  if (real === undefined) return;
  if (!(await fs.lstat(real)).isDirectory()) throw new KabiError('UNSAFE_PATH', `${preservedDir(nvr)} is not a directory`, { file: real });
  const doomed = posix.join(posix.dirname(real), `.${nvr}.kabi-old`);
  await fs.rename(real, doomed);
  await fs.rm(doomed, { recursive: true, force: true });
  // The store itself goes with its last copy: nothing is left behind.
  const base = posix.dirname(real);
  try {
    if ((await fs.readdir(base)).length === 0) {
      await fs.rmdir(base);
      const parent = posix.dirname(base);
      if ((await fs.readdir(parent)).length === 0) await fs.rmdir(parent);
    }
  } catch (e) {
    if (!isNotFound(e) && errnoCode(e) !== 'ENOTEMPTY' && errnoCode(e) !== 'EEXIST') throw e;
  }
}
