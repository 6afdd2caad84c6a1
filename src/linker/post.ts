import { readFile } from 'node:fs/promises';
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
  /** weak-modules runs depmod only for kernels with a symvers and a System.map (default true). */
  requireInstalled?: boolean;
  /** Called for each kernel whose initramfs should be refreshed (weak-modules' check_initramfs). */
  initramfs?: (kernel: string) => Promise<void>;
  run?: Runner;
}

async function isRealSystemMap(file: string): Promise<boolean> {
  try {
    const text = new TextDecoder().decode(await readFile(file));
    return text.includes(' __ksymtab_');
  } catch {
    return false;
  }
}

/**
 * depmod's warnings about the out-of-tree modules kabi manages are passed on; warnings about
 * the kernel's own modules (a tree that was already inconsistent) are only counted.
 */
function reportDepmodWarnings(stderr: string, release: string, warn: (l: string) => void): void {
  let others = 0;
  for (const line of stderr.split('\n')) {
    if (line.trim() === '') continue;
    if (/\/(weak-updates|extra|updates)\//.test(line) || !/WARNING: \S+\/kernel\//.test(line)) warn(line);
    else others++;
  }
  if (others > 0) warn(`depmod: ${others} more warnings about ${release}'s own modules (run depmod -ae ${release} to see them)`);
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
      if (!k || (opts.requireInstalled !== false && (k.symvers === undefined || k.systemMap === undefined))) {
        opts.log(`Skipping depmod for non-installed kernel ${release}`);
        continue;
      }
      const map = k.systemMap === undefined ? undefined : hostPath(opts.root, k.systemMap);
      // Debian ships a stub System.map: with it, -e would call every kernel symbol unknown.
      const errsyms = map !== undefined && (await isRealSystemMap(map)) ? ['-ae', '-F', map] : ['-a'];
      const args = [...(opts.root !== '/' ? ['-b', opts.root] : []), ...errsyms, release];
      opts.log([depmod, ...args].join(' '));
      if (opts.dryRun) continue;
      const r = await run(depmod, args);
      if (r.spawnError) opts.warn(`weak-modules: cannot run ${depmod}: ${r.spawnError}`);
      else reportDepmodWarnings(r.stderr, release, opts.warn);
    }
  }
  if (opts.initramfs && !opts.dryRun) {
    for (const release of plan.kernels.filter((k) => k.initramfs).map((k) => k.release).sort()) await opts.initramfs(release);
  }
}
