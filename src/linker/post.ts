import { updateDepmod, formatDepmodMessage, type DepmodChange } from '../depmod/index.js';
import { DepmodReaderThreads } from '../depmod/reader-threads.js';
import { KabiError } from '../errors.js';
import { nodeFs, readRegularFile, READ_BUDGETS, type KabiFs } from '../fs.js';
import { confinedPath } from '../kernel/paths.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { runCommand, which, type Runner } from '../util/run.js';
import type { DepmodStep } from './apply.js';
import type { Plan } from './types.js';

export interface DepmodStepOptions {
  root: string;
  kernels: readonly InstalledKernel[];
  /** Print what is run (weak-modules' doit lines) and its notes. */
  log: (line: string) => void;
  warn: (line: string) => void;
  /**
   * How the depmod files of changed kernels are refreshed: kabi's own depmod (default;
   * incremental, byte for byte what kmod writes, inside each kernel's link transaction),
   * the system's `depmod` (after the links are committed), or not at all.
   */
  depmodMode?: 'native' | 'system' | 'none';
  /** depmod binary for 'system'; default: the first `depmod` on PATH. */
  depmod?: string;
  fs?: KabiFs;
  /** weak-modules runs depmod only for kernels with a symvers and a System.map (default true). */
  requireInstalled?: boolean;
  run?: Runner;
}

async function isRealSystemMap(fs: KabiFs, file: string): Promise<boolean> {
  try {
    const text = new TextDecoder().decode(await readRegularFile(fs, file, READ_BUDGETS.symbols));
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

/** What the plan changed in one kernel's tree, for an incremental depmod run. */
function depmodChanges(plan: Plan, release: string): DepmodChange[] {
  const kp = plan.kernels.find((x) => x.release === release);
  if (!kp) return [];
  const out: DepmodChange[] = [];
  const fromOps = new Set<string>();
  for (const op of kp.ops) {
    fromOps.add(op.link);
    out.push({ kind: op.kind === 'add' ? 'added' : op.kind === 'remove' ? 'removed' : 'changed', path: op.link });
  }
  // The modules themselves, in their own kernel: installed or replaced by the package.
  for (const p of kp.changedModules) if (!fromOps.has(p)) out.push({ kind: 'changed', path: p });
  return out;
}

/** Kernels whose modules changed: weak-modules visits them in name order. */
export function changedKernels(plan: Plan): string[] {
  return plan.kernels.filter((k) => k.depmod).map((k) => k.release).sort();
}

/**
 * depmod once per changed installed kernel (not once per module), as the linker's apply
 * calls it for each kernel. A dry run prints the lines that would run and runs nothing.
 */
export function depmodStep(plan: Plan, opts: DepmodStepOptions & { dryRun?: boolean }): DepmodStep | undefined {
  const mode = opts.depmodMode ?? 'native';
  if (mode === 'none') return undefined;
  const run = opts.run ?? runCommand;
  const fs = opts.fs ?? nodeFs;
  let binary: string | undefined;
  // One set of reader threads for every kernel refreshed (their code stays warm), ended by close().
  const readers = new DepmodReaderThreads();
  return {
    transactional: mode === 'native',
    close: () => readers.close(),
    wants(release) {
      const k = opts.kernels.find((x) => x.release === release);
      if (!k || (opts.requireInstalled !== false && (k.symvers === undefined || k.systemMap === undefined))) {
        opts.log(`Skipping depmod for non-installed kernel ${release}`);
        return false;
      }
      return true;
    },
    async run(release) {
      const k = opts.kernels.find((x) => x.release === release)!;
      const depmod = mode === 'system' ? (binary ??= opts.depmod ?? (await which('depmod')) ?? '/sbin/depmod') : 'kabi depmod';
      // Resolved inside the root: a System.map linked to an absolute path names the root's file.
      const map = k.systemMap === undefined ? undefined : await confinedPath(fs, opts.root, k.systemMap);
      // Debian ships a stub System.map: with it, -e would call every kernel symbol unknown.
      const errsyms = map !== undefined && (await isRealSystemMap(fs, map)) ? ['-ae', '-F', map] : ['-a'];
      const args = [...(opts.root !== '/' ? ['-b', opts.root] : []), ...errsyms, release];
      opts.log([depmod, ...args].join(' '));
      if (opts.dryRun) return true;
      if (mode === 'native') {
        try {
          const r = await updateDepmod({
            root: opts.root,
            release,
            ...(opts.fs ? { fs: opts.fs } : {}),
            changes: depmodChanges(plan, release),
            errsyms: errsyms.length > 1,
            ...(errsyms.length > 1 && map ? { systemMap: { path: map } } : {}),
            readers,
          });
          const text = r.warnings.map((w) => formatDepmodMessage(w)).join('');
          if (r.status !== 0) {
            opts.warn(`depmod: refreshing ${release} failed; its previous files are unchanged\n${text.trimEnd()}`);
            return false;
          }
          reportDepmodWarnings(text, release, opts.warn);
          return true;
        } catch (e) {
          if (!(e instanceof KabiError)) throw e;
          opts.warn(`depmod: refreshing ${release} failed (${e.message})`);
          return false;
        }
      }
      const r = await run(depmod, args);
      if (r.spawnError) opts.warn(`weak-modules: cannot run ${depmod}: ${r.spawnError}`);
      else reportDepmodWarnings(r.stderr, release, opts.warn);
      // Like the original, the system's depmod's exit status is not checked.
      return true;
    },
  };
}

/** The initramfs step for each kernel the plan changed and the run completed, in name order. */
export async function refreshImages(plan: Plan, done: readonly string[], step: (release: string) => Promise<void>): Promise<void> {
  for (const release of plan.kernels.filter((k) => k.initramfs && done.includes(k.release)).map((k) => k.release).sort()) await step(release);
}
