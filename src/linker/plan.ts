import { posix, resolve } from 'node:path';
import { ModuleCache } from '../compat/kernel-model.js';
import type { Semantics, Verdict } from '../compat/types.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound, nodeFs } from '../fs.js';
import { discoverKernels, type InstalledKernel } from '../kernel/discover.js';
import { confinedPath, hostPath, resolveInRoot, systemPathOf } from '../kernel/paths.js';
import { rpmvercmp } from '../kernel/rpmvercmp.js';
import { isModuleFileName, type KernelModule } from '../module/read-module.js';
import type { KernelPlan, LinkMode, LinkOp, LinkPolicy, Plan } from './types.js';
import { kernelModelForLinks, offendingSymbols, targetHost, validateLinks, type ValidateContext } from './validate.js';
import { isInKernelTree, moduleReleaseFromPath, weakLinkPath } from './weak-link-name.js';
import { modulesBase } from './root-lock.js';
import { readWeakUpdates } from './weak-updates-state.js';

export interface PlanOptions {
  /** System root (weak-modules --basedir). */
  root?: string;
  fs?: KabiFs;
  cwd?: string;
  /** depmod (the default: weak-modules' own decision) or loader. */
  semantics?: Semantics;
  policy?: LinkPolicy;
  /**
   * A module named on the command line that is missing, a special file or not a module:
   * `error` (the default: nothing is planned) or `warn` (weak-modules: skipped with a
   * warning; a missing one is taken as a removed module, as el9 does).
   */
  badInput?: BadInput;
}

/** A module named on the command line or stdin. */
export interface ModuleInput {
  /** As given, made absolute against the cwd; never canonicalised (links are compared as strings). */
  readonly given: string;
  /** Where its bytes are on the host, resolved inside the root; undefined when it is not there. */
  readonly host: string | undefined;
  /** The path the installed system knows it by. */
  readonly system: string;
  readonly module: KernelModule | undefined;
  /** The kernel it was built for: its vermagic, or the path for a file that is gone. */
  readonly release: string | undefined;
}

interface Ctx extends ValidateContext {
  root: string;
  kernels: InstalledKernel[];
  policy: LinkPolicy;
  messages: string[];
  warnings: string[];
  /** Kernels left out: their state could not be read (each has a warning). */
  skipped: Set<string>;
}

async function context(opts: PlanOptions): Promise<Ctx> {
  const fs = opts.fs ?? nodeFs;
  const root = opts.root ?? '/';
  const kernels = (await discoverKernels({ root, fs })).sort((a, b) => (a.release < b.release ? -1 : a.release > b.release ? 1 : 0));
  const warnings: string[] = [];
  if ((await modulesBase(fs, root)) === undefined) warnings.push(`${hostPath(root, '/lib/modules')}: no such directory; no kernel to work on`);
  return { fs, root, kernels, cache: new ModuleCache(fs), semantics: opts.semantics ?? 'depmod', policy: opts.policy ?? {}, messages: [], warnings, skipped: new Set() };
}

export function isInstalled(k: InstalledKernel): boolean {
  return k.symvers !== undefined && k.systemMap !== undefined;
}

/**
 * Plan each usable kernel in turn. A kernel whose state cannot be read (a weak-updates that
 * is a symlink, a symvers that is not one, an unreadable directory) is left out with a
 * warning; the others are planned as usual.
 */
async function eachKernel(ctx: Ctx, fn: (k: InstalledKernel) => Promise<void>): Promise<void> {
  for (const k of ctx.kernels) {
    if (!usable(k, ctx.policy)) continue;
    try {
      await fn(k);
    } catch (e) {
      if (!(e instanceof KabiError) && errnoCode(e) === undefined) throw e;
      skipKernel(ctx, k.release, e as Error);
    }
  }
}

function skipKernel(ctx: Ctx, release: string, e: Error): void {
  ctx.skipped.add(release);
  ctx.warnings.push(`kernel ${release} left as it is: ${e.message}`);
}

