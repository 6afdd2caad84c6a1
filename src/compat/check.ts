import { resolve } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isDirectory, nodeFs } from '../fs.js';
import { withJsonForm } from '../json.js';
import { discoverKernels, type InstalledKernel } from '../kernel/discover.js';
import { KernelPackages } from '../package/kernel-packages.js';
import type { PackageLimits } from '../package/limits.js';
import { isPackageFile, readPackagedModules } from '../package/module-packages.js';
import { isModuleFileName } from '../module/read-module.js';
import { mapPool } from '../util/pool.js';
import { checkAgainstKernel } from './engine.js';
import { withInTreeProviders } from './in-tree-providers.js';
import { loadKernelModel, ModuleCache, type LoadedKernelModel } from './kernel-model.js';
import type { Candidate, MissingCrcPolicy, Semantics, Verdict } from './types.js';

export interface CheckModulesOptions {
  /** System root (default "/"). */
  root?: string;
  fs?: KabiFs;
  /** Kernel releases to check against; default: every kernel installed under the root. */
  kernels?: readonly string[];
  semantics?: Semantics;
  missingCrcPolicy?: MissingCrcPolicy;
  /** See CheckOptions.cascade. */
  cascade?: boolean;
  /** Base for relative module paths. */
  cwd?: string;
  /**
   * Kernel packages (.deb, .rpm) to judge against as if they were installed under the root,
   * read without unpacking anything; the kernels default to the ones they hold.
   */
  kernelPackages?: readonly string[];
  /** Budgets for reading packages (kernel packages, and module packages given as modules). */
  packageLimits?: Partial<PackageLimits>;
  /**
   * Judge only shard `index` (1-based) of `count`: a contiguous run of the kernels in release
   * order, so the shards' verdicts, concatenated in shard order, are one whole run's.
   */
  shard?: { readonly index: number; readonly count: number };
}

/** The contiguous part of `items` that shard `index` of `count` takes. */
export function shardSlice<T>(items: readonly T[], shard: { readonly index: number; readonly count: number }): T[] {
  if (!Number.isInteger(shard.count) || shard.count < 1 || !Number.isInteger(shard.index) || shard.index < 1 || shard.index > shard.count) {
    throw new KabiError('USAGE', `shard must be I/N with 1 <= I <= N, got ${shard.index}/${shard.count}`);
  }
  return items.slice(Math.floor(((shard.index - 1) * items.length) / shard.count), Math.floor((shard.index * items.length) / shard.count));
}

export interface CheckResult {
  readonly verdicts: Verdict[];
  readonly kernels: readonly InstalledKernel[];
  /** Per kernel: checks that could not be made. */
  readonly notes: ReadonlyMap<string, readonly string[]>;
}

/** Read the candidate modules, model each kernel once, and judge every (module, kernel) pair. */
export async function checkModules(modulePaths: readonly string[], opts: CheckModulesOptions = {}): Promise<CheckResult> {
  if (opts.kernelPackages && opts.kernelPackages.length > 0) return checkAgainstPackages(modulePaths, opts, opts.kernelPackages);
  const root = opts.root ?? '/';
  const fs = opts.fs ?? nodeFs;
  if (!(await isDirectory(fs, root))) throw new KabiError('ROOT_NOT_FOUND', 'the system root does not exist or is not a directory', { file: root });
  const cache = new ModuleCache(fs);
  const all = await discoverKernels({ root, fs });
  let kernels = all;
  if (opts.kernels && opts.kernels.length > 0) {
    kernels = opts.kernels.map((k) => {
      const found = all.find((x) => x.release === k);
      if (!found) throw new KabiError('KERNEL_NOT_FOUND', `kernel ${k} is not installed under ${root} (no lib/modules/${k})`);
      return found;
    });
  }
  if (opts.shard) kernels = shardSlice(kernels, opts.shard);
  // Many modules (a whole tree checked): one set of reader threads for all of them.
  cache.hold();
  try {
    return await checkWith(cache, modulePaths, kernels, opts);
  } finally {
    cache.release();
  }
}

