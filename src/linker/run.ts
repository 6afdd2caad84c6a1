import { forgetCache as forgetDepmodCache } from '../depmod/cache-file.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { discoverKernels, type InstalledKernel } from '../kernel/discover.js';
import { applyPlan, recoverRoot, type ApplyResult, type DepmodStep } from './apply.js';
import { deferInterruptions } from './interrupt.js';
import { changedKernels, refreshImages } from './post.js';
import { withRootLock } from './root-lock.js';
import type { Plan } from './types.js';

/** What runLinker does under the lock: the plan to make, the depmod and initramfs steps, where warnings go. */
export interface LinkerRunOptions {
  root: string;
  fs?: KabiFs;
  dryRun: boolean;
  /** Made once the lock is held and every interrupted transaction is recovered. */
  plan: () => Promise<Plan>;
  /** Called with the plan before anything changes (the commands print it). */
  onPlan?: (plan: Plan) => void;
  depmod: (plan: Plan, kernels: readonly InstalledKernel[]) => DepmodStep | undefined;
  /** The initramfs step per changed kernel, run after every kernel's transaction; in a dry run it is made with the caller's dryRun and only says what it would do. */
  initramfs?: (plan: Plan, kernels: readonly InstalledKernel[]) => (release: string) => Promise<void>;
  warn: (line: string) => void;
  lockTimeoutMs?: number;
  /**
   * The kernel a --remove-kernel run takes away: kabi's depmod cache of it goes too (after
   * the links, under the lock), since the host's removal path does not know that file.
   */
  forgetKernel?: string;
}

/** A whole linker run: the plan, where each kernel ended, and whether a signal stopped it. */
export interface LinkerRun {
  readonly plan: Plan;
  readonly result: ApplyResult;
  /** 128 + signal number when a signal stopped the run at a safe point. */
  readonly interrupted: number | undefined;
}

/**
 * What `weak-modules` and `kabi link` do, in the order that keeps a root consistent: take the
 * root's lock before reading anything, finish or undo what an interrupted run left, plan,
 * apply kernel by kernel (links and depmod files as one transaction each), then the
 * initramfs step, all under the lock. Signals stop the run between kernels. A dry run takes a
 * reader's lock (waiting for a run in progress), repairs nothing and writes nothing.
 */
export async function runLinker(opts: LinkerRunOptions): Promise<LinkerRun> {
  const fs = opts.fs ?? nodeFs;
  let waited = false;
  return withRootLock(
    opts.root,
    async () => {
      // From here on a signal waits for a safe point (while waiting for the lock it ends the run at once: nothing started).
      const stops = deferInterruptions();
      try {
        if (!opts.dryRun) {
          const r = await recoverRoot(opts.root, { fs });
          for (const [dir, e] of r.failed) opts.warn(`cannot recover ${dir}: ${e.message}`);
        }
        const plan = await opts.plan();
        opts.onPlan?.(plan);
        const kernels = await discoverKernels({ root: opts.root, fs });
        const depmod = opts.depmod(plan, kernels);
        if (opts.dryRun) {
          // The lines that would run are printed; nothing runs.
          for (const r of changedKernels(plan)) if (depmod?.wants(r)) await depmod.run(r);
          // The images that would be rebuilt, and why, decided for the tree the plan would leave.
          if (opts.initramfs) await refreshImages(plan, plan.kernels.map((k) => k.release), opts.initramfs(plan, kernels));
          return { plan, result: { done: [], failed: [], cleanupLeft: [], notStarted: [] }, interrupted: stops.status() };
        }
        const result = await applyPlan(plan, { fs, signal: stops.signal, depmod: depmod ?? 'none' });
        for (const f of result.failed) {
          if (f.state === 'old') opts.warn(`kernel ${f.release} left as it was: ${f.error.message}`);
          else opts.warn(`kernel ${f.release} could not be put back (${f.error.message}); the next run finishes or undoes its change before anything else`);
        }
        for (const c of result.cleanupLeft) opts.warn(`kernel ${c.release} done, but what it staged could not be removed (${c.error.message}); the next run removes it`);
        if (result.notStarted.length > 0) opts.warn(`interrupted: kernels ${result.notStarted.join(', ')} were not changed; run the command again to finish`);
        if (opts.forgetKernel !== undefined) {
          await forgetDepmodCache(fs, opts.root, opts.forgetKernel).catch((e: Error) => opts.warn(`cannot remove kabi's depmod cache of ${opts.forgetKernel}: ${e.message}`));
        }
        if (opts.initramfs && !stops.signal.aborted) await refreshImages(plan, result.done, opts.initramfs(plan, kernels));
        return { plan, result, interrupted: stops.status() };
      } finally {
        stops.dispose();
      }
    },
    {
      fs,
      shared: opts.dryRun,
      ...(opts.lockTimeoutMs !== undefined ? { timeoutMs: opts.lockTimeoutMs } : {}),
      onWait: (holder) => {
        if (!waited) opts.warn(`waiting for another run to finish (${holder})`);
        waited = true;
      },
    },
  );
}