/** Where a link leads inside the root; undefined when it dangles or loops. */
async function resolves(ctx: Ctx, link: string, target: string): Promise<string | undefined> {
  try {
    return await targetHost(ctx.fs, ctx.root, link, target);
  } catch (e) {
    if (e instanceof KabiError) return undefined;
    throw e;
  }
}

/** A kernel the linker works on under this policy. */
function usable(k: InstalledKernel, policy: LinkPolicy): boolean {
  return policy.requireSymvers === false ? true : isInstalled(k);
}

/** What to do with a module named on the command line that is missing, not a regular file or not a module. */
export type BadInput = 'warn' | 'error';

/**
 * Read the modules named on the command line (`add`, `remove`) or found in another kernel's
 * tree (`source`). Each path is taken as the installed system sees it: a path under the root
 * is spelled without it, any other as the system's own, and symlinks are followed inside the
 * root only (as a chroot would), so what is judged is what the system will load.
 *
 * A file that is not there is a removed module (weak-modules' reading, which --remove-modules
 * needs; on --add it is warned about, or an error). A special file or a file that is not a
 * module is skipped with a warning, or an error for `add` when `badInput` says so.
 */
export async function readInputs(paths: readonly string[], opts: PlanOptions, cache: ModuleCache, role: 'add' | 'remove' | 'source' = 'add', warnings: string[] = []): Promise<ModuleInput[]> {
  const root = opts.root ?? '/';
  const fs = opts.fs ?? nodeFs;
  const refuse = role === 'add' && opts.badInput !== 'warn';
  const out: ModuleInput[] = [];
  for (const p of paths) {
    if (p === '') continue;
    const given = resolve(opts.cwd ?? process.cwd(), p);
    const system = systemPathOf(root, given) ?? given;
    let host: string | undefined;
    let module: KernelModule | undefined;
    let problem: string | undefined;
    try {
      host = await resolveInRoot(fs, root, hostPath(root, system));
      if (host !== undefined && !(await fs.stat(host)).isFile()) problem = 'not a regular file';
      else if (host !== undefined) module = await cache.read(host);
    } catch (e) {
      if (!(e instanceof KabiError) && errnoCode(e) === undefined) throw e;
      problem = e instanceof KabiError && e.file !== undefined ? e.detail : (e as Error).message;
    }
    const release = module?.vermagic?.release ?? moduleReleaseFromPath(system);
    if (problem !== undefined) {
      if (refuse) throw new KabiError('MODULE_FORMAT', `${problem}; nothing was changed`, { file: given });
      if (role !== 'remove') warnings.push(`${given}: ${problem}; skipped`);
      if (role === 'source') continue;
      // Only its path is known: the module's own kernel is still refreshed, as for a removed one.
      out.push({ given, host: undefined, system, module: undefined, release: moduleReleaseFromPath(system) });
      continue;
    }
    if (host === undefined && role === 'add') {
      if (refuse) throw new KabiError('IO', `no such module file${root !== '/' ? ` under ${root}` : ''}; nothing was changed`, { file: given });
      warnings.push(`${given}: no such file; taken as a removed module`);
    }
    out.push({ given, host, system, module, release });
  }
  return out;
}

/** Links point at the module as the installed system sees it (never a host path under --basedir). */
function linkTarget(m: ModuleInput): string {
  return m.system;
}

function base(p: string): string {
  return posix.basename(p);
}