/**
 * Where this process's checks spent their time (milliseconds, added up): reading the modules
 * judged, modelling each kernel (its tree scanned, its symvers read), reading the in-tree
 * providers a verdict needs, and judging. The bench reports it; not part of the API.
 */
export const checkClock = { readMs: 0, modelMs: 0, providersMs: 0, verdictMs: 0 };

async function checkWith(cache: ModuleCache, modulePaths: readonly string[], kernels: readonly InstalledKernel[], opts: CheckModulesOptions): Promise<CheckResult> {
  const fs = opts.fs ?? nodeFs;
  let t = performance.now();
  const lap = (k: keyof typeof checkClock) => {
    const now = performance.now();
    checkClock[k] += now - t;
    t = now;
  };
  const candidates: Candidate[] = (
    // Many reads in flight: a reader thread decodes the .ko.xz files queued at once together.
    await mapPool(modulePaths, 128, async (p): Promise<Candidate[]> => {
      const host = resolve(opts.cwd ?? process.cwd(), p);
      // A module package stands for the modules it would install. A name ending in .ko(.xz…)
      // is read as a module without sniffing: on a whole tree the extra open of every file
      // cost a tenth of the check.
      if (!isModuleFileName(host) && (await isPackageFile(fs, host))) return readPackagedModules(fs, host, p, opts.packageLimits);
      return [{ path: p, module: await cache.read(host) }];
    })
  ).flat();
  lap('readMs');
  const verdicts: Verdict[] = [];
  const notes = new Map<string, readonly string[]>();
  for (const k of kernels) {
    const loaded = await loadKernelModel(k, {
      fs,
      cache,
      ...(opts.missingCrcPolicy ? { missingCrcPolicy: opts.missingCrcPolicy } : {}),
    });
    lap('modelMs');
    const model: LoadedKernelModel = await withInTreeProviders(loaded, candidates.map((c) => c.module), { cache, fs });
    lap('providersMs');
    notes.set(k.release, model.notes);
    verdicts.push(...checkAgainstKernel(candidates, model, { semantics: opts.semantics ?? 'loader', ...(opts.cascade !== undefined ? { cascade: opts.cascade } : {}) }));
    lap('verdictMs');
  }
  return withJsonForm({ verdicts, kernels, notes });
}

/** The kernels of some packages, judged as installed under the root (see KernelPackages.view). */
async function checkAgainstPackages(modulePaths: readonly string[], opts: CheckModulesOptions, files: readonly string[]): Promise<CheckResult> {
  const root = opts.root ?? '/';
  const base = opts.fs ?? nodeFs;
  const cwd = opts.cwd ?? process.cwd();
  const shard = opts.shard;
  if (shard && opts.kernels && opts.kernels.length > 0) throw new KabiError('USAGE', 'a shard takes its kernels from the packages: --kernel cannot be combined with --shard');
  // Checked on the root itself: the view over it would show the packages' directories anyway.
  if (!(await isDirectory(base, root))) throw new KabiError('ROOT_NOT_FOUND', 'the system root does not exist or is not a directory', { file: root });
  const pkgs = await KernelPackages.open(
    files.map((f) => resolve(cwd, f)),
    {
      fs: base,
      ...(opts.packageLimits ? { limits: opts.packageLimits } : {}),
      ...(shard ? { select: (ks: readonly string[]) => shardSlice(ks, shard), requireFileLists: true } : {}),
    },
  );
  try {
    if (pkgs.kernels.length === 0) {
      // A shard may get no kernel when there are more shards than kernels.
      if (shard) return withJsonForm({ verdicts: [], kernels: [], notes: new Map<string, readonly string[]>() });
      throw new KabiError('KERNEL_NOT_FOUND', `no kernel in the packages given (${files.join(', ')})`);
    }
    const kernels = opts.kernels && opts.kernels.length > 0 ? opts.kernels : pkgs.kernels;
    return await checkModules(modulePaths, { ...opts, kernelPackages: undefined, shard: undefined, fs: await pkgs.view(base, root), kernels });
  } finally {
    await pkgs.close();
  }
}
