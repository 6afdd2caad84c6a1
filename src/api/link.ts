import type { Semantics } from '../compat/types.js';
import { KabiError } from '../errors.js';
import { nodeFs, type KabiFs } from '../fs.js';
import { withJsonForm } from '../json.js';
import { discoverKernels } from '../kernel/discover.js';
import type { ApplyResult } from '../linker/apply.js';
import { refreshStep } from '../linker/initramfs-step.js';
import { planAddKernel, planAddModules, planRemoveKernel, planRemoveModules, type PlanOptions } from '../linker/plan.js';
import { depmodStep } from '../linker/post.js';
import { runLinker } from '../linker/run.js';
import type { Plan } from '../linker/types.js';
import { requireRoot } from './root.js';

/**
 * What to link or unlink, as `kabi link` takes it: `add` links these module files into every
 * kernel that can load them (all-or-nothing per kernel); `remove` drops links to these files
 * once they are gone, and links that lost a provider; `addKernel` links other kernels'
 * modules into a kernel; `removeKernel` empties a kernel's weak-updates.
 */
export type LinkRequest = { readonly add: readonly string[] } | { readonly remove: readonly string[] } | { readonly addKernel: string } | { readonly removeKernel: string };

/** Options of plan() (and of apply() given a request): the CLI's defaults when left out. */
export interface LinkPlanOptions {
  /** The system to work on (default "/"): judged, and linked, as it sees itself. */
  root?: string;
  fs?: KabiFs;
  /** Base of relative module paths (default: the process's). */
  cwd?: string;
  /** loader (the default: what the kernel decides) or depmod (what weak-modules decides). */
  semantics?: Semantics;
  /** Link only into kernels newer than the module's own, by RPM version order. */
  forwardOnly?: boolean;
  /** Of several versions of a module, link per kernel the newest that kernel can load. */
  multiVersion?: boolean;
  /** Only these installed kernels (the others are left as they are); not with addKernel/removeKernel. */
  kernels?: readonly string[];
  /** How long to wait for another run's lock, in ms (default: $KABI_LOCK_TIMEOUT seconds, else 300 s). */
  lockTimeoutMs?: number;
}

/** Options of apply(): how the job is finished after the links. */
export interface LinkApplyOptions extends LinkPlanOptions {
  /** depmod files of each changed kernel: kabi's own, in the kernel's transaction (`native`, the default), the system's depmod, or none. */
  depmod?: 'native' | 'system' | 'none';
  /** Images of changed kernels that hold a changed module: `auto` (the default: native rewrite where possible, else the generator), `native`, `generator`, `defer` (for `kabi initramfs flush`), `none`. */
  initramfs?: 'auto' | 'native' | 'generator' | 'defer' | 'none';
  /** Plan under the lock and report, but change nothing and run nothing. */
  dryRun?: boolean;
  /** Called with the plan, under the lock, before anything changes. */
  onPlan?: (plan: Plan) => void;
  /** What is run, and what the depmod and initramfs steps did (default: nothing). */
  log?: (line: string) => void;
  /** Kernels left out, files skipped, steps that failed (default: nothing; they are also in the result). */
  warn?: (line: string) => void;
}

/** What apply() did: the plan, where each kernel ended, and whether a signal stopped the run. */
export interface LinkResult extends ApplyResult {
  readonly plan: Plan;
  readonly dryRun: boolean;
  /** The warnings of the run (also passed to `warn`). */
  readonly warnings: readonly string[];
  /**
   * 128 + the signal's number when SIGINT, SIGTERM or SIGHUP stopped the run between two
   * kernels (the kernel in progress was completed); exit with it.
   */
  readonly interrupted: number | undefined;
}

/**
 * The weak-updates changes a request makes, as pure data, judged as `kabi link` judges (the
 * loader's rules unless `semantics: 'depmod'`; link targets as the installed system sees
 * them). Made under the root's lock as a reader: it waits for a run in progress and never
 * writes. Nothing is changed; apply() the request (or this plan) to do it.
 */
export async function plan(request: LinkRequest, opts: LinkPlanOptions = {}): Promise<Plan> {
  return (await apply(request, { ...opts, dryRun: true, depmod: 'none', initramfs: 'none' })).plan;
}

/**
 * Finish the job `kabi link` does: under the root's lock (taken before anything is read), any
 * interrupted run is recovered, the request is planned (or the plan given is used), each
 * kernel's links and depmod files change as one transaction, and the images of changed
 * kernels are refreshed. A plan made earlier is checked against the links as they are now:
 * a kernel that changed meanwhile is left as it is and listed in `failed`.
 *
 * Errors that stop everything (a missing root or module, an unknown kernel, the lock not
 * obtained) are KabiErrors, thrown before anything changes.
 */
