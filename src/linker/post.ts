import { hostPath } from '../kernel/paths.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { runCommand, which, type Runner } from '../util/run.js';
import type { Plan } from './types.js';

export interface PostOptions {
  root: string;
  kernels: readonly InstalledKernel[];
  dryRun: boolean;
  /** Print what is run (weak-modules' doit lines) and its notes. */
  log: (line: string) => void;
  warn: (line: string) => void;
  /** depmod binary; default: the first `depmod` on PATH. */
  depmod?: string;
  /** Skip depmod entirely (the caller refreshes the indexes itself). */
  noDepmod?: boolean;
  /** Called for each kernel whose initramfs should be refreshed (weak-modules' check_initramfs). */
  initramfs?: (kernel: string) => Promise<void>;
  run?: Runner;
}

/** Kernels whose modules changed: weak-modules visits them in name order. */
export function changedKernels(plan: Plan): string[] {
  return plan.kernels.filter((k) => k.depmod).map((k) => k.release).sort();
}

/**
 * After links change: depmod once per changed installed kernel (not once per module), then
 * the initramfs step for each changed kernel. Nothing runs in a dry run; the lines that
 * would run are still printed.
 */
export async function postProcess(plan: Plan, opts: PostOptions): Promise<void> {
  const run = opts.run ?? runCommand;
  const changed = changedKernels(plan);
  if (!opts.noDepmod) {
    const depmod = opts.depmod ?? (await which('depmod')) ?? '/sbin/depmod';
    for (const release of changed) {
      const k = opts.kernels.find((x) => x.release === release);
      if (!k || k.symvers === undefined || k.systemMap === undefined) {
        opts.log(`Skipping depmod for non-installed kernel ${release}`);
        continue;
      }
      const args = [...(opts.root !== '/' ? ['-b', opts.root] : []), '-ae', '-F', hostPath(opts.root, k.systemMap), release];
      opts.log([depmod, ...args].join(' '));
      if (opts.dryRun) continue;
      const r = await run(depmod, args);
      if (r.spawnError) opts.warn(`weak-modules: cannot run ${depmod}: ${r.spawnError}`);
      else if (r.stderr) opts.warn(r.stderr.trimEnd());
    }
  }
  if (opts.initramfs && !opts.dryRun) {
    for (const release of plan.kernels.filter((k) => k.initramfs).map((k) => k.release).sort()) await opts.initramfs(release);
  }
}
