import { resolve } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isDirectory, nodeFs } from '../fs.js';
import { withJsonForm } from '../json.js';
import { discoverKernels, type InstalledKernel } from '../kernel/discover.js';
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
}

export interface CheckResult {
  readonly verdicts: Verdict[];
  readonly kernels: readonly InstalledKernel[];
  /** Per kernel: checks that could not be made. */
  readonly notes: ReadonlyMap<string, readonly string[]>;
}

/** Read the candidate modules, model each kernel once, and judge every (module, kernel) pair. */
export async function checkModules(modulePaths: readonly string[], opts: CheckModulesOptions = {}): Promise<CheckResult> {
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
  const candidates: Candidate[] = await mapPool(modulePaths, 16, async (p) => ({ path: p, module: await cache.read(resolve(opts.cwd ?? process.cwd(), p)) }));
  const verdicts: Verdict[] = [];
  const notes = new Map<string, readonly string[]>();
  for (const k of kernels) {
    const loaded = await loadKernelModel(k, {
      fs,
      cache,
      ...(opts.missingCrcPolicy ? { missingCrcPolicy: opts.missingCrcPolicy } : {}),
    });
    const model: LoadedKernelModel = await withInTreeProviders(loaded, candidates.map((c) => c.module), { cache, fs });
    notes.set(k.release, model.notes);
    verdicts.push(...checkAgainstKernel(candidates, model, { semantics: opts.semantics ?? 'loader', ...(opts.cascade !== undefined ? { cascade: opts.cascade } : {}) }));
  }
  return withJsonForm({ verdicts, kernels, notes });
}
