import { posix } from 'node:path';
import type { ModuleCache } from '../compat/kernel-model.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { rpmvercmp } from '../kernel/rpmvercmp.js';
import { KMP_IN_KERNEL, kernelFlavor, parseKmpName, type KmpName } from './nvr.js';
import type { RpmDatabase } from './rpm-db.js';

/**
 * A kernel module package as weak-modules2 sees it: its name, the module files it owns, and the
 * kernel it was built for.
 *
 * `tree` KMPs (every KMP SUSE builds today) install into /usr/lib/modules/<K>/updates/ or
 * extra/ of the kernel they were built for. `store` KMPs (opt-in, KABI_KMP_STORE) install
 * anywhere outside the module hierarchy, one directory per package version, so versions built
 * for the same kernel no longer collide; the kernel they were built for is read from the
 * modules' vermagic, and they are linked into every kernel they fit, their own included.
 */
export interface Kmp extends KmpName {
  readonly epoch: number | undefined;
  /** System paths of its module files, as the package lists them. */
  readonly modules: readonly string[];
  /** The kernel it was built for; undefined for a store KMP whose files are gone and whose name does not say. */
  readonly buildRelease: string | undefined;
  readonly layout: 'tree' | 'store';
  /** From the rpm database, from standard input (--remove-kmp), or a copy kabi keeps (keepFallback). */
  readonly origin: 'rpm' | 'stdin' | 'preserved';
}

const MODULE_FILE = /\.ko(\.(gz|xz|zst))?$/;
const TREE_MODULE = /^\/(?:usr\/)?lib\/modules\/([^/]+)\/(.+\.ko(?:\.(?:gz|xz|zst))?)$/;

/** Where a module file lives: in a kernel's tree (its release and the path below it), or elsewhere. */
export function modulePlace(path: string): { tree: true; release: string; rel: string } | { tree: false } {
  const m = TREE_MODULE.exec(path);
  return m ? { tree: true, release: m[1]!, rel: m[2]! } : { tree: false };
}

export function isModulePath(path: string): boolean {
  return MODULE_FILE.test(path);
}

/**
 * The path below a kernel's weak-updates/ where a module is linked: a tree module keeps its
 * path below its kernel's directory (`updates/foo/bar.ko`, as weak-modules2 does); a store
 * module its path from its last `updates/` or `extra/` directory, else `updates/<file>`.
 */
export function weakUpdatesRel(module: string): string {
  const place = modulePlace(module);
  if (place.tree) return place.rel;
  const parts = module.split('/');
  for (let i = parts.length - 2; i >= 1; i--) if (parts[i] === 'updates' || parts[i] === 'extra') return parts.slice(i).join('/');
  return `updates/${posix.basename(module)}`;
}

/** The kernel a KMP's name says it was built for (`…_k6.4.0_150600.21-…` or `name-k6.4.0_150600.21-kmp-…`). */
export function releaseFromName(k: KmpName): string | undefined {
  const fromVersion = /_k(\d+\.\d+\.\d+[^-]*)$/.exec(k.version)?.[1];
  const fromName = /-k(\d+\.\d+\.\d+[^-]*)$/.exec(k.basename)?.[1];
  const kver = fromVersion ?? fromName;
  return kver === undefined ? undefined : `${kver.replace(/_/g, '-')}-${k.flavor}`;
}

/** A kernel release without its flavor: builds of one version for several flavors compare equal. */
export function releaseVersion(release: string): string {
  const flavor = kernelFlavor(release);
  return release.length > flavor.length + 1 ? release.slice(0, -flavor.length - 1) : release;
}

/** Is kernel `release` older than `built` (by RPM version order, flavors aside)? */
export function isOlderKernel(release: string, built: string): boolean {
  return rpmvercmp(releaseVersion(release), releaseVersion(built)) < 0;
}

export interface KmpContext {
  fs: KabiFs;
  root: string;
  cache: ModuleCache;
  /** Accept modules outside the module hierarchy (KABI_KMP_STORE). */
  store: boolean;
}

/** A package that weak-modules2 refuses (its %post or %postun then fails). */
export interface KmpRefusal {
  readonly nvr: string;
  readonly message: string;
}

export type KmpReading = { kmp: Kmp } | { warning: string } | { refusal: KmpRefusal };

/**
 * Make a Kmp of a package's files (or of the module list --remove-kmp reads), with
 * weak-modules2's checks: its modules are for one kernel, none sits in kernel/ or
 * weak-updates/ (a KMP must not replace the kernel's own files or kabi's links).
 */
