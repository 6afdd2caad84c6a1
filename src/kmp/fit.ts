import { posix } from 'node:path';
import { checkAgainstKernel } from '../compat/engine.js';
import { withInTreeProviders } from '../compat/in-tree-providers.js';
import { loadKernelModel, type LoadedKernelModel, type ModuleCache } from '../compat/kernel-model.js';
import type { Candidate, Verdict } from '../compat/types.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { keepsPriority, type ModuleFile } from '../kernel/module-tree.js';
import { targetHost } from '../linker/validate.js';
import { moduleNameFromPath } from '../module/read-module.js';
import type { KmpPolicy } from './settings.js';

export interface Judgement {
  readonly ok: boolean;
  /** What depmod would print (depmod verdict), or why a module would not load (loader verdict). */
  readonly lines: readonly string[];
}

/**
 * Decides whether a kernel's weak-updates, as a plan would leave it, is acceptable.
 *
 * weak-modules2 copies the kernel's tree into a sandbox, links the KMP there and runs
 * `depmod -ae -E symvers`: any "needs unknown symbol" or "disagrees about version" line, for
 * any module, refuses the KMP. The same question is answered here from the kernel's symvers
 * and the modules themselves, with the system's depmod.d search order deciding which file of a
 * name depmod would use. The kernel's own modules (kernel/) are taken as consistent with its
 * symvers; every module outside kernel/ is judged.
 *
 * With the loader verdict only the modules being linked are judged, by the kernel's loader
 * rules: an unrelated broken module elsewhere does not keep a KMP out.
 */
export class KernelJudge {
  private model: Promise<LoadedKernelModel> | undefined;

  constructor(
    readonly kernel: InstalledKernel,
    private readonly ctx: { fs: KabiFs; cache: ModuleCache; verdict: KmpPolicy['verdict'] },
  ) {}

  /** The kernel's tree without weak-updates: links are judged as proposed, not as they are. */
  private base(): Promise<LoadedKernelModel> {
    this.model ??= loadKernelModel(this.kernel, {
      fs: this.ctx.fs,
      cache: this.ctx.cache,
      filterFiles: (f) => !(f.relPath !== undefined && (f.relPath === 'weak-updates' || f.relPath.startsWith('weak-updates/'))),
    });
    return this.model;
  }

  /** Notes about what could not be checked (no symvers…), once per kernel. */
  async notes(): Promise<readonly string[]> {
    return (await this.base()).notes;
  }

  async hasSymvers(): Promise<boolean> {
    return (await this.base()).exportSource === 'symvers';
  }

  /**
   * Judge weak-updates holding `links` (link system path → target). `focus`: the links of the
   * KMP being added, the only ones the loader verdict looks at; with the depmod verdict every
   * module outside kernel/ counts.
   */
  async judge(links: ReadonlyMap<string, string>, focus: readonly string[] = [], verdict = this.ctx.verdict): Promise<Judgement> {
    const model = await this.base();
    const candidates: Candidate[] = [];
    for (const tm of model.modules.values()) if (tm.module && !tm.inTree) candidates.push({ path: tm.path, module: tm.module });
    const taken = new Set<string>();
    for (const [link, target] of [...links].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const host = await targetHost(this.ctx.fs, this.kernel.root, link, target);
      if (host === undefined) continue; // dangling: depmod skips it
      const name = moduleNameFromPath(posix.basename(link));
      if (taken.has(name)) continue; // the first of a name wins in a directory scan
      const file: ModuleFile = { name, path: link, relPath: posix.relative(this.kernel.moduleDir, link), host, isLink: true, external: false };
      const rival = model.chosen.get(name);
      if (rival && keepsPriority(model.depmodConfig, rival, file)) continue; // depmod uses the other file
      let module;
      try {
        module = await this.ctx.cache.read(host);
      } catch (e) {
        if (!(e instanceof KabiError)) throw e;
        continue; // not a module depmod could read: it says so, but no symbol error
      }
      taken.add(name);
      // The link shadows whatever the tree has of that name.
      const i = candidates.findIndex((c) => c.module.name === name);
      if (i >= 0) candidates.splice(i, 1);
      candidates.push({ path: link, module });
    }
    const judged = await withInTreeProviders(model, candidates.map((c) => c.module), { cache: this.ctx.cache, fs: this.ctx.fs });
    if (verdict === 'depmod') {
      const verdicts = checkAgainstKernel(candidates, judged, { semantics: 'depmod', cascade: false });
      const lines = errorLines(verdicts).map((m) => `depmod: WARNING: ${m}`);
      return { ok: lines.length === 0, lines };
    }
    const verdicts = checkAgainstKernel(candidates, judged, { semantics: 'loader' }).filter((v) => focus.includes(v.module));
    const lines = errorLines(verdicts).map((m) => `${this.kernel.release}: ${m}`);
    return { ok: lines.length === 0, lines };
  }
}

function errorLines(verdicts: readonly Verdict[]): string[] {
  const out: string[] = [];
  for (const v of verdicts) for (const r of v.reasons) if (r.severity === 'error') out.push(r.message);
  return out;
}
