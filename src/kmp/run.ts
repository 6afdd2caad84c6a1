import { posix } from 'node:path';
import { forgetCache, removeLegacyCache } from '../depmod/cache-file.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound, nodeFs } from '../fs.js';
import { holdsKernel } from '../kernel/discover.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { depmodStep } from '../linker/post.js';
import { runLinker } from '../linker/run.js';
import { runCommand, type Runner } from '../util/run.js';
import { initrdStep, type InitrdSettings } from './initrd.js';
import { planKmp } from './plan.js';
import { dropCopy, keepCopy } from './preserve.js';
import { rpmDatabase, type RpmDatabase } from './rpm-db.js';
import { WM2_POLICY, type KmpPolicy } from './settings.js';
import type { KmpLine, KmpPlan, Wm2Mode } from './types.js';

export interface Wm2RunOptions {
  root?: string;
  fs?: KabiFs;
  /** Default: the root's rpm database, read with `rpm` through `run`. */
  db?: RpmDatabase;
  /** Runs rpm, depmod and the initrd generators. */
  run?: Runner;
  policy?: KmpPolicy;
  initrd: InitrdSettings;
  dryRun?: boolean;
  /** DEPMOD: the system's depmod to run instead of kabi's own (which writes the same files, incrementally). */
  depmod?: string;
  /** Every line weak-modules2 would print, with its level; `trace` lines are commands run (-vvv). */
  say: (level: KmpLine['level'] | 'trace', text: string) => void;
}

export interface Wm2Result {
  /** 0, 1 (wm2's failures), or 128 + a signal that stopped the run at a safe point. */
  readonly status: number;
  readonly plan: KmpPlan;
}

/**
 * One weak-modules2 run, all of it under the root's lock (the linker's, recovered first):
 * plan, keep the KMP copies links may point at, apply the links kernel by kernel with each
 * kernel's depmod files in the same transaction, drop copies no kernel uses, tidy removed
 * kernels' directories, then the initrd step. Exit status as weak-modules2's: 1 when a package
 * was refused or depmod or an initrd generator failed; a KMP that fits no kernel is not a failure.
 */
export async function weakModules2(mode: Wm2Mode, arg: string, stdin: string, opts: Wm2RunOptions): Promise<Wm2Result> {
  const fs = opts.fs ?? nodeFs;
  const root = opts.root ?? '/';
  const run = opts.run ?? runCommand;
  const dryRun = opts.dryRun === true;
  const db = opts.db ?? rpmDatabase({ root, runner: run });
  let plan: KmpPlan | undefined;
  let failed = false;
  // The system's depmod, when asked for: its exit status counts (weak-modules2 returns 1 on it).
  const traced: Runner = async (cmd, args, o) => {
    opts.say('trace', `+ ${[cmd, ...args].join(' ')}`);
    const r = await run(cmd, args, o);
    if (cmd === opts.depmod && r.status !== 0) failed = true;
    return r;
  };
  const linker = await runLinker({
    root,
    fs,
    dryRun,
    plan: async () => {
      plan = await planKmp(mode, arg, stdin, { root, fs, db, policy: opts.policy ?? WM2_POLICY });
      for (const l of plan.lines) opts.say(l.level, l.text);
      for (const op of plan.preserve) {
        if (dryRun) opts.say('dlog', `${op.kind === 'keep' ? 'would keep' : 'would drop'} a copy of ${op.kmp.nvr}`);
        else if (op.kind === 'keep') {
          // Before the links: they may point at the copy, and depmod reads it in the same transaction.
          opts.say('dlog', `keeping a copy of ${op.kmp.nvr} for the kernels only it fits`);
          await keepCopy(fs, root, op.kmp);
        }
      }
      return plan.links;
    },
    depmod: (links, kernels) =>
      depmodStep(links, {
        root,
        fs,
        kernels,
        dryRun,
        requireInstalled: false,
        depmodMode: opts.depmod ? 'system' : 'native',
        ...(opts.depmod ? { depmod: opts.depmod } : {}),
        run: traced,
        log: (l) => opts.say('log', l),
        warn: (l) => opts.say('warn', l),
      }),
    afterApply: async () => {
      for (const op of plan!.preserve) {
        if (op.kind !== 'drop') continue;
        opts.say('dlog', `dropping the copy of ${op.kmp.nvr}: no kernel needs it`);
        await dropCopy(fs, root, op.kmp.nvr);
      }
      for (const k of plan!.tidy) await removeEmptyKernelDir(fs, root, k);
      await initrdSteps(plan!);
    },
    warn: (l) => opts.say('warn', l),
  });
  const done = plan!;
  if (done.failed || linker.result.failed.length > 0 || linker.result.notStarted.length > 0) failed = true;
  if (dryRun) await initrdSteps(done);
  return { status: linker.interrupted ?? (failed ? 1 : 0), plan: done };

  async function initrdSteps(p: KmpPlan): Promise<void> {
    for (const r of p.refresh) {
      const ok = await initrdStep(r, { root, fs, run: traced, dryRun, settings: opts.initrd, say: (level, text) => opts.say(level, text) });
      if (!ok) failed = true;
    }
  }
}

/**
 * After --remove-kernel (or a KMP's removal after its kernel's): weak-updates goes once empty
 * (a regular file someone put there stays, and so does the directory holding it); once the
 * kernel itself is gone, so does kabi's depmod cache of it (and one an older kabi kept in the
 * module directory), and the module directory when nothing is left in it.
 */
async function removeEmptyKernelDir(fs: KabiFs, root: string, release: string): Promise<void> {
  let dir: string | undefined;
  let base = '/usr/lib/modules';
  for (const b of ['/usr/lib/modules', '/lib/modules']) {
    dir = await resolveInRoot(fs, root, hostPath(root, `${b}/${release}`)).catch(() => undefined);
    if (dir !== undefined) {
      base = b;
      break;
    }
  }
  if (dir !== undefined) {
    if (!(await fs.lstat(dir)).isDirectory()) return;
    await rmdirIfEmpty(fs, posix.join(dir, 'weak-updates'));
  }
  // rpm may have removed the directory already (nothing of kabi's was in it): the cache goes all the same.
  if (await holdsKernel(fs, root, release, `${base}/${release}`)) return;
  await forgetCache(fs, root, release);
  if (dir !== undefined) {
    await removeLegacyCache(fs, dir);
    await rmdirIfEmpty(fs, dir);
  }
}

async function rmdirIfEmpty(fs: KabiFs, dir: string): Promise<void> {
  try {
    if ((await fs.lstat(dir)).isDirectory()) await fs.rmdir(dir);
  } catch (e) {
    if (isNotFound(e) || errnoCode(e) === 'ENOTEMPTY' || errnoCode(e) === 'EEXIST') return;
    throw new KabiError('IO', `cannot remove ${dir}: ${(e as Error).message}`, { file: dir, cause: e });
  }
}