/** Decide links for one kernel: tentatively link `adds`, validate, and fall back or force. */
async function linkIntoKernel(
  k: InstalledKernel,
  current: ReadonlyMap<string, string>,
  adds: { link: string; target: string; input?: ModuleInput }[],
  ctx: Ctx,
  force: boolean,
  modelCache: Map<string, Awaited<ReturnType<typeof kernelModelForLinks>>>,
): Promise<{ final: Map<string, string>; fellBack: boolean; verdicts: Map<string, Verdict>; accepted: Set<string> }> {
  const desired = new Map(current);
  for (const a of adds) desired.set(a.link, a.target);
  let model = modelCache.get(k.release);
  if (!model) {
    model = await kernelModelForLinks(k, ctx);
    modelCache.set(k.release, model);
  }
  const result = await validateLinks(k, desired, { ...ctx, model });
  for (const d of result.dropped) {
    const mk = moduleReleaseFromPath(d.target) ?? d.verdict.name;
    const fromInput = adds.find((a) => a.link === d.link)?.input;
    const symbols = offendingSymbols(d.verdict);
    // A refusal that names no symbol (a kernel without modversions) says its reason instead.
    const why = symbols.length > 0 ? ` in symbols: ${symbols.map((s) => ' ' + s).join('')}` : `: ${d.verdict.reasons.find((r) => r.severity === 'error')?.message ?? 'no reason given'}`;
    ctx.messages.push(`Module ${base(d.link)} from kernel ${fromInput?.release ?? mk} is not compatible with kernel ${k.release}${why}`);
  }
  const accepted = new Set<string>();
  for (const a of adds) {
    if (result.kept.get(a.link) === a.target) {
      accepted.add(a.link);
      if (a.input) ctx.messages.push(`Module ${base(a.input.given)} from kernel ${a.input.release} is compatible with kernel ${k.release}`);
    }
  }
  if (result.dropped.length > 0 && !force) {
    ctx.messages.push(`Falling back weak-modules state for kernel ${k.release}`);
    return { final: new Map(current), fellBack: true, verdicts: result.verdicts, accepted: new Set() };
  }
  return { final: result.kept, fellBack: false, verdicts: result.verdicts, accepted };
}

function diff(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>, verdicts: Map<string, Verdict>, why: (l: string) => string): LinkOp[] {
  const ops: LinkOp[] = [];
  for (const [link, target] of after) {
    const prev = before.get(link);
    const verdict = verdicts.get(link);
    if (prev === undefined) ops.push({ kind: 'add', link, target, ...(verdict ? { verdict } : {}), why: why(link) });
    else if (prev !== target) ops.push({ kind: 'replace', link, target, previousTarget: prev, ...(verdict ? { verdict } : {}), why: why(link) });
  }
  for (const [link, prev] of before) {
    if (!after.has(link)) {
      const verdict = verdicts.get(link);
      ops.push({ kind: 'remove', link, previousTarget: prev, ...(verdict ? { verdict } : {}), why: why(link) });
    }
  }
  return ops;
}

function announceRemovals(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>, k: string, ctx: Ctx) {
  for (const link of before.keys()) if (!after.has(link)) ctx.messages.push(`Removing compatible module ${base(link)} from kernel ${k}`);
}

type PartialPlan = Omit<KernelPlan, 'changedModules'>;

function finish(mode: LinkMode, ctx: Ctx, perKernel: Map<string, PartialPlan>, alsoChanged: Map<string, string[]>): Plan {
  const kernels: KernelPlan[] = [];
  const releases = new Set([...perKernel.keys(), ...alsoChanged.keys()].filter((r) => !ctx.skipped.has(r)));
  for (const r of [...releases].sort()) {
    const kp = perKernel.get(r);
    const k = ctx.kernels.find((x) => x.release === r);
    const changed = alsoChanged.has(r) || (kp?.depmod ?? false);
    const ops = kp?.ops ?? [];
    kernels.push({
      release: r,
      installed: k !== undefined && usable(k, ctx.policy),
      ops,
      depmod: changed,
      initramfs: changed,
      fellBack: kp?.fellBack ?? false,
      changedModules: [...new Set([...ops.map((o) => o.link), ...(alsoChanged.get(r) ?? [])])],
    });
  }
  return { mode, root: ctx.root, kernels, messages: ctx.messages, warnings: ctx.warnings };
}

