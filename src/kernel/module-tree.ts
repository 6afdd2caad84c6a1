import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import type { DepmodConfig } from '../depmod/config.js';
import { isModuleFileName, moduleNameFromPath } from '../module/read-module.js';
import { hostPath, resolveInRoot } from './paths.js';

export interface ModuleFile {
  /** kmod's module name: basename up to the first '.', '-' folded to '_'. */
  readonly name: string;
  /** System path, e.g. /lib/modules/K/kernel/fs/foo.ko.xz (the link's own path for a symlink). */
  readonly path: string;
  /** Path relative to the kernel's module directory; undefined for files in `external` directories. */
  readonly relPath: string | undefined;
  /** Where the bytes are, on the host: the link target for a symlink. */
  readonly host: string;
  readonly isLink: boolean;
  /** Found in an `external` directory of depmod.d. */
  readonly external: boolean;
  /** Not on disk: a file kabi is considering adding (a planned weak-updates link, a candidate). */
  readonly virtual?: boolean;
}

export interface ModuleTree {
  /** System path of the kernel's module directory. */
  readonly moduleDir: string;
  /** Every module file, in the order depmod would scan them. */
  readonly files: readonly ModuleFile[];
  /** The file modprobe would load for each module name. */
  readonly chosen: ReadonlyMap<string, ModuleFile>;
}

/** Never descended into, as in kmod: build/source point back at kernel sources. */
const SKIP = new Set(['.', '..', 'build', 'source']);
const MAX_DEPTH = 32;

/**
 * List the module files of one kernel as depmod scans them: the module directory
 * recursively in raw readdir order (ties between equally ranked files go to the first one
 * scanned, so the order matters), then each `external` directory. Symlinks are followed
 * inside the root only.
 */
export async function scanModuleFiles(fs: KabiFs, root: string, moduleDir: string, config: DepmodConfig): Promise<ModuleFile[]> {
  const out: ModuleFile[] = [];
  const exclude = new Set(config.excludes);
  const walk = async (sysDir: string, rel: string, external: boolean, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH) return;
    // fs.readdir sorts (libuv scandir); opendir keeps the kernel's readdir order, like depmod.
    const entries: { name: string; isDir: boolean; isFile: boolean; isLink: boolean }[] = [];
    try {
      const d = await fs.opendir(hostPath(root, sysDir));
      for await (const de of d) entries.push({ name: de.name, isDir: de.isDirectory(), isFile: de.isFile(), isLink: de.isSymbolicLink() });
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    for (const de of entries) {
      if (SKIP.has(de.name) || exclude.has(de.name)) continue;
      const sysPath = posix.join(sysDir, de.name);
      const relPath = rel === '' ? de.name : `${rel}/${de.name}`;
      let isDir = de.isDir;
      let isFile = de.isFile;
      let target = hostPath(root, sysPath);
      if (de.isLink) {
        const resolved = await resolveInRoot(fs, root, target);
        if (resolved === undefined) continue; // dangling: depmod's fstatat fails and it moves on
        const st = await fs.stat(resolved);
        isDir = st.isDirectory();
        isFile = st.isFile();
        target = resolved;
      }
      if (isDir) await walk(sysPath, relPath, external, depth + 1);
      else if (isFile && isModuleFileName(de.name)) {
        out.push({
          name: moduleNameFromPath(de.name),
          path: sysPath,
          relPath: external ? undefined : relPath,
          host: target,
          isLink: de.isLink,
          external,
        });
      }
    }
  };
  await walk(moduleDir, '', false, 0);
  for (const ext of config.externals) await walk(ext, '', true, 0);
  return out;
}

/**
 * kmod's depmod_module_is_higher_priority(): does the module already chosen (`old`) beat
 * `candidate`? Overrides first, then the search list; a file matching no search entry
 * ranks as built-in; on a tie the earlier file stays.
 */
export function keepsPriority(config: DepmodConfig, old: ModuleFile, candidate: ModuleFile): boolean {
  const trunc = (f: ModuleFile) => (f.relPath === undefined ? undefined : posix.join(posix.dirname(f.relPath), posix.basename(f.relPath).slice(0, f.name.length)));
  const relNew = trunc(candidate);
  const relOld = trunc(old);
  for (const ov of config.overrides) {
    const p = `${ov.subdir}/${ov.modname}`;
    if (relNew === p) return false;
    if (relOld === p) return true;
  }
  // kmod keeps the search list in reverse (prepends), so a higher index means a higher rank.
  let bprio = -1;
  let oldprio = -1;
  let newprio = -1;
  let i = 0;
  const entries = [...config.search].reverse();
  for (const se of entries) {
    if (se.kind === 'built-in') {
      bprio = i++;
    } else if (se.kind === 'external') {
      for (const ext of [...config.externals].reverse()) {
        if (candidate.external && candidate.path.startsWith(ext + '/')) newprio = i;
        if (old.external && old.path.startsWith(ext + '/')) oldprio = i;
        i++;
      }
    } else {
      // A bare prefix test, as kmod does ("updates" also matches "updates2/…").
      if (relNew !== undefined && relNew.startsWith(se.path)) newprio = i;
      else if (relOld !== undefined && relOld.startsWith(se.path)) oldprio = i;
      i++;
    }
  }
  if (newprio < 0) newprio = bprio;
  if (oldprio < 0) oldprio = bprio;
  return newprio <= oldprio;
}

/** The winner per module name, taking files in scan order (pure). */
export function chooseModules(config: DepmodConfig, files: Iterable<ModuleFile>): Map<string, ModuleFile> {
  const chosen = new Map<string, ModuleFile>();
  for (const f of files) {
    const old = chosen.get(f.name);
    if (old === undefined || !keepsPriority(config, old, f)) {
      if (old !== undefined) chosen.delete(f.name); // depmod deletes and re-adds: the winner moves to the end
      chosen.set(f.name, f);
    }
  }
  return chosen;
}

export async function scanModuleTree(fs: KabiFs, root: string, moduleDir: string, config: DepmodConfig): Promise<ModuleTree> {
  const files = await scanModuleFiles(fs, root, moduleDir, config);
  return { moduleDir, files, chosen: chooseModules(config, files) };
}