export async function apply(what: LinkRequest | Plan, opts: LinkApplyOptions = {}): Promise<LinkResult> {
  const fs = opts.fs ?? nodeFs;
  const given = isPlan(what) ? what : undefined;
  if (given && opts.root !== undefined && opts.root !== given.root) throw new KabiError('USAGE', `the plan is for ${given.root}, not ${opts.root}`);
  const root = await requireRoot(given?.root ?? opts.root, fs);
  const kernels = opts.kernels !== undefined && opts.kernels.length > 0 ? opts.kernels : undefined;
  if (kernels && !given && ('addKernel' in what || 'removeKernel' in what)) throw new KabiError('USAGE', 'kernels cannot be chosen for addKernel or removeKernel: the request names its kernel');
  const dryRun = opts.dryRun === true;
  const warnings: string[] = [];
  const warn = (line: string) => {
    warnings.push(line);
    opts.warn?.(line);
  };
  const log = opts.log ?? (() => undefined);
  const depmodMode = opts.depmod ?? 'native';
  const initramfs = opts.initramfs ?? 'auto';
  const planOptions: PlanOptions = {
    root,
    fs,
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    semantics: opts.semantics ?? 'loader',
    policy: { forwardOnly: opts.forwardOnly === true, multiVersion: opts.multiVersion === true, sources: 'all', requireSymvers: false },
  };
  const forget = given ? (given.mode === 'remove-kernel' ? given.kernels[0]?.release : undefined) : 'removeKernel' in what ? what.removeKernel : undefined;
  const run = await runLinker({
    root,
    fs,
    dryRun,
    warn,
    ...(opts.lockTimeoutMs !== undefined ? { lockTimeoutMs: opts.lockTimeoutMs } : {}),
    plan: async () => {
      if (kernels) {
        const installed = (await discoverKernels({ root, fs })).map((k) => k.release);
        for (const k of kernels) if (!installed.includes(k)) throw new KabiError('KERNEL_NOT_FOUND', `kernel ${k} is not installed under ${root} (installed: ${installed.join(', ') || 'none'})`);
      }
      const p = given ?? (await makePlan(what as LinkRequest, planOptions));
      return kernels ? onlyKernels(p, kernels) : p;
    },
    onPlan: (p) => {
      for (const w of p.warnings) warn(w);
      opts.onPlan?.(p);
    },
    // --remove-kernel: kabi's depmod cache of that kernel goes with it (the host's removal path does not know it).
    ...(forget !== undefined ? { forgetKernel: forget, dropEmptyWeakUpdates: true } : {}),
    depmod: (p, installed) => (p.mode === 'remove-kernel' || dryRun ? undefined : depmodStep(p, { requireInstalled: false, root, kernels: installed, log, warn, depmodMode, fs })),
    ...(initramfs === 'none' ? {} : { initramfs: (p) => refreshStep({ root, fs, plan: p, strategy: initramfs, log, warn, dryRun }) }),
  });
  return withJsonForm({ ...run.result, plan: run.plan, dryRun, warnings, interrupted: run.interrupted });
}

function isPlan(x: LinkRequest | Plan): x is Plan {
  return 'mode' in x && 'kernels' in x;
}

function makePlan(r: LinkRequest, opts: PlanOptions): Promise<Plan> {
  if ('add' in r) return planAddModules(r.add, opts);
  if ('remove' in r) return planRemoveModules(r.remove, opts);
  if ('addKernel' in r) return planAddKernel(r.addKernel, opts);
  return planRemoveKernel(r.removeKernel, opts);
}

/**
 * A plan cut to some kernels: each kernel's part stands alone (all-or-nothing is per kernel),
 * so the others are simply left out, with the lines that speak of them.
 */
export function onlyKernels(p: Plan, releases: readonly string[]): Plan {
  const about = (line: string) => [...line.matchAll(/\bkernel (\S+)/g)].at(-1)?.[1];
  const keep = (line: string) => {
    const k = about(line);
    return k === undefined || releases.includes(k);
  };
  return { ...p, kernels: p.kernels.filter((k) => releases.includes(k.release)), messages: p.messages.filter(keep) };
}

/** Whether kabi link's steps run after the links, as the options say (what the plan's summary shows). */
export function finishingSteps(opts: Pick<LinkApplyOptions, 'depmod' | 'initramfs'>): { depmod: boolean; initramfs: boolean } {
  return { depmod: (opts.depmod ?? 'native') !== 'none', initramfs: (opts.initramfs ?? 'auto') !== 'none' };
}
