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

export interface KernelPackageOptions {
  /** Where the package files are read (default node:fs). */
  fs?: KabiFs;
  limits?: Partial<PackageLimits>;
  /** Called as each package is read. */
  onProgress?: (label: string, done: number, total: number) => void;
}

export class KernelPackages {
  private constructor(
    /** Every package given, in the order given. */
    readonly packages: readonly PackageMeta[],
    /** The packages that hold kernel files (read). */
    readonly archives: readonly PackageArchive[],
    /** Kernel releases the packages provide, oldest first. */
    readonly kernels: readonly string[],
    /** Which packages provide each release. */
    readonly sources: ReadonlyMap<string, readonly string[]>,
  ) {}

  static async open(files: readonly string[], opts: KernelPackageOptions = {}): Promise<KernelPackages> {
    const all: PackageArchive[] = [];
    try {
      for (const f of files) all.push(await PackageArchive.open(f, { ...(opts.fs ? { fs: opts.fs } : {}), ...(opts.limits ? { limits: opts.limits } : {}) }));
      const used = all.filter((a) => a.meta.listedFiles === undefined || a.meta.listedFiles.some(isKernelFile));
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
      const kernels = [...sources.keys()].sort(rpmvercmp);
      return new KernelPackages(
        all.map((a) => a.meta),
        used,
        kernels,
        sources,
      );
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
