import { isAbsolute, posix } from 'node:path';
import { checkAgainstKernel } from '../compat/engine.js';
import { withInTreeProviders } from '../compat/in-tree-providers.js';
import { loadKernelModel, type LoadedKernelModel, type ModuleCache } from '../compat/kernel-model.js';
import type { Candidate, Reason, Semantics, Verdict } from '../compat/types.js';
import type { KernelModule } from '../module/read-module.js';
import type { DepmodConfig } from '../depmod/config.js';
import type { KabiFs } from '../fs.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { resolveInRoot, hostPath } from '../kernel/paths.js';
import { KabiError } from '../errors.js';

/**
 * weak-modules validates links in a sandbox whose depmod.d says
 * `search external extra built-in weak-updates` with the sandboxed weak-updates as the
 * external directory: links outrank every module of the tree while being judged.
 */
export function sandboxConfig(moduleDir: string): DepmodConfig {
  return {
    search: [{ kind: 'external' }, { kind: 'dir', path: 'extra' }, { kind: 'built-in' }, { kind: 'dir', path: 'weak-updates' }],
    overrides: [],
    externals: [posix.join(moduleDir, 'weak-updates')],
    excludes: [],
    files: [],
  };
}

export interface ValidationResult {
  /** Links that survive (link → target). */
  readonly kept: Map<string, string>;
  /** Links dropped as incompatible, in the order a fixpoint would drop them, with their verdicts. */
  readonly dropped: { link: string; target: string; verdict: Verdict }[];
  /** Verdict per link whose target is a readable module. */
  readonly verdicts: Map<string, Verdict>;
}

export interface ValidateContext {
  fs: KabiFs;
  cache: ModuleCache;
  semantics: Semantics;
  /** The kernel's model without weak-updates (built once per kernel and reused). */
  model?: LoadedKernelModel;
}

/**
 * Where a link (system path) leads on the host, as the installed system sees it: the target
 * is followed inside the root, as in a chroot. A target spelling a host path under the root
 * (what the bash weak-modules writes with --basedir) dangles there, and so it is judged.
 * Undefined when the link dangles.
 */
export async function targetHost(fs: KabiFs, root: string, link: string, target: string): Promise<string | undefined> {
  const sys = isAbsolute(target) ? target : posix.join(posix.dirname(link), target);
  return resolveInRoot(fs, root, hostPath(root, sys));
}

export async function kernelModelForLinks(kernel: InstalledKernel, ctx: Pick<ValidateContext, 'fs' | 'cache'>): Promise<LoadedKernelModel> {
  return loadKernelModel(kernel, {
    fs: ctx.fs,
    cache: ctx.cache,
    depmodConfig: sandboxConfig(kernel.moduleDir),
    filterFiles: (f) => !(f.relPath !== undefined && (f.relPath === 'weak-updates' || f.relPath.startsWith('weak-updates/'))),
  });
}

/**
 * Judge a proposed weak-updates content for one kernel the way weak-modules does (depmod
 * semantics by default), resolved to a fixpoint: dropping one link can break another.
 * Links whose target is not a readable module are kept untouched (depmod does not see them).
 */
export async function validateLinks(kernel: InstalledKernel, links: ReadonlyMap<string, string>, ctx: ValidateContext): Promise<ValidationResult> {
  const model = ctx.model ?? (await kernelModelForLinks(kernel, ctx));
  const candidates: Candidate[] = [];
  for (const [link, target] of links) {
    let host: string | undefined;
    try {
      host = await targetHost(ctx.fs, kernel.root, link, target);
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
      continue; // a loop of links: depmod does not see it either
    }
    if (host === undefined) continue;
    try {
      candidates.push({ path: link, module: await ctx.cache.read(host) });
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
      // An unreadable module behind a link is left alone; depmod would only complain about it.
    }
  }
  const judged = await withInTreeProviders(model, candidates.map((c) => c.module), { cache: ctx.cache, fs: ctx.fs });
  const verdicts = checkAgainstKernel(candidates, judged, { semantics: ctx.semantics, fixedTree: true, cascade: true }).map((v) =>
    refuseAcrossReleases(v, candidates.find((c) => c.path === v.module)!.module, model),
  );
  const byLink = new Map(verdicts.map((v) => [v.module, v]));
  const kept = new Map(links);
  const dropped: ValidationResult['dropped'] = [];
  for (const v of verdicts) {
    if (!v.compatible) {
      dropped.push({ link: v.module, target: links.get(v.module)!, verdict: v });
      kept.delete(v.module);
    }
  }
  // Direct failures first, then those that failed because a provider was dropped (later rounds).
  dropped.sort((a, b) => rank(a.verdict) - rank(b.verdict));
  return { kept, dropped, verdicts: byLink };
}

/**
 * Without CONFIG_MODVERSIONS the loader takes a module only when its whole version magic is
 * the kernel's own (same_magic() has no CRCs to fall back on), whatever depmod's CRC-less check
 * says: every CRC is 0 there, so depmod semantics would link anything with matching names.
 */
function refuseAcrossReleases(v: Verdict, mod: KernelModule, model: LoadedKernelModel): Verdict {
  if (model.modversions || model.vermagic === undefined || mod.vermagic?.raw === model.vermagic.raw) return v;
  const built = mod.vermagic ? `built for ${mod.vermagic.release}` : 'without a version magic';
  const reason: Reason = {
    kind: 'vermagic',
    severity: 'error',
    message: `kernel ${model.release} has no modversions: only a module built for ${model.release} itself loads (${mod.name} is ${built})`,
  };
  return { ...v, compatible: false, reasons: [reason, ...v.reasons] };
}

function rank(v: Verdict): number {
  return v.reasons.some((r) => r.severity === 'error' && r.kind !== 'provider-incompatible') ? 0 : 1;
}

/** The symbols weak-modules lists after "… is not compatible with kernel K in symbols:". */
export function offendingSymbols(v: Verdict): string[] {
  const out: string[] = [];
  for (const r of v.reasons) if (r.severity === 'error' && r.symbol !== undefined && !out.includes(r.symbol)) out.push(r.symbol);
  return out;
}
