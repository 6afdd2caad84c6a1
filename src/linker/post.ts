import { readFile } from 'node:fs/promises';
import { updateDepmod, formatDepmodMessage, type DepmodChange } from '../depmod/index.js';
import { KabiError } from '../errors.js';
import { DepmodReaderThreads } from '../depmod/reader-threads.js';
import type { KabiFs } from '../fs.js';
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
  /**
   * How the depmod files of changed kernels are refreshed: kabi's own depmod (default;
   * incremental, byte for byte what kmod writes), the system's `depmod`, or not at all.
   */
  depmodMode?: 'native' | 'system' | 'none';
  /** depmod binary for 'system'; default: the first `depmod` on PATH. */
  depmod?: string;
  fs?: KabiFs;
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
 * After links change: depmod once per changed installed kernel (not once per module), then
 * the initramfs step for each changed kernel. Nothing runs in a dry run; the lines that
 * would run are still printed.
 */
/** Returns the kernels whose depmod files could not be refreshed (the caller exits non-zero). */
export async function postProcess(plan: Plan, opts: PostOptions): Promise<string[]> {
  const failed: string[] = [];
  const run = opts.run ?? runCommand;
  const changed = changedKernels(plan);
  const mode = opts.depmodMode ?? 'native';
  if (mode !== 'none') {
    const depmod = mode === 'system' ? (opts.depmod ?? (await which('depmod')) ?? '/sbin/depmod') : 'kabi depmod';
    // One set of reader threads for every kernel refreshed (their code stays warm), ended after.
    const readers = new DepmodReaderThreads();
    try {
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
              failed.push(release);
              opts.warn(`depmod: refreshing ${release} failed; its previous files are unchanged\n${text.trimEnd()}`);
            } else reportDepmodWarnings(text, release, opts.warn);
          } catch (e) {
            if (!(e instanceof KabiError)) throw e;
            failed.push(release);
            opts.warn(`depmod: refreshing ${release} failed (${e.message}); its previous files are unchanged`);
          }
          continue;
        }
        const r = await run(depmod, args);
        if (r.spawnError) opts.warn(`weak-modules: cannot run ${depmod}: ${r.spawnError}`);
        else reportDepmodWarnings(r.stderr, release, opts.warn);
        // Like the original, the system's depmod's exit status is not checked.
      }
    } finally {
      readers.close();
    }
  }
  if (opts.initramfs && !opts.dryRun) {
    for (const release of plan.kernels.filter((k) => k.initramfs).map((k) => k.release).sort()) await opts.initramfs(release);
  }
  return failed;
}
