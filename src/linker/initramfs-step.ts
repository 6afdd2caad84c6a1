import { access, constants } from 'node:fs/promises';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { analyseImage, type ImageCheck } from '../initramfs/check.js';
import type { HostView } from '../initramfs/generator/index.js';
import type { PlannedLink } from '../initramfs/generator/installed-modules.js';
import { refreshInitramfs, type RefreshResult, type RefreshStrategy } from '../initramfs/refresh.js';
import { withImageLock } from '../initramfs/update.js';
import { hostPath } from '../kernel/paths.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { runCommand, type Runner } from '../util/run.js';
import type { Plan } from './types.js';

/*
 * The linker's initramfs step, one call per kernel whose modules changed, after its links and
 * depmod files are in place. Every path asks the initramfs layer the same question (would the
 * image's generator, run now, put anything else in it for the modules that changed?) and only
 * then acts: weak-modules runs dracut as RHEL's does, kabi link rewrites natively or runs the
 * generator, a --check-initramfs-prog records the kernel and its changed modules.
 *
 * Interface for the callers (weak-modules, kabi link):
 *  - call the step for every kernel the plan changed, also in a dry run, passing `dryRun`:
 *    then nothing is run or written, and the images that would be rebuilt are printed with
 *    the reason, decided for the tree as the plan will leave it;
 *  - the plan's `changedModules` per kernel (system paths of the module files and links that
 *    changed) are the changed names; a --check-initramfs-prog gets them in its environment
 *    as KABI_INITRAMFS_MODULES (one path per line) and the root as KABI_ROOT.
 */

export interface InitramfsStepOptions {
  root: string;
  fs?: KabiFs;
  kernels: readonly InstalledKernel[];
  plan: Plan;
  /** weak-modules --check-initramfs-prog: called as `PROG <release>` instead of the built-in step. */
  checkProg?: string;
  /** weak-modules --dracut. */
  dracut?: string;
  log: (line: string) => void;
  warn: (line: string) => void;
  run?: Runner;
  dryRun?: boolean;
  host?: HostView;
}

/** The environment a --check-initramfs-prog gets: the changed module files, the root. */
export const CHANGED_MODULES_ENV = 'KABI_INITRAMFS_MODULES';

function changedOf(plan: Plan, release: string): { changed: string[]; planned: PlannedLink[] } {
  const k = plan.kernels.find((x) => x.release === release);
  return { changed: [...(k?.changedModules ?? [])], planned: (k?.ops ?? []).map((o) => ({ kind: o.kind, link: o.link, target: o.target })) };
}

function reasonLines(check: ImageCheck): string[] {
  return check.changes.map((c) => `  ${c.kind}: ${c.detail}`);
}

/**
 * weak-modules' per-kernel initramfs step. RHEL's builds a fresh image with dracut and
 * swaps it in when the module files differ; kabi reads the existing image and the generator's
 * configuration instead and runs dracut only when the image would change (a module it holds
 * changed or went away, or one its rules select, or one a module it holds needs, arrived), or
 * when that cannot be told from files. An image that does not exist is not made (the kernel's
 * own installation builds the first one); one kabi cannot read is rebuilt, as the original would.
 */