/** weak-modules --add-modules. */
export async function planAddModules(paths: readonly string[], opts: PlanOptions = {}): Promise<Plan> {
  const ctx = await context(opts);
  const given = await readInputs(paths, opts, ctx.cache, 'add', ctx.warnings);
  const inputs = given.filter((m) => m.module !== undefined);
  const perKernel = new Map<string, PartialPlan>();
  const alsoChanged = new Map<string, string[]>();
  const models = new Map<string, Awaited<ReturnType<typeof kernelModelForLinks>>>();
  await eachKernel(ctx, async (k) => {
    const state = await readWeakUpdates(ctx.fs, ctx.root, k.moduleDir);
    const relinked: string[] = [];
    const adds: { link: string; target: string; input: ModuleInput }[] = [];
    for (const m of chooseVersions(inputs, ctx.policy)) {
      if (!eligible(m, k, ctx.policy)) continue;
      const link = weakLinkPath(m.system, m.release, k.release);
      const target = linkTarget(m);
      const sub = link.slice(posix.join(k.moduleDir, 'weak-updates').length + 1);
      if (await exists(ctx, posix.join(k.moduleDir, 'extra', sub))) {
        ctx.messages.push(`found ${base(m.given)} for ${k.release} while installing for ${m.release}, update case?`);
      }
      if (state.links.get(link) === target && (await resolves(ctx, link, target)) !== undefined) {
        ctx.messages.push(`weak module for ${base(m.given)} already exists for kernel ${k.release}, update case?`);
        // The link stays as it is but what it points at was replaced: depmod must read it again.
        relinked.push(link);
      }
      adds.push({ link, target, input: m });
    }
    if (adds.length === 0) return;
    const r = await linkIntoKernel(k, state.links, adds, ctx, false, models);
    const multi = ctx.policy.multiVersion ? await retryOlderVersions(k, r, adds, inputs, ctx, models) : r;
    announceRemovals(state.links, multi.final, k.release, ctx);
    const ops = diff(state.links, multi.final, multi.verdicts, (l) => (multi.final.has(l) ? 'compatible' : 'incompatible'));
    const updateCase = relinked.length > 0;
    if (updateCase) alsoChanged.set(k.release, [...(alsoChanged.get(k.release) ?? []), ...relinked]);
    perKernel.set(k.release, { release: k.release, installed: true, ops, depmod: ops.length > 0 || updateCase, initramfs: ops.length > 0 || updateCase, fellBack: multi.fellBack });
  });
  // weak-modules always refreshes each input module's own kernel (also for a file that is gone).
  for (const m of given) if (m.release !== undefined) alsoChanged.set(m.release, [...(alsoChanged.get(m.release) ?? []), m.system]);
  return finish('add-modules', ctx, perKernel, alsoChanged);
}

/** Never into the module's own kernel; with forward-only, only into newer kernels. */
function eligible(m: ModuleInput, k: InstalledKernel, policy: LinkPolicy): boolean {
  if (isInKernelTree(m.system, k.release)) return false;
  return !(policy.forwardOnly && m.release !== undefined && rpmvercmp(k.release, m.release) <= 0);
}

/** With several versions of one module among the inputs, keep only the newest for the first attempt. */
function chooseVersions(inputs: readonly ModuleInput[], policy: LinkPolicy): ModuleInput[] {
  if (!policy.multiVersion) return [...inputs];
  const byName = new Map<string, ModuleInput[]>();
  for (const m of inputs) {
    const n = m.module!.name;
    byName.set(n, [...(byName.get(n) ?? []), m]);
  }
  return [...byName.values()].map((list) => list.sort(newerFirst)[0]!);
}

/** Newest first: modinfo version=, then the kernel it was built for. */
export function newerFirst(a: ModuleInput, b: ModuleInput): number {
  const va = a.module?.modinfo.get('version');
  const vb = b.module?.modinfo.get('version');
  if (va !== undefined && vb !== undefined && va !== vb) return rpmvercmp(vb, va);
  return rpmvercmp(b.release ?? '', a.release ?? '');
}

