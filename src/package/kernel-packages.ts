import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs } from '../fs.js';
import { hostPath, resolveInRoot, systemPathOf } from '../kernel/paths.js';
import { rpmvercmp } from '../kernel/rpmvercmp.js';
import { PackageArchive, type PackageMeta } from './archive.js';
import { isModulePath, type PayloadEntry } from './entry.js';
import type { PackageLimits } from './limits.js';
import { packageOverlayFs } from './overlay-fs.js';
import { PackageTree } from './package-tree.js';

/*
 * Kernel packages (.deb or .rpm, several at once: Debian's image + headers, 7.x's
 * linux-binary/-modules/-base, RHEL's kernel-core + kernel-modules) read as the files they
 * would install, and shown over a system root as if installed (overlay-fs.ts), so the kernel
 * model is built from them exactly as from an installed kernel.
 *
 * Only packages whose metadata lists a file kabi reads (a module tree, /boot, a symvers file,
 * depmod.d) are decompressed at all: apt hands a hook every package of a transaction, and a
 * full-upgrade can carry hundreds that are not kernels.
 */

/** Files of a system kabi reads when it models a kernel. */
const KERNEL_FILES = [
  /^\/(usr\/)?lib\/modules\/[^/]+\//,
  /^\/boot\/[^/]+$/,
  /^\/usr\/src\/[^/]+\/Module\.symvers$/,
  /^\/usr\/src\/kernels\/[^/]+\/Module\.symvers$/,
  /^\/(etc|run|usr\/local\/lib|usr\/lib|lib)\/depmod\.d\/[^/]+$/,
];

export function isKernelFile(path: string): boolean {
  return KERNEL_FILES.some((r) => r.test(path));
}

/** Non-module files larger than this are never kept in memory (vmlinuz, a debug System.map). */
const MAX_KEPT_FILE = 64 * 1024 * 1024;

/** The kernel release a path belongs to when it is part of a kernel (not an add-on module). */
export function kernelReleaseOf(path: string): string | undefined {
  let m = /^\/(?:usr\/)?lib\/modules\/([^/]+)\/(?:kernel\/|vmlinuz$|System\.map$|config$|modules\.order$|modules\.builtin$|symvers(?:\.\w+)?$)/.exec(path);
  if (m) return m[1];
  m = /^\/boot\/(?:vmlinuz|System\.map|config|symvers)-(.+?)(?:\.(?:gz|xz|zst))?$/.exec(path);
  if (m) return m[1];
  m = /^\/usr\/src\/(?:linux-headers-|kernels\/)([^/]+)\/Module\.symvers$/.exec(path);
  return m?.[1];
}

/** Options of KernelPackages.open. */
export interface KernelPackageOptions {
  /** Where the package files are read (default node:fs). */
  fs?: KabiFs;
  limits?: Partial<PackageLimits>;
  /** Called as each package is read. */
  onProgress?: (label: string, done: number, total: number) => void;
  /**
   * Pick the kernels to read, from those the packages' file lists name (oldest first); the
   * packages that hold none of them are not decompressed. A package without a file list is
   * read whatever is picked.
   */
  select?: (kernels: readonly string[]) => readonly string[];
  /** Refuse a kernel-related package that does not list its files (a shard must know its kernels without reading them). */
  requireFileLists?: boolean;
}

/** Kernel releases a package's file list names (undefined when the package has no list). */
export function listedKernels(meta: PackageMeta): Set<string> | undefined {
  if (meta.listedFiles === undefined) return undefined;
  const out = new Set<string>();
  for (const f of meta.listedFiles) {
    const k = kernelReleaseOf(f);
    if (k !== undefined) out.add(k);
  }
  return out;
}

const opened = new WeakMap<KernelPackages, readonly PackageArchive[]>();

/**
 * The kernels in a set of package files, read without unpacking them (open), and the system
 * root as it would be with them installed (view).
 */
export class KernelPackages {
  private constructor(
    /** Every package given, in the order given. */
    readonly packages: readonly PackageMeta[],
    /** Kernel releases the packages provide, oldest first. */
    readonly kernels: readonly string[],
    /** Which packages provide each release. */
    readonly sources: ReadonlyMap<string, readonly string[]>,
  ) {}

