/**
 * Kernel and module packages (.deb, .rpm) read without unpacking them: streamed, bounded,
 * indexed once, files read on demand.
 *
 *   PackageArchive.open(file) → meta (name, version, the files it lists); scan() indexes the
 *     payload; readFile(path) reads one file back (from memory, its xz blocks, or another pass)
 *   KernelPackages.open(files) → the kernels in a set of packages; view(fs, root) is the root
 *     as it would be with them installed (a read-only KabiFs for discovery and the kernel model)
 *   readPackagedModules(fs, file) → the modules a module package would install, parsed
 */
export { PackageArchive, type PackageMeta, type PackageFormat, type OpenPackageOptions, type RetainPolicy } from './archive.js';
export { KernelPackages, isKernelFile, kernelReleaseOf, listedKernels, type KernelPackageOptions } from './kernel-packages.js';
export { isPackageFile, readPackagedModules, type PackagedModule } from './module-packages.js';
export { packageOverlayFs, type OverlayOptions } from './overlay-fs.js';
export { PackageTree, type TreeNode } from './package-tree.js';
export { DEFAULT_PACKAGE_LIMITS, type PackageLimits } from './limits.js';
export type { PayloadEntry, EntryType } from './entry.js';
