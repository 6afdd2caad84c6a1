import { release as hostRelease } from 'node:os';
import { posix, resolve } from 'node:path';
import { ModuleCache } from '../compat/kernel-model.js';
import { loadDepmodConfig } from '../depmod/config.js';
import { isKabiError, KabiError } from '../errors.js';
import { nodeFs, readRegularFile, READ_BUDGETS, isNotFound, type KabiFs } from '../fs.js';
import { withJsonForm } from '../json.js';
import { discoverKernels } from '../kernel/discover.js';
import { scanModuleTree } from '../kernel/module-tree.js';
import { confinedPath, hostPath } from '../kernel/paths.js';
import { isModuleFileName, type KernelModule } from '../module/read-module.js';
import { mapPool } from '../util/pool.js';
import { requireRoot } from './root.js';

/** Options of inspect(). */
export interface InspectOptions {
  /** The system whose modules a name is looked up in (default "/"). Files are read where they are. */
  root?: string;
  /**
   * How a name is looked up under the root: `root` (the default) as the installed system
   * sees itself (its depmod.d, links followed inside the root, the file shown by its system
   * path); `host` as `modinfo -b` / `depmod -b` do (this machine's depmod.d, links followed
   * on this machine, the file shown by its path on this machine).
   */
  view?: 'root' | 'host';
  /** The kernel whose modules a name is looked up in: default the running one when the root is "/", else the only one installed. */
  kernel?: string;
  fs?: KabiFs;
  /** Base of relative file paths (default: the process's). */
  cwd?: string;
  /**
   * Called for a target that cannot be inspected (a missing or corrupt file, an unknown name);
   * inspect() goes on with the others. Without it the first such error is thrown.
   */
  onError?: (error: KabiError, target: string) => void;
  /** Called as files are read (for a progress indicator). */
  onProgress?: (label: string, done: number, total: number) => void;
}

/** One module inspect() looked at: a file, or a name found in a kernel's tree or built into it. */
export interface Inspection {
  /** What was asked for: a path, or a module name. */
  readonly target: string;
  /** The file read: the path given, or where the name was found; "(builtin)" for a built-in module. */
  readonly file: string;
  /** The module as read; undefined for a built-in module. */
  readonly module: KernelModule | undefined;
  /** For a built-in module: its entries of modules.builtin.modinfo, in order (empty when there is none). */
  readonly builtin: readonly (readonly [string, string])[] | undefined;
}

/** A target is a file when it has a slash or a module file's extension; otherwise it is a module name. */
export function isModuleName(target: string): boolean {
  return !target.includes('/') && !isModuleFileName(target);
}

/**
 * What modinfo shows, and more: each target is a module file (`.ko`, `.ko.xz`, `.ko.zst`,
 * `.ko.gz`; any path with a slash) or a module name, looked up as modprobe would find it in the
 * kernel's tree under the root (depmod.d's search order, `-` and `_` alike) or among the
 * kernel's built-in modules. Results come in the order of the targets. Files are read in
 * parallel (worker threads for many). Failures are KabiErrors naming the file (see onError).
 */
export async function inspect(targets: readonly string[], opts: InspectOptions = {}): Promise<Inspection[]> {
  const fs = opts.fs ?? nodeFs;
  const cwd = opts.cwd ?? process.cwd();
  const names = targets.filter(isModuleName);
  const lookup = names.length > 0 ? await nameLookup(opts, fs) : undefined;
  const cache = new ModuleCache(fs);
  let done = 0;
  const settled = await mapPool(targets, 32, async (target): Promise<Inspection | KabiError> => {
    try {
      const found = lookup && isModuleName(target) ? await lookup(target) : { file: target, host: resolve(cwd, target) };
      if ('builtin' in found) return withJsonForm({ target, file: '(builtin)', module: undefined, builtin: found.builtin });
      const module = await cache.read(found.host);
      return withJsonForm({ target, file: found.file, module, builtin: undefined });
    } catch (e) {
      if (isKabiError(e)) return e;
      throw e;
    } finally {
      opts.onProgress?.(posix.basename(target), ++done, targets.length);
    }
  });
  const out: Inspection[] = [];
  settled.forEach((r, i) => {
    if (!(r instanceof KabiError)) out.push(r);
    else if (opts.onError) opts.onError(r, targets[i]!);
    else throw r;
  });
  return out;
}

