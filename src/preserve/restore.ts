import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import { nodeFs } from '../fs.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { checkRelease, MANIFEST, RESTORED, TREE } from './layout.js';
import { readJson, writeJsonAtomic, type Manifest, type RestoredRecord } from './manifest.js';
import { listSaves, recoverPreserveDirectory, withPreserveLock, type PreserveOptions } from './save.js';
import { placeDirectory, placeFile, placeLink } from './tree-copy.js';

/** What restoring a kernel's module tree put back. */
export interface RestoreResult {
  readonly release: string;
  /** False when there is no save of this kernel. */
  readonly found: boolean;
  readonly moduleDir: string | undefined;
  /** Relative paths put back. */
  readonly restored: readonly string[];
  /** Entries left as they were because something is already there. */
  readonly kept: number;
  /** Of those, the ones that differ from the save (the new package's files, or local edits). */
  readonly differing: readonly string[];
  /** Paths not restored because a non-directory stands where a saved directory was. */
  readonly blocked: readonly string[];
  /**
   * Some saved files were already there: the package manager put a tree back for this release,
   * so its modules.dep and friends describe its files, not necessarily the restored ones.
   */
  readonly merged: boolean;
  /** Saved files whose size or time changed after the save (shared inode written in place). */
  readonly changedSinceSave: readonly string[];
}

/**
 * Put back what an upgrade removed from kernel `release`'s module directory, from its save.
 * Nothing that exists is overwritten: a path present in the tree (a file the new package
 * installed) is kept as it is. Restored files are hard links to the save when possible.
 */
export async function restoreTree(release: string, opts: PreserveOptions = {}): Promise<RestoreResult> {
  checkRelease(release);
  const fs = opts.fs ?? nodeFs;
  const root = opts.root ?? '/';
  const progress = opts.onProgress ?? (() => undefined);
  const save = (await listSaves(fs, root)).find((s) => s.release === release);
  if (!save) return { release, found: false, moduleDir: undefined, restored: [], kept: 0, differing: [], blocked: [], merged: false, changedSinceSave: [] };
  return withPreserveLock(fs, save.preserveDir, async () => {
    await recoverPreserveDirectory(fs, save.preserveDir);
    const manifest = await readJson<Manifest>(fs, posix.join(save.dir, MANIFEST), 'kabi-preserve');
    if (!manifest) throw new KabiError('IO', 'save has no manifest (incomplete save?)', { file: save.dir });
    // The module directory's parent must still be a real directory inside the root.
    const parentSys = posix.dirname(manifest.moduleDir);
    const parent = await resolveInRoot(fs, root, hostPath(root, parentSys));
    if (parent === undefined) throw new KabiError('KERNEL_NOT_FOUND', `${parentSys} does not exist under ${root}`);
    const target = posix.join(parent, release);
    const previous = await readJson<RestoredRecord>(fs, posix.join(save.dir, RESTORED), 'kabi-preserve-restored');
    const files = [...(previous?.files ?? [])];
    const links = [...(previous?.links ?? [])];
    const dirs = [...(previous?.dirs ?? [])];
    const restored: string[] = [];
    const blocked: string[] = [];
    const changed: string[] = [];
    const differing: string[] = [];
    let kept = 0;
    const blockedPrefixes: string[] = [];
    const total = manifest.entries.length;
    let n = 0;
    for (const e of manifest.entries) {
      progress(e.path || release, ++n, total);
      if (blockedPrefixes.some((b) => e.path.startsWith(b + '/'))) continue;
      const dst = e.path === '' ? target : posix.join(target, e.path);
      const src = posix.join(save.dir, TREE, e.path);
      if (e.type === 'dir') {
        const r = await placeDirectory(fs, dst, e.mode);
        if (r === 'created') {
          dirs.push(e.path);
          restored.push(e.path || '.');
        } else if (r === 'blocked') {
          blocked.push(e.path);
          blockedPrefixes.push(e.path);
        }
        continue;
      }
      if (e.type === 'link') {
        if ((await placeLink(fs, e.target!, dst)) === 'created') {
          links.push({ path: e.path, target: e.target! });
          restored.push(e.path);
        } else {
          kept++;
          const there = await fs.lstat(dst);
          if (!there.isSymbolicLink() || (await fs.readlink(dst)) !== e.target) differing.push(e.path);
        }
        continue;
      }
      const st = await fs.lstat(src);
      if (st.size !== e.size || (e.mtimeMs !== undefined && Math.abs(st.mtimeMs - e.mtimeMs) > 1)) changed.push(e.path);
      if ((await placeFile(fs, src, dst, e)) === 'exists') {
        kept++;
        const there = await fs.lstat(dst);
        const same = (there.dev === st.dev && there.ino === st.ino) || (there.isFile() && there.size === e.size && e.mtimeMs !== undefined && Math.abs(there.mtimeMs - e.mtimeMs) <= 1);
        if (!same) differing.push(e.path);
        continue;
      }
      const now = await fs.lstat(dst);
      files.push({ path: e.path, dev: now.dev, ino: now.ino });
      restored.push(e.path);
    }
    if (restored.length > 0) {
      const record: RestoredRecord = { format: 'kabi-preserve-restored', version: 1, restoredAt: (opts.now ?? new Date()).toISOString(), files, links, dirs };
      await writeJsonAtomic(fs, posix.join(save.dir, RESTORED), record);
    }
    const merged = restored.length > 0 && differing.length > 0;
    return { release, found: true, moduleDir: manifest.moduleDir, restored, kept, differing, blocked, merged, changedSinceSave: changed };
  });
}