/** multiVersion: where the newest version was refused, try the next older one, kernel by kernel. */
async function retryOlderVersions(
  k: InstalledKernel,
  first: Awaited<ReturnType<typeof linkIntoKernel>>,
  adds: { link: string; target: string; input: ModuleInput }[],
  inputs: readonly ModuleInput[],
  ctx: Ctx,
  models: Map<string, Awaited<ReturnType<typeof kernelModelForLinks>>>,
) {
  let result = first;
  let current = first.fellBack ? null : first.final;
  for (const a of adds) {
    if (result.accepted.has(a.link)) continue;
    const older = inputs.filter((m) => m !== a.input && m.module!.name === a.input.module!.name).sort(newerFirst);
    for (const m of older) {
      if (!eligible(m, k, ctx.policy)) continue;
      const link = weakLinkPath(m.system, m.release, k.release);
      const base = current ?? first.final;
      const r = await linkIntoKernel(k, base, [{ link, target: linkTarget(m), input: m }], ctx, false, models);
      if (!r.fellBack) {
        result = { ...r, accepted: new Set([...result.accepted, ...r.accepted]) };
        current = r.final;
        break;
      }
    }
  }
  return result;
}

/** The host path of a system path, its directories resolved inside the root (the last component is not followed: for lstat). */
const inRoot = (ctx: Ctx, sys: string): Promise<string> => confinedPath(ctx.fs, ctx.root, sys, { followLast: false });
/** The host path of a directory to list, resolved inside the root to the end (a link to it is followed as a chroot would). */
const dirInRoot = (ctx: Ctx, sys: string): Promise<string> => confinedPath(ctx.fs, ctx.root, sys);