export async function readKmp(name: KmpName, epoch: number | undefined, files: readonly string[], origin: Kmp['origin'], ctx: KmpContext): Promise<KmpReading> {
  const modules = files.filter((f) => isModulePath(f) && (modulePlace(f).tree || (ctx.store && posix.isAbsolute(f))));
  if (modules.length === 0) return { warning: `WARNING: ${name.nvr} does not contain any kernel modules` };
  const refuse = (message: string): KmpReading => ({ refusal: { nvr: name.nvr, message } });
  const treeReleases = new Set<string>();
  const outside: string[] = [];
  for (const m of modules) {
    const place = modulePlace(m);
    if (place.tree) {
      treeReleases.add(place.release);
      if (/^(kernel|weak-updates)\//.test(place.rel)) return refuse(`Error: package ${name.nvr} must not install modules into kernel/ or weak-updates/`);
    } else outside.push(m);
  }
  // weak-modules2 counts a path outside every kernel's directory as one more kernel.
  if (treeReleases.size + (outside.length > 0 && treeReleases.size > 0 ? 1 : 0) > 1) {
    return refuse(`Error: package ${name.nvr} seems to contain modules for multiple kernel versions`);
  }
  if (treeReleases.size === 1) {
    return { kmp: { ...name, epoch, modules, buildRelease: [...treeReleases][0]!, layout: 'tree', origin } };
  }
  const built = new Set<string>();
  for (const m of outside) {
    const release = await vermagicRelease(ctx, m);
    if (release !== undefined) built.add(release);
  }
  if (built.size > 1) return refuse(`Error: package ${name.nvr} seems to contain modules for multiple kernel versions (${[...built].sort().join(', ')})`);
  const buildRelease = [...built][0] ?? releaseFromName(name);
  return { kmp: { ...name, epoch, modules, buildRelease, layout: 'store', origin } };
}

async function vermagicRelease(ctx: KmpContext, sys: string): Promise<string | undefined> {
  const host = await resolveInRoot(ctx.fs, ctx.root, hostPath(ctx.root, sys)).catch(() => undefined);
  if (host === undefined) return undefined;
  try {
    return (await ctx.cache.read(host)).vermagic?.release;
  } catch (e) {
    if (e instanceof KabiError) return undefined;
    throw e;
  }
}

/** Newest first, as weak-modules2 orders them (`rpmsort -r` of name-version-release; epochs first). */
export function newestFirst(a: Pick<Kmp, 'nvr' | 'epoch'>, b: Pick<Kmp, 'nvr' | 'epoch'>): number {
  const ea = a.epoch ?? 0;
  const eb = b.epoch ?? 0;
  if (ea !== eb) return eb - ea;
  return rpmvercmp(b.nvr, a.nvr);
}

export interface FoundKmps {
  /** Newest first. */
  readonly kmps: Kmp[];
  readonly warnings: string[];
  /** Packages refused: weak-modules2 stops at the first and fails. */
  readonly refusals: KmpRefusal[];
  /** Every package the query listed (KMP or not). */
  readonly listed: ReadonlySet<string>;
}

/**
 * The installed KMPs whose package name matches `nameGlob` (`drbd-kmp-default`, or
 * `*-kmp-default` for every KMP of a flavor), read from the rpm database. KMPs built from the
 * kernel's spec file (they provide kmp_in_kernel) are the kernel's own and left out.
 */
export async function findKmps(db: RpmDatabase, nameGlob: string, ctx: KmpContext): Promise<FoundKmps> {
  const kmps: Kmp[] = [];
  const warnings: string[] = [];
  const refusals: KmpRefusal[] = [];
  const listed = new Set<string>();
  for (const pkg of await db.query(nameGlob)) {
    listed.add(pkg.nvr);
    if (pkg.provides.includes(KMP_IN_KERNEL)) continue;
    let name: KmpName;
    try {
      name = parseKmpName(pkg.nvr);
    } catch {
      continue; // a package the glob matched that does not follow KMP naming
    }
    const r = await readKmp(name, pkg.epoch, pkg.files, 'rpm', ctx);
    if ('kmp' in r) kmps.push(r.kmp);
    else if ('warning' in r) warnings.push(r.warning);
    else refusals.push(r.refusal);
  }
  return { kmps: kmps.sort(newestFirst), warnings, refusals, listed };
}

/** The file names of a KMP's modules (what weak-modules2 compares with other KMPs and the initrd). */
export function moduleBasenames(kmp: Pick<Kmp, 'modules'>): string[] {
  return [...new Set(kmp.modules.map((m) => posix.basename(m)))].sort();
}
