import { posix } from 'node:path';
import { ModuleCache } from '../compat/kernel-model.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { describeKernel, discoverKernels, type InstalledKernel } from '../kernel/discover.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import type { KernelPlan, LinkMode, LinkOp, Plan } from '../linker/types.js';
import type { Judgement } from './fit.js';
import { KernelState } from './kernel-state.js';
import { findKmps, isOlderKernel, moduleBasenames, newestFirst, type Kmp, type KmpContext } from './kmp.js';
import { isFlavorOf } from './nvr.js';
import { readPreserved } from './preserve.js';
import type { RpmDatabase } from './rpm-db.js';
import { WM2_POLICY, type KmpPolicy } from './settings.js';
import type { KernelRefresh, KmpLine, KmpPlan, PreserveOp, Wm2Mode } from './types.js';

export interface KmpPlanOptions {
  root?: string;
  fs?: KabiFs;
  db: RpmDatabase;
  policy?: KmpPolicy;
  cache?: ModuleCache;
}

/** The KMPs of one query, refused packages and warnings included. */
export interface KmpSet {
  /** Newest first; kabi's kept copies among them when keepFallback is on. */
  readonly kmps: Kmp[];
  /** Packages refused (weak-modules2 stops at the first and fails). */
  readonly refused: ReadonlySet<string>;
  /** Every package the rpm query listed. */
  readonly listed: ReadonlySet<string>;
}

const LINK_MODE: Record<Wm2Mode, LinkMode> = {
  'add-kmp': 'add-modules',
  'remove-kmp': 'remove-modules',
  'add-kernel': 'add-kernel',
  'add-kernel-modules': 'add-kernel',
  'remove-kernel-modules': 'add-kernel',
  'remove-kernel': 'remove-kernel',
};

/**
 * The state every planning rule works on: the kernels, their weak-updates as planned so far,
 * the lines to print, and the kernels to refresh. Rules change `KernelState.links` and call
 * refresh(); finish() turns that into a KmpPlan.
 */
export class Planner {
  readonly fs: KabiFs;
  readonly root: string;
  readonly policy: KmpPolicy;
  readonly cache: ModuleCache;
  readonly lines: KmpLine[] = [];
  failed = false;
  private readonly states = new Map<string, KernelState>();
  private readonly refreshes = new Map<string, { names: Set<string> | '_kernel_'; modules: Set<string> }>();
  private readonly refreshOrder: string[] = [];
  private readonly warnedSymvers = new Set<string>();
  readonly preserve: PreserveOp[] = [];
  removedKernel: string | undefined;
  readonly tidy: string[] = [];

  private constructor(
    readonly mode: Wm2Mode,
    readonly db: RpmDatabase,
    opts: KmpPlanOptions,
    readonly kernels: readonly InstalledKernel[],
  ) {
    this.fs = opts.fs ?? nodeFs;
    this.root = opts.root ?? '/';
    this.policy = opts.policy ?? WM2_POLICY;
    this.cache = opts.cache ?? new ModuleCache(this.fs);
  }

  static async create(mode: Wm2Mode, opts: KmpPlanOptions): Promise<Planner> {
    const root = opts.root ?? '/';
    const fs = opts.fs ?? nodeFs;
    // The shell glob /usr/lib/modules/* visits kernels in name order.
    const kernels = (await discoverKernels({ root, fs })).sort((a, b) => (a.release < b.release ? -1 : a.release > b.release ? 1 : 0));
    return new Planner(mode, opts.db, opts, kernels);
  }

  get kmpContext(): KmpContext {
    return { fs: this.fs, root: this.root, cache: this.cache, store: this.policy.store };
  }

  error(text: string): void {
    this.lines.push({ level: 'error', text });
  }
  warn(text: string): void {
    this.lines.push({ level: 'warn', text });
  }
  log(text: string): void {
    this.lines.push({ level: 'log', text });
  }
  dlog(text: string): void {
    this.lines.push({ level: 'dlog', text });
  }
  debug(text: string): void {
    this.lines.push({ level: 'debug', text });
  }

  /** The kernel's directory as SUSE spells it in messages. */
  async displayDir(release: string): Promise<string> {
    const usr = `/usr/lib/modules/${release}`;
    return (await resolveInRoot(this.fs, this.root, hostPath(this.root, usr)).catch(() => undefined)) ? usr : `/lib/modules/${release}`;
  }

  /**
   * A kernel by release: discovered, or else described from what is left (its directory, if
   * any is, and /boot), for a kernel whose files are gone or not there yet.
   */
  async kernel(release: string): Promise<{ kernel: InstalledKernel; hasModuleDir: boolean }> {
    const k = this.kernels.find((x) => x.release === release);
    if (k) return { kernel: k, hasModuleDir: true };
    let moduleDir = `/usr/lib/modules/${release}`;
    for (const dir of [`/lib/modules/${release}`, moduleDir]) {
      if ((await resolveInRoot(this.fs, this.root, hostPath(this.root, dir)).catch(() => undefined)) !== undefined) moduleDir = dir;
    }
    return { kernel: await describeKernel(this.fs, this.root, release, moduleDir), hasModuleDir: false };
  }

  /** Kernels of a flavor that weak-modules2 works on: a module directory and a System.map. */
  kernelsOf(flavor: string): InstalledKernel[] {
    return this.kernels.filter((k) => isFlavorOf(k.release, flavor) && k.systemMap !== undefined);
  }