export function initramfsStep(opts: InitramfsStepOptions): (release: string) => Promise<void> {
  const run = opts.run ?? runCommand;
  const fs = opts.fs ?? nodeFs;
  // A dracut that could not be started once is not tried again for the next image: one
  // warning saying why, then one line per image left as it was.
  let unstartable: string | undefined;
  return async (release) => {
    const { changed, planned } = changedOf(opts.plan, release);
    if (opts.checkProg) {
      opts.log(`${opts.checkProg} ${release}`);
      if (opts.dryRun) return;
      const env: Record<string, string> = { [CHANGED_MODULES_ENV]: changed.join('\n') };
      if (opts.root !== '/') env['KABI_ROOT'] = opts.root;
      const r = await run(opts.checkProg, [release], { env });
      if (r.spawnError) opts.warn(`weak-modules: cannot run ${opts.checkProg}: ${r.spawnError}`);
      return;
    }
    const k = opts.kernels.find((x) => x.release === release);
    if (!k || !k.initramfs.exists) return;
    const image = hostPath(opts.root, k.initramfs.path);
    const dracut = opts.dracut ?? '/usr/bin/dracut';
    const args = ['-f', image, release];
    const decideAndRun = async () => {
      try {
        // RHEL's rebuild is a plain `dracut -f IMAGE K`: judged by the configuration alone.
        const check = (await analyseImage({ root: opts.root, fs, release, changedModules: changed, createMissing: false, rebuildWithParameters: false, ...(opts.dryRun ? { planned } : {}), ...(opts.host ? { host: opts.host } : {}) })).check;
        if (!check.needsUpdate) {
          opts.log(`initramfs ${check.image}: ${check.generator} would put nothing else into it for the changed modules; not rebuilding it`);
          return;
        }
        opts.log(`initramfs ${check.image}: ${opts.dryRun ? 'would rebuild' : 'rebuilding'} it (${check.generator}):`);
        for (const l of reasonLines(check)) opts.log(l);
      } catch (e) {
        if (!(e instanceof KabiError)) throw e;
        opts.warn(`weak-modules: cannot read ${k.initramfs.path} (${e.detail}); ${opts.dryRun ? 'it would be rebuilt' : 'rebuilding it'}`);
      }
      opts.log([dracut, ...args].join(' '));
      if (opts.dryRun) return;
      if (unstartable !== undefined) {
        opts.warn(`weak-modules: ${k.initramfs.path} not rebuilt (cannot run ${dracut})`);
        return;
      }
      const r = await run(dracut, args);
      if (r.spawnError) {
        unstartable = r.spawnError;
        opts.warn(`weak-modules: cannot run ${dracut}: ${r.spawnError}; ${k.initramfs.path} not rebuilt`);
      } else if (r.status !== 0) opts.warn(`weak-modules: ${dracut} failed for ${release} (status ${r.status}): ${r.stderr.trimEnd()}`);
    };
    // The image's lock is held from the decision to dracut's end, so no other kabi run reads
    // or writes it meanwhile.
    if (opts.dryRun) await decideAndRun();
    else await withImageLock({ root: opts.root, fs, release }, decideAndRun);
  };
}

export interface RefreshStepOptions {
  root: string;
  fs?: KabiFs;
  plan: Plan;
  strategy: RefreshStrategy;
  log: (l: string) => void;
  warn: (l: string) => void;
  dryRun?: boolean;
  host?: HostView;
  runner?: Runner;
}

/** kabi link's step: the initramfs layer decides and acts (native rewrite, generator or deferred record). */
export function refreshStep(opts: RefreshStepOptions): (release: string) => Promise<void> {
  return async (release) => {
    const { changed, planned } = changedOf(opts.plan, release);
    try {
      const r = await refreshInitramfs({
        root: opts.root,
        ...(opts.fs ? { fs: opts.fs } : {}),
        release,
        changedModules: changed,
        strategy: opts.strategy,
        createMissing: false,
        ...(opts.dryRun ? { dryRun: true, planned } : {}),
        ...(opts.host ? { host: opts.host } : {}),
        ...(opts.runner ? { runner: opts.runner } : {}),
      });
      for (const l of describeRefresh(r)) opts.log(l);
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
      opts.warn(`initramfs of ${release} not refreshed: ${e.message}`);
    }
  };
}

/** What a refresh did or would do, and why: the lines every path prints. */
export function describeRefresh(r: RefreshResult): string[] {
  const image = r.check.image;
  if (r.action === 'none') return [`initramfs ${image}: ${r.check.exists ? 'nothing to rebuild' : 'no image'}`, ...r.notes.map((n) => `  note: ${n}`)];
  const would = r.dryRun;
  const what =
    r.action === 'deferred'
      ? `${would ? 'would record' : 'recorded'} for kabi initramfs flush`
      : r.action === 'native'
        ? `${would ? 'would be rewritten' : 'rewritten'} by kabi`
        : `${would ? 'would be rebuilt' : 'rebuilt'} by ${r.regenerate?.argv.join(' ') ?? 'its generator'}`;
  return [`initramfs ${image}: ${what} (${r.check.generator})`, ...r.reasons.map((x) => `  ${x}`), ...r.notes.map((n) => `  note: ${n}`)];
}

export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
