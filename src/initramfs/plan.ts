import { KabiError } from '../errors.js';
import type { ModuleFile } from '../kernel/module-tree.js';
import { hostPath } from '../kernel/paths.js';
import { readModuleBytes } from '../module/read-module.js';
import { joinImage, relativeLinkTarget, type ImagePath } from './archive-path.js';
import { imagePathOfHost, imageRelPath, type Analysis } from './check.js';
import { linkTargetPath } from './image-tree.js';
import { moduleContents } from './module-compare.js';

/*
 * From the check's findings to concrete edits: each stale module file replaced in place, each
 * vanished one removed, each newly preferred one added, weak-updates links stored as dracut and
 * mkinitramfs store them (a relative link, the target copied to its real path), and the
 * modules a new file depends on brought in when the image lacks them.
 */

export type PlannedOp =
  | { readonly op: 'file'; readonly path: ImagePath; readonly data: Uint8Array; readonly perm: number; readonly mtime: number; readonly reason: string }
  | { readonly op: 'link'; readonly path: ImagePath; readonly target: string; readonly mtime: number; readonly reason: string }
  | { readonly op: 'remove'; readonly path: ImagePath; readonly reason: string };

export interface Plan {
  readonly ops: readonly PlannedOp[];
  /** Link targets outside the module directory that removed or re-pointed links leave behind. */
  readonly formerTargets: readonly ImagePath[];
}

export async function planUpdate(a: Analysis): Promise<Plan> {
  const { tree, check } = a;
  const moduleDir = check.moduleDir;
  if (!tree || moduleDir === undefined || !a.installed) throw new Error('internal: planUpdate needs an image with a module directory');
  const ops: PlannedOp[] = [];
  const formerTargets: ImagePath[] = [];
  const present = new Set(a.imageModules.map((m) => m.name));
  const queued: ModuleFile[] = [];
  const planned = new Set<ImagePath>();

  const forget = (path: ImagePath) => {
    const node = tree.get(path);
    if (node?.kind === 'symlink') {
      const t = linkTargetPath(tree, node);
      if (t !== undefined) formerTargets.push(t);
    }
  };

  const put = async (f: ModuleFile, reason: string): Promise<void> => {
    const st = await a.fs.lstat(f.host);
    const mtime = Math.floor(st.mtimeMs / 1000);
    const raw = await readInstalled(a, f.host);
    if (f.isLink) {
      const linkPath = joinImage(moduleDir, f.relPath!);
      const target = imagePathOfHost(tree, a.root, f.host);
      if (target === undefined) throw new KabiError('UNSAFE_PATH', `the target of ${f.path} lies outside the root`, { file: f.host });
      forget(linkPath);
      if (!planned.has(target)) {
        ops.push({ op: 'file', path: target, data: raw, perm: st.mode & 0o7777, mtime, reason: `target of ${f.relPath}` });
        planned.add(target);
      }
      const linkMtime = Math.floor((await a.fs.lstat(hostLinkOf(a, f))).mtimeMs / 1000);
      ops.push({ op: 'link', path: linkPath, target: relativeLinkTarget(linkPath, target), mtime: linkMtime, reason });
      planned.add(linkPath);
    } else {
      const rel = imageRelPath(f, a.storeDecompressed);
      const path = joinImage(moduleDir, rel);
      const data = rel === f.relPath ? raw : await moduleContents(raw, f.host);
      ops.push({ op: 'file', path, data, perm: st.mode & 0o7777, mtime, reason });
      planned.add(path);
    }
    present.add(f.name);
    queued.push(f);
  };

  for (const c of check.changes) {
    if (c.kind === 'config') throw new KabiError('INITRAMFS_FORMAT', `${c.name} must be added by the generator: ${c.detail}`);
    if (c.kind === 'removed') {
      forget(c.imagePath!);
      ops.push({ op: 'remove', path: c.imagePath!, reason: c.detail });
      continue;
    }
    const f = c.installed!;
    const wanted = f.isLink ? joinImage(moduleDir, f.relPath!) : joinImage(moduleDir, imageRelPath(f, a.storeDecompressed));
    if (c.kind === 'changed' && c.imagePath !== undefined && c.imagePath !== wanted) {
      forget(c.imagePath);
      ops.push({ op: 'remove', path: c.imagePath, reason: `replaced by ${wanted}` });
    }
    await put(f, c.detail);
  }

  // A new module may need modules the image does not carry yet (modinfo depends=, which
  // modpost computed from the symbols it imports).
  while (queued.length > 0) {
    const f = queued.shift()!;
    const mod = await readModuleBytes(await readInstalled(a, f.host), { file: f.host });
    for (const dep of mod.depends) {
      const name = dep.replace(/-/g, '_');
      if (present.has(name)) continue;
      const chosen = a.installed.chosen.get(name);
      if (chosen?.relPath === undefined) continue;
      await put(chosen, `needed by ${f.name}`);
    }
  }
  return { ops, formerTargets };
}

async function readInstalled(a: Analysis, host: string): Promise<Uint8Array> {
  try {
    return await a.fs.readFile(host);
  } catch (e) {
    throw new KabiError('IO', `cannot read the installed module: ${(e as Error).message}`, { file: host, cause: e });
  }
}

/** Host path of the link itself (ModuleFile.host is where it leads). */
function hostLinkOf(a: Analysis, f: ModuleFile): string {
  return hostPath(a.root, f.path);
}