  static async open(files: readonly string[], opts: KernelPackageOptions = {}): Promise<KernelPackages> {
    const all: PackageArchive[] = [];
    try {
      for (const f of files) all.push(await PackageArchive.open(f, { ...(opts.fs ? { fs: opts.fs } : {}), ...(opts.limits ? { limits: opts.limits } : {}) }));
      let used = all.filter((a) => a.meta.listedFiles === undefined || a.meta.listedFiles.some(isKernelFile));
      const unlisted = used.find((a) => a.meta.listedFiles === undefined);
      if (opts.requireFileLists && unlisted) {
        throw new KabiError('PACKAGE_FORMAT', 'the package does not list its files (no md5sums), so its kernel is not known before it is read; it cannot be given to a shard', { file: unlisted.meta.file });
      }
      let picked: Set<string> | undefined;
      if (opts.select) {
        const named = new Set<string>();
        for (const a of used) for (const k of listedKernels(a.meta) ?? []) named.add(k);
        const chosen = (picked = new Set(opts.select([...named].sort(rpmvercmp))));
        // Packages of no kernel at all (a depmod.d snippet) still shape every kernel's tree.
        used = used.filter((a) => {
          const ks = listedKernels(a.meta);
          return ks === undefined || ks.size === 0 || [...ks].some((k) => chosen.has(k));
        });
      }
      let done = 0;
      for (const a of used) {
        opts.onProgress?.(`reading ${posix.basename(a.meta.file)}`, done++, used.length);
        await a.scan((e: PayloadEntry) => isKernelFile(e.path) && (isModulePath(e.path) || e.size <= MAX_KEPT_FILE));
      }
      opts.onProgress?.('packages read', used.length, used.length);
      const sources = new Map<string, string[]>();
      for (const a of used) {
        const mine = new Set<string>();
        for (const e of a.list()) {
          const k = kernelReleaseOf(e.path);
          if (k !== undefined) mine.add(k);
        }
        for (const k of mine) sources.set(k, [...(sources.get(k) ?? []), a.meta.file]);
      }
      for (const a of all) if (!used.includes(a)) await a.close();
      const kernels = [...sources.keys()].filter((k) => picked === undefined || picked.has(k)).sort(rpmvercmp);
      const set = new KernelPackages(
        all.map((a) => a.meta),
        kernels,
        sources,
      );
      opened.set(set, used);
      return set;
    } catch (e) {
      await Promise.all(all.map((a) => a.close().catch(() => undefined)));
      throw e;
    }
  }

  /**
   * The system under `root` as it would be with these packages installed. Package
   * directories land where the root's own symlinks send them (merged /usr), and a package's
   * module tree replaces the root's kernel/ and depmod files of the same release.
   */
  /** The archives read (kept off the instance: they are not part of the API). */
  private get archives(): readonly PackageArchive[] {
    return opened.get(this) ?? [];
  }

  /** The packages that hold kernel files: the ones read. */
  get read(): readonly PackageMeta[] {
    return this.archives.map((a) => a.meta);
  }

  /** Whether a package read installs anything under this system path. */
  installsUnder(dir: string): boolean {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    return this.archives.some((a) => a.list().some((e) => e.path.startsWith(prefix)));
  }

  async view(base: KabiFs = nodeFs, root = '/'): Promise<KabiFs> {
    const place = async (parent: string, name: string): Promise<string> => {
      const sys = posix.join(parent, name);
      try {
        if ((await base.lstat(hostPath(root, sys))).isSymbolicLink()) {
          const real = await resolveInRoot(base, root, hostPath(root, sys));
          if (real !== undefined && (await base.stat(real)).isDirectory()) return systemPathOf(root, real) ?? sys;
        }
      } catch (e) {
        if (!isNotFound(e) && !(e instanceof KabiError)) throw e;
      }
      return sys;
    };
    const canonical = async (sys: string): Promise<string> => {
      let at = '/';
      for (const c of sys.split('/').filter((x) => x !== '')) at = await place(at, c);
      return at;
    };
    const tree = await PackageTree.build(this.archives, place);
    const moduleDirs = new Set<string>();
    for (const k of this.kernels) {
      for (const d of [`/lib/modules/${k}`, `/usr/lib/modules/${k}`]) {
        const c = await canonical(d);
        if (tree.get(`${c}/kernel`)?.kind === 'dir') moduleDirs.add(c);
      }
    }
    return packageOverlayFs(base, root, tree, {
      hidden: (dir, name) => moduleDirs.has(dir) && (name === 'kernel' || name.startsWith('modules.')),
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.archives.map((a) => a.close().catch(() => undefined)));
  }
}