async function exists(ctx: Ctx, sys: string): Promise<boolean> {
  try {
    await ctx.fs.lstat(await inRoot(ctx, sys));
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** weak-modules --remove-modules. */
export async function planRemoveModules(paths: readonly string[], opts: PlanOptions = {}): Promise<Plan> {
  const ctx = await context(opts);
  const inputs = await readInputs(paths, opts, ctx.cache, 'remove', ctx.warnings);
  const perKernel = new Map<string, PartialPlan>();
  const alsoChanged = new Map<string, string[]>();
  const models = new Map<string, Awaited<ReturnType<typeof kernelModelForLinks>>>();
  await eachKernel(ctx, async (k) => {
    const state = await readWeakUpdates(ctx.fs, ctx.root, k.moduleDir);
    const next = new Map(state.links);
    for (const m of inputs) {
      const link = weakLinkPath(m.system, m.release, k.release);
      const target = state.links.get(link);
      if (target === undefined) continue;
      // Links are matched as strings, like the original; one the bash tool wrote under
      // --basedir carries the root in its target.
      if (target !== linkTarget(m) && target !== m.given) {
        ctx.messages.push(`Skipping symlink ${link}`);
        continue;
      }
      // An RPM upgrade adds the new version before removing the old one: while the file is
      // still there, the link is the new package's and stays.
      if ((await resolves(ctx, link, target)) === undefined) next.delete(link);
    }
    // Whatever the removal broke goes too (no fallback when removing).
    const r = await linkIntoKernel(k, next, [], ctx, true, models);
    announceRemovals(state.links, r.final, k.release, ctx);
    const ops = diff(state.links, r.final, r.verdicts, (l) => (next.has(l) ? 'lost a provider' : 'module removed'));
    if (ops.length > 0) perKernel.set(k.release, { release: k.release, installed: true, ops, depmod: true, initramfs: true, fellBack: false });
  });
  for (const m of inputs) if (m.release !== undefined) alsoChanged.set(m.release, [...(alsoChanged.get(m.release) ?? []), m.system]);
  return finish('remove-modules', ctx, perKernel, alsoChanged);
}

/** The candidate paths weak-modules tries for a kernel's symvers, in its order (for the error message). */
export function symversCandidates(release: string): string[] {
  return [`/boot/symvers-${release}.xz`, `/lib/modules/${release}/symvers.xz`, `/boot/symvers-${release}.gz`, `/lib/modules/${release}/symvers.gz`];
}

/** weak-modules --add-kernel K. */
export async function planAddKernel(release: string, opts: PlanOptions = {}): Promise<Plan> {
  const ctx = await context(opts);
  const k = ctx.kernels.find((x) => x.release === release);
  if (ctx.policy.requireSymvers === false) {
    if (!k) throw new KabiError('KERNEL_NOT_FOUND', `kernel ${release} is not installed under ${ctx.root} (no lib/modules/${release})`);
  } else if (!k?.symvers) {
    throw new KabiError('KERNEL_NOT_FOUND', `Symvers dump file is not found in ${symversCandidates(release).map((p) => hostPath(ctx.root, p)).join(' ')}`);
  }
  const perKernel = new Map<string, PartialPlan>();
  if (!k || !usable(k, ctx.policy)) return finish('add-kernel', ctx, perKernel, new Map());
  try {
    const ops = await addKernelOps(k, ctx, opts);
    if (ops.length > 0) perKernel.set(release, { release, installed: true, ops, depmod: true, initramfs: true, fellBack: false });
  } catch (e) {
    if (!(e instanceof KabiError) && errnoCode(e) === undefined) throw e;
    skipKernel(ctx, release, e as Error);
  }
  return finish('add-kernel', ctx, perKernel, new Map());
}

async function addKernelOps(k: InstalledKernel, ctx: Ctx, opts: PlanOptions): Promise<LinkOp[]> {
  const release = k.release;
  const state = await readWeakUpdates(ctx.fs, ctx.root, k.moduleDir);
  let current: Map<string, string> = new Map(state.links);
  const verdicts = new Map<string, Verdict>();
  const taken = new Set<string>(); // basenames accepted from a newer kernel
  const models = new Map<string, Awaited<ReturnType<typeof kernelModelForLinks>>>();
  const sources = ctx.kernels.filter((s) => s.release !== release && (!ctx.policy.forwardOnly || rpmvercmp(release, s.release) > 0)).sort((a, b) => rpmvercmp(b.release, a.release));
  const seen = new Set<string>();
  for (const s of sources) {
    let inputs: ModuleInput[];
    try {
      const found = (await sourceModules(ctx, s)).filter((p) => !seen.has(p));
      for (const p of found) seen.add(p);
      if (found.length === 0) continue;
      inputs = (await readInputs(found.map((p) => hostPath(ctx.root, p)), opts, ctx.cache, 'source', ctx.warnings)).filter((m) => m.module !== undefined);
    } catch (e) {
      // One kernel's tree that cannot be read gives no modules; the others still do.
      if (!(e instanceof KabiError) && errnoCode(e) === undefined) throw e;
      ctx.warnings.push(`modules of kernel ${s.release} left out: ${(e as Error).message}`);
      continue;
    }
    const groups = dependencyGroups(inputs);
    // Independent modules are judged one by one in a single pass; modules that need each
    // other are linked all-or-nothing, group by group.
    const batches: { members: ModuleInput[]; force: boolean }[] = [
      { members: groups.filter((g) => g.length === 1).map((g) => g[0]!), force: true },
      ...groups.filter((g) => g.length > 1).map((g) => ({ members: g, force: false })),
    ];
    for (const b of batches) {
      const members = b.members.filter((m) => !taken.has(base(m.system)));
      if (members.length === 0) continue;
      const adds = members.map((m) => ({ link: weakLinkPath(m.system, m.release, release), target: linkTarget(m), input: m }));
      const r = await linkIntoKernel(k, current, adds, ctx, b.force, models);
      r.verdicts.forEach((v, l) => verdicts.set(l, v));
      current = r.final;
      for (const a of adds) if (r.accepted.has(a.link)) taken.add(base(a.input.system));
    }
  }
  announceRemovals(state.links, current, release, ctx);
  return diff(state.links, current, verdicts, () => 'add-kernel');
}

/** weak-modules --remove-kernel K: empty its weak-updates (the directory itself stays). */
export async function planRemoveKernel(release: string, opts: PlanOptions = {}): Promise<Plan> {
  const ctx = await context(opts);
  const k = ctx.kernels.find((x) => x.release === release);
  const perKernel = new Map<string, PartialPlan>();
  if (k) {
    try {
      const state = await readWeakUpdates(ctx.fs, ctx.root, k.moduleDir);
      const ops: LinkOp[] = [...state.links].map(([link, prev]) => ({ kind: 'remove' as const, link, previousTarget: prev, why: 'kernel removed' }));
      if (ops.length > 0 || state.dirs.length > 0) {
        perKernel.set(release, { release, installed: isInstalled(k), ops, depmod: false, initramfs: false, fellBack: false });
      }
    } catch (e) {
      if (!(e instanceof KabiError) && errnoCode(e) === undefined) throw e;
      skipKernel(ctx, release, e as Error);
    }
  }
  return finish('remove-kernel', ctx, perKernel, new Map());
}

/**
 * The modules --add-kernel considers from one source kernel: its extra/ (weak-modules), or
 * with sources 'all' every out-of-tree place: extra/, updates/, other top-level directories
 * but kernel/ and weak-updates/, depmod.d external directories, and the targets of its own
 * weak-updates links (modules kept in a store outside any tree).
 */
async function sourceModules(ctx: Ctx, s: InstalledKernel): Promise<string[]> {
  if (ctx.policy.sources !== 'all') return listModules(ctx, posix.join(s.moduleDir, 'extra'));
  const out: string[] = [];
  let names: string[] = [];
  try {
    names = (await ctx.fs.readdir(await dirInRoot(ctx, s.moduleDir))).sort();
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  for (const n of names) {
    if (n === 'kernel' || n === 'weak-updates' || n === 'build' || n === 'source') continue;
    const p = posix.join(s.moduleDir, n);
    const st = await ctx.fs.lstat(await inRoot(ctx, p));
    if (st.isDirectory()) out.push(...(await listModules(ctx, p)));
  }
  const state = await readWeakUpdates(ctx.fs, ctx.root, s.moduleDir);
  for (const [link, target] of state.links) {
    const host = await resolves(ctx, link, target);
    const sys = host === undefined ? undefined : systemPathOf(ctx.root, host);
    // Only modules outside every kernel tree: those inside one are found from their own kernel.
    if (sys !== undefined && !/^\/(usr\/)?lib\/modules\//.test(sys) && isModuleFileName(sys)) out.push(sys);
  }
  return [...new Set(out)];
}

async function listModules(ctx: Ctx, sysDir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    let names: string[];
    try {
      names = (await ctx.fs.readdir(await dirInRoot(ctx, d))).sort();
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    for (const n of names) {
      const p = posix.join(d, n);
      const st = await ctx.fs.lstat(await inRoot(ctx, p));
      if (st.isDirectory()) await walk(p);
      else if (isModuleFileName(n)) out.push(p);
    }
  };
  await walk(sysDir);
  return out;
}

/**
 * Group a kernel's extra/ modules by dependency closure (weak-modules' make_groups): modules
 * that use each other's symbols are linked all-or-nothing.
 */
function dependencyGroups(inputs: ModuleInput[]): ModuleInput[][] {
  const parent = inputs.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const owner = new Map<string, number>();
  inputs.forEach((m, i) => m.module!.exports.forEach((e) => owner.set(e.symbol, i)));
  inputs.forEach((m, i) => {
    for (const u of m.module!.undefinedSymbols) {
      const j = owner.get(u.name);
      if (j !== undefined && j !== i) parent[find(i)] = find(j);
    }
  });
  const groups = new Map<number, ModuleInput[]>();
  inputs.forEach((m, i) => groups.set(find(i), [...(groups.get(find(i)) ?? []), m]));
  return [...groups.values()];
}