type Found = { file: string; host: string } | { builtin: (readonly [string, string])[] };

/** A function finding module names in one kernel's tree (scanned once, for every name). */
async function nameLookup(opts: InspectOptions, fs: KabiFs): Promise<(name: string) => Promise<Found>> {
  const root = await requireRoot(opts.root, fs);
  const release = await kernelFor(root, opts.kernel, fs);
  const kernel = (await discoverKernels({ root, fs })).find((k) => k.release === release);
  if (!kernel) throw new KabiError('KERNEL_NOT_FOUND', `kernel ${release} is not installed under ${root} (no lib/modules/${release})`);
  const host = opts.view === 'host';
  const config = await loadDepmodConfig(fs, host ? '/' : root, release);
  const tree = await scanModuleTree(fs, root, kernel.moduleDir, config, host ? { linkRoot: '/', externalRoot: '/' } : {});
  let builtin: Promise<{ names: Set<string>; modinfo: Map<string, [string, string][]> }> | undefined;
  return async (name) => {
    const key = name.replaceAll('-', '_');
    const f = tree.chosen.get(key);
    if (f) return { file: host ? hostPath(root, f.path) : f.path, host: f.host };
    builtin ??= confinedPath(fs, root, kernel.moduleDir).then((dir) => readBuiltin(fs, dir));
    const b = await builtin;
    if (b.names.has(key)) return { builtin: b.modinfo.get(key) ?? [] };
    throw new KabiError('IO', `module ${name} not found in ${kernel.moduleDir}${root === '/' ? '' : ` under ${root}`} (nor built into ${release})`);
  };
}

/** The kernel a name is looked up for: the one asked for, the running one on "/", or the only one installed. */
async function kernelFor(root: string, asked: string | undefined, fs: KabiFs): Promise<string> {
  if (asked) return asked;
  if (root === '/') return hostRelease();
  const all = await discoverKernels({ root, fs });
  if (all.length === 1) return all[0]!.release;
  throw new KabiError('USAGE', `a module name under ${root} needs a kernel: ${all.length === 0 ? 'none is installed' : `${all.length} are installed (${all.map((k) => k.release).join(', ')})`}; name one`);
}

/** modules.builtin (which names are built in) and modules.builtin.modinfo ("name.key=value" strings). */
async function readBuiltin(fs: KabiFs, dir: string): Promise<{ names: Set<string>; modinfo: Map<string, [string, string][]> }> {
  const read = async (file: string) => {
    try {
      return new TextDecoder('latin1').decode(await readRegularFile(fs, posix.join(dir, file), READ_BUDGETS.text));
    } catch (e) {
      if (isNotFound(e)) return '';
      throw e;
    }
  };
  const names = new Set<string>();
  for (const line of (await read('modules.builtin')).split('\n')) {
    const base = posix.basename(line.trim());
    if (base !== '') names.add(base.split('.')[0]!.replaceAll('-', '_'));
  }
  const modinfo = new Map<string, [string, string][]>();
  for (const entry of (await read('modules.builtin.modinfo')).split('\0')) {
    const dot = entry.indexOf('.');
    const eq = entry.indexOf('=', dot);
    if (dot <= 0 || eq < 0) continue;
    const mod = entry.slice(0, dot).replaceAll('-', '_');
    let list = modinfo.get(mod);
    if (!list) modinfo.set(mod, (list = []));
    list.push([entry.slice(dot + 1, eq), entry.slice(eq + 1)]);
  }
  return { names, modinfo };
}
