import { posix } from 'node:path';
import type { ModuleCache } from '../compat/kernel-model.js';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { confinedPath, hostPath, resolveInRoot } from '../kernel/paths.js';
import { readWeakUpdates } from '../linker/weak-updates-state.js';
import { KernelJudge } from './fit.js';
import { moduleBasenames, weakUpdatesRel, type Kmp } from './kmp.js';
import type { KmpPolicy } from './settings.js';

/**
 * One kernel as a plan changes it: its weak-updates links (read once, then edited in memory),
 * the file names its updates/ and extra/ hold, and the judge that says whether a proposed
 * weak-updates is acceptable.
 */
export class KernelState {
  /** Links as planned so far (link system path → target). */
  links: Map<string, string>;

  private constructor(
    readonly kernel: InstalledKernel,
    /** Links as they are on disk. */
    readonly initial: ReadonlyMap<string, string>,
    /** Regular files in weak-updates/ (kept as they are, but they take a name). */
    private readonly weakFiles: ReadonlySet<string>,
    /** File names of every non-directory under updates/ and extra/. */
    private readonly treeNames: ReadonlySet<string>,
    readonly judge: KernelJudge,
    private readonly fs: KabiFs,
  ) {
    this.links = new Map(initial);
  }

  static async read(kernel: InstalledKernel, ctx: { fs: KabiFs; cache: ModuleCache; policy: KmpPolicy }): Promise<KernelState> {
    const wu = await readWeakUpdates(ctx.fs, kernel.root, kernel.moduleDir);
    const treeNames = new Set<string>();
    for (const dir of ['updates', 'extra']) await collectNames(ctx.fs, kernel.root, posix.join(kernel.moduleDir, dir), treeNames);
    const weakFiles = new Set(wu.files);
    return new KernelState(kernel, wu.links, weakFiles, treeNames, new KernelJudge(kernel, { fs: ctx.fs, cache: ctx.cache, verdict: ctx.policy.verdict }), ctx.fs);
  }

  get release(): string {
    return this.kernel.release;
  }

  /** The link that makes `module` available to this kernel. */
  linkFor(module: string): string {
    return posix.join(this.kernel.moduleDir, 'weak-updates', weakUpdatesRel(module));
  }

  linksOf(kmp: Pick<Kmp, 'modules'>): string[] {
    return kmp.modules.map((m) => this.linkFor(m));
  }

  /** A regular file (not a link) sits where a link would go. */
  isRegularFileAt(link: string): boolean {
    return this.weakFiles.has(link);
  }

  /**
   * Does the link point at `module`: the same string, or the same place inside the root (links
   * on the way followed, `/lib` → `usr/lib` included)? At --remove-kmp the module is already gone,
   * so the part of the path that no longer exists is compared as spelled.
   */
  async pointsAt(link: string, module: string): Promise<boolean> {
    const target = this.links.get(link);
    if (target === undefined) return false;
    if (target === module) return true;
    const root = this.kernel.root;
    const a = await confinedPath(this.fs, root, target).catch(() => undefined);
    const b = await confinedPath(this.fs, root, module).catch(() => undefined);
    return a !== undefined && a === b;
  }

  /** Is the KMP in this kernel: its own tree (a tree KMP built for it), or every module linked to it? */
  async isPresent(kmp: Kmp): Promise<boolean> {
    if (kmp.layout === 'tree' && kmp.buildRelease === this.release) return true;
    for (const m of kmp.modules) if (!(await this.pointsAt(this.linkFor(m), m))) return false;
    return true;
  }

  /** weak-modules2's basenames_are_unique: none of the KMP's file names is taken in weak-updates/, updates/ or extra/. */
  namesAreFree(kmp: Pick<Kmp, 'modules'>, links: ReadonlyMap<string, string> = this.links): boolean {
    const taken = new Set([...this.treeNames, ...[...this.weakFiles].map((f) => posix.basename(f))]);
    for (const l of links.keys()) taken.add(posix.basename(l));
    return moduleBasenames(kmp).every((b) => !taken.has(b));
  }
}

async function collectNames(fs: KabiFs, root: string, sysDir: string, out: Set<string>): Promise<void> {
  // Resolved inside the root once; below it nothing is followed (find -not -type d).
  const host = await resolveInRoot(fs, root, hostPath(root, sysDir));
  if (host === undefined) return;
  const walk = async (dir: string) => {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    for (const n of names) {
      const p = posix.join(dir, n);
      if ((await fs.lstat(p)).isDirectory()) await walk(p);
      else out.add(n);
    }
  };
  await walk(host);
}
