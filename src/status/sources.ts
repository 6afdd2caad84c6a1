import { posix } from 'node:path';
import type { ModuleCache } from '../compat/kernel-model.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import { hostPath } from '../kernel/paths.js';
import { isModuleFileName, moduleNameFromPath } from '../module/read-module.js';
import type { CopyOrigin, DkmsCoordinates, ModuleCopy } from './types.js';

/** DKMS's default tree (dkms_tree in dkms.conf). */
export const DKMS_TREE = '/var/lib/dkms';

/**
 * Regular module files under a directory, recursively, in name order. Symlinks are neither
 * followed nor listed: a store or DKMS tree is read as it is, never through a link someone
 * else planted in it.
 */
export async function listModuleFiles(fs: KabiFs, root: string, sysDir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, depth: number) => {
    if (depth > 32) return;
    let names: string[];
    try {
      names = (await fs.readdir(hostPath(root, dir))).sort();
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    for (const n of names) {
      const p = posix.join(dir, n);
      const st = await fs.lstat(hostPath(root, p));
      if (st.isDirectory()) await walk(p, depth + 1);
      else if (st.isFile() && isModuleFileName(n)) out.push(p);
    }
  };
  await walk(sysDir, 0);
  return out;
}

async function dirNames(fs: KabiFs, root: string, sysDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await fs.readdir(hostPath(root, sysDir))).sort();
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  const out: string[] = [];
  for (const n of names) {
    // DKMS keeps `source`, `build` and kernel-<k>-<arch> as symlinks beside the real directories.
    if ((await fs.lstat(hostPath(root, posix.join(sysDir, n)))).isDirectory()) out.push(n);
  }
  return out;
}

/** Module files DKMS built: <tree>/<module>/<version>/<kernel>/<arch>/module/*.ko*. */
export async function listDkmsModules(fs: KabiFs, root: string, tree = DKMS_TREE): Promise<{ path: string; dkms: DkmsCoordinates }[]> {
  const out: { path: string; dkms: DkmsCoordinates }[] = [];
  for (const module of await dirNames(fs, root, tree)) {
    for (const version of await dirNames(fs, root, posix.join(tree, module))) {
      if (version === 'source' || version === 'build') continue;
      for (const kernel of await dirNames(fs, root, posix.join(tree, module, version))) {
        if (kernel === 'source' || kernel === 'build') continue;
        for (const arch of await dirNames(fs, root, posix.join(tree, module, version, kernel))) {
          const dir = posix.join(tree, module, version, kernel, arch, 'module');
          for (const path of await listModuleFiles(fs, root, dir)) out.push({ path, dkms: { module, version, kernel, arch } });
        }
      }
    }
  }
  return out;
}

export interface CopyInput {
  readonly path: string;
  readonly host: string;
  readonly origin: CopyOrigin;
  readonly kernel?: string | undefined;
  readonly dkms?: DkmsCoordinates | undefined;
}

/** Parse a module file into a ModuleCopy; a file that cannot be parsed is kept with its error. */
export async function readCopy(cache: ModuleCache, input: CopyInput): Promise<ModuleCopy> {
  const base = { name: moduleNameFromPath(input.path), path: input.path, host: input.host, origin: input.origin, kernel: input.kernel, dkms: input.dkms };
  try {
    const module = await cache.read(input.host);
    return {
      ...base,
      builtFor: module.vermagic?.release,
      version: module.modinfo.get('version'),
      srcversion: module.modinfo.get('srcversion'),
      module,
      error: undefined,
    };
  } catch (e) {
    if (!(e instanceof KabiError)) throw e;
    return { ...base, builtFor: undefined, version: undefined, srcversion: undefined, module: undefined, error: e.detail };
  }
}