  async state(k: InstalledKernel): Promise<KernelState> {
    let s = this.states.get(k.release);
    if (!s) {
      s = await KernelState.read(k, { fs: this.fs, cache: this.cache, policy: this.policy });
      this.states.set(k.release, s);
    }
    return s;
  }

  /** Judge a proposed weak-updates for a kernel (see KernelJudge), warning once about a kernel without symvers. */
  async judge(state: KernelState, links: ReadonlyMap<string, string>, focus: readonly string[] = [], verdict = this.policy.verdict): Promise<Judgement> {
    if (state.kernel.symvers === undefined && !this.warnedSymvers.has(state.release)) {
      this.warnedSymvers.add(state.release);
      this.warn(`WARNING: symvers.gz not found for ${state.release}, symbol resolution will be unreliable`);
    }
    return state.judge.judge(links, focus, verdict);
  }

  /**
   * The installed KMPs matching a package-name glob, newest first, with kabi's kept copies of
   * that name when keepFallback is on (only while some version is still installed). A
   * refused package fails the run.
   */
  async kmps(nameGlob: string): Promise<KmpSet> {
    const found = await findKmps(this.db, nameGlob, this.kmpContext);
    for (const w of found.warnings) this.warn(w);
    for (const r of found.refusals) this.error(r.message);
    const kmps = [...found.kmps];
    if (this.policy.keepFallback) {
      const re = globRegExp(nameGlob);
      const installed = new Set(found.kmps.map((k) => `${k.family}-kmp-${k.flavor}`));
      for (const p of await readPreserved(this.fs, this.root)) {
        if (!re.test(p.name)) continue;
        if (installed.has(`${p.family}-kmp-${p.flavor}`)) kmps.push(p);
        else this.preserve.push({ kind: 'drop', kmp: p }); // no version of it is installed any more
      }
    }
    return { kmps: kmps.sort(newestFirst), refused: new Set(found.refusals.map((r) => r.nvr)), listed: found.listed };
  }

  /** forwardOnly: a KMP never goes into a kernel older than the one it was built for. */
  eligible(kmp: Kmp, release: string): boolean {
    if (!this.policy.forwardOnly) return true;
    if (kmp.buildRelease === undefined) return false;
    return !isOlderKernel(release, kmp.buildRelease);
  }

  /** weak-modules2's run_depmod_build_initrd for a kernel, once per kernel, changes merged. */
  refresh(release: string, changed: readonly string[] | '_kernel_', modules: readonly string[] = []): void {
    let r = this.refreshes.get(release);
    if (!r) {
      r = { names: new Set(), modules: new Set() };
      this.refreshes.set(release, r);
      this.refreshOrder.push(release);
    }
    if (changed === '_kernel_') r.names = '_kernel_';
    else if (r.names !== '_kernel_') for (const n of changed) r.names.add(n);
    for (const m of modules) r.modules.add(m);
  }

  /** Refresh a kernel for a KMP change: its file names, its links there, and its own files. */
  refreshFor(state: KernelState, ...kmps: Kmp[]): void {
    const modules: string[] = [];
    for (const k of kmps) {
      modules.push(...state.linksOf(k));
      if (k.layout === 'tree' && k.buildRelease === state.release) modules.push(...k.modules);
    }
    this.refresh(state.release, kmps.flatMap((k) => moduleBasenames(k)), modules);
  }

  finish(): KmpPlan {
    const kernels: KernelPlan[] = [];
    const releases = new Set([...this.states.keys(), ...this.refreshOrder]);
    for (const release of [...releases].sort()) {
      const s = this.states.get(release);
      const ops = s ? diffLinks(s.initial, s.links) : [];
      const r = this.refreshes.get(release);
      if (ops.length === 0 && !r && this.removedKernel !== release) continue;
      const k = this.kernels.find((x) => x.release === release);
      kernels.push({
        release,
        installed: k !== undefined,
        ops,
        depmod: r !== undefined && k !== undefined && k.systemMap !== undefined,
        initramfs: r !== undefined,
        fellBack: false,
        changedModules: [...new Set([...ops.map((o) => o.link), ...(r?.modules ?? [])])],
      });
    }
    const links: Plan = { mode: LINK_MODE[this.mode], root: this.root, kernels, messages: [], warnings: [] };
    const refresh: KernelRefresh[] = this.refreshOrder.map((release) => {
      const r = this.refreshes.get(release)!;
      return { release, changed: r.names === '_kernel_' ? '_kernel_' : [...r.names].sort(), changedModules: [...r.modules] };
    });
    return { mode: this.mode, root: this.root, links, refresh, lines: this.lines, failed: this.failed, preserve: this.preserve, removedKernel: this.removedKernel, tidy: this.tidy };
  }
}

function diffLinks(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): LinkOp[] {
  const ops: LinkOp[] = [];
  for (const [link, target] of after) {
    const prev = before.get(link);
    if (prev === undefined) ops.push({ kind: 'add', link, target, why: 'kmp' });
    else if (prev !== target) ops.push({ kind: 'replace', link, target, previousTarget: prev, why: 'kmp' });
  }
  for (const [link, prev] of before) if (!after.has(link)) ops.push({ kind: 'remove', link, previousTarget: prev, why: 'kmp' });
  return ops;
}

/** An rpm -qa name glob as a RegExp (only `*`, `?` and `[…]` mean anything). */
export function globRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|\\[\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The links of one KMP in a kernel's planned weak-updates, for messages. */
export function describeLinks(state: KernelState, kmp: Kmp): string {
  return state.linksOf(kmp).map((l) => posix.relative(state.kernel.moduleDir, l)).join(' ');
}
