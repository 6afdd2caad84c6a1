import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs } from '../fs.js';
import { acquireLock } from '../linker/lock.js';
import { checkRelease, ensurePreserveDirectory, kernelDirectory, MANIFEST, preserveDirectories, RESTORED, systemPath, TREE } from './layout.js';
import { readJson, writeJsonAtomic, type Manifest, type RestoredRecord } from './manifest.js';
import { listTree, placeDirectory, placeFile, placeLink } from './tree-copy.js';

export interface PreserveOptions {
  root?: string;
  fs?: KabiFs;
  /** The time recorded (tests). */
  now?: Date;
  onProgress?: (label: string, done: number, total: number) => void;
}

/** What saving a kernel's module tree did: where to, how many files, hard links or copies. */
export interface SaveResult {
  readonly release: string;
  /** False when the kernel has no module directory (nothing to keep). */
  readonly saved: boolean;
  /** System path of the saved tree. */
  readonly savedTo: string | undefined;
  readonly moduleDir: string | undefined;
  readonly files: number;
  readonly method: Manifest['method'] | undefined;
}

/** Run `fn` holding the preserve lock of the directory (saves of two transactions never interleave). */
export async function withPreserveLock<T>(fs: KabiFs, preserveDir: string, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(fs, posix.join(preserveDir, '.lock'));
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/**
 * Finish or undo what an interrupted save left: a half-built `.K.new-*` goes; a `.K.old-*`
 * whose replacement never arrived is put back.
 */
export async function recoverPreserveDirectory(fs: KabiFs, preserveDir: string): Promise<void> {
  for (const name of await fs.readdir(preserveDir)) {
    const m = /^\.(.+)\.(new|old)-[0-9a-f-]+$/.exec(name);
    if (!m) continue;
    const p = posix.join(preserveDir, name);
    const current = posix.join(preserveDir, m[1]!);
    if (m[2] === 'new') await fs.rm(p, { recursive: true, force: true });
    else {
      try {
        await fs.lstat(current);
        await fs.rm(p, { recursive: true, force: true });
      } catch (e) {
        if (!isNotFound(e)) throw e;
        await fs.rename(p, current);
      }
    }
  }
}

/**
 * Save kernel `release`'s module directory (hard links where the file system allows, copies
 * otherwise). The new save is built beside the previous one and swapped in by rename, so there
 * is always one complete save. What an earlier `restore` recorded is carried over: those files
 * are still kabi's to clean up.
 */
export async function saveTree(release: string, opts: PreserveOptions = {}): Promise<SaveResult> {
  checkRelease(release);
  const fs = opts.fs ?? nodeFs;
  const root = opts.root ?? '/';
  const progress = opts.onProgress ?? (() => undefined);
  const dir = await kernelDirectory(fs, root, release);
  if (dir === undefined) return { release, saved: false, savedTo: undefined, moduleDir: undefined, files: 0, method: undefined };
  const preserveDir = await ensurePreserveDirectory(fs, posix.dirname(dir));
  return withPreserveLock(fs, preserveDir, async () => {
    await recoverPreserveDirectory(fs, preserveDir);
    const entries = await listTree(fs, dir);
    const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
    const staging = posix.join(preserveDir, `.${release}.new-${tag}`);
    const final = posix.join(preserveDir, release);
    await fs.mkdir(staging, { mode: 0o755 });
    let links = 0;
    let copies = 0;
    let done = 0;
    const files = entries.filter((e) => e.type === 'file').length;
    try {
      for (const e of entries) {
        const dst = posix.join(staging, TREE, e.path);
        if (e.type === 'dir') await placeDirectory(fs, dst, e.mode);
        else if (e.type === 'link') await placeLink(fs, e.target!, dst);
        else {
          const how = await placeFile(fs, posix.join(dir, e.path), dst, e);
          if (how === 'hardlink') links++;
          else copies++;
          progress(e.path, ++done, files);
        }
      }
      const method = copies === 0 ? 'hardlink' : links === 0 ? 'copy' : 'mixed';
      const manifest: Manifest = { format: 'kabi-preserve', version: 1, release, moduleDir: systemPath(root, dir), savedAt: (opts.now ?? new Date()).toISOString(), method, entries };
      await writeJsonAtomic(fs, posix.join(staging, MANIFEST), manifest);
      const restored = await readJson<RestoredRecord>(fs, posix.join(final, RESTORED), 'kabi-preserve-restored');
      if (restored) await writeJsonAtomic(fs, posix.join(staging, RESTORED), restored);
      const old = posix.join(preserveDir, `.${release}.old-${tag}`);
      let hadOld = true;
      try {
        await fs.rename(final, old);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        hadOld = false;
      }
      await fs.rename(staging, final);
      if (hadOld) await fs.rm(old, { recursive: true, force: true });
      return { release, saved: true, savedTo: systemPath(root, final), moduleDir: manifest.moduleDir, files, method };
    } catch (e) {
      await recoverPreserveDirectory(fs, preserveDir).catch(() => undefined);
      throw e;
    }
  });
}

/** Every save under the root: release → host path of its directory. */
export async function listSaves(fs: KabiFs, root: string): Promise<{ release: string; dir: string; preserveDir: string }[]> {
  const out: { release: string; dir: string; preserveDir: string }[] = [];
  for (const p of await preserveDirectories(fs, root)) {
    for (const name of (await fs.readdir(p)).sort()) {
      if (name.startsWith('.')) continue;
      const d = posix.join(p, name);
      if ((await fs.lstat(d)).isDirectory()) out.push({ release: name, dir: d, preserveDir: p });
    }
  }
  return out;
}
