/**
 * kabi's public API. Parsers are pure (bytes or text in, data out); everything that reads a
 * system takes a root directory and an optional KabiFs.
 */
export { KabiError, isKabiError, type KabiErrorCode } from './errors.js';
export { nodeFs, type KabiFs } from './fs.js';

// ELF and modules
export { parseElf, ElfFile, SymbolTable, type ElfSection, type ElfSymbol } from './elf/reader.js';
export {
  readModule,
  readModuleBytes,
  readModuleFile,
  moduleNameFromPath,
  isModuleFileName,
  MODULE_EXTENSIONS,
  type KernelModule,
  type UndefinedSymbol,
  type ThisModuleInfo,
  type LoaderFacts,
} from './module/read-module.js';
export { ModInfo, parseModinfo, parseVermagic, isGplCompatible, type Vermagic } from './module/modinfo.js';
export { formatCrc, type ModVersion } from './module/modversions.js';
export { type ExportedSymbol, type CrcSymbol } from './module/exports.js';
export { splitSignature, type ModuleSignature } from './module/signature.js';

// Module.symvers
export { parseSymvers, SymversTable, formatSymvers, readSymversFile, type SymversEntry, type SymversFormat, type ExportType } from './symvers/index.js';

// Kernels under a root
export { discoverKernels, describeKernel, runningRelease, type InstalledKernel, type SymversSource, type InitramfsStyle } from './kernel/discover.js';
export { rpmvercmp, sortReleases } from './kernel/rpmvercmp.js';
export { scanModuleTree, chooseModules, type ModuleFile, type ModuleTree } from './kernel/module-tree.js';
export { hostPath, systemPathOf, resolveInRoot } from './kernel/paths.js';
export { loadDepmodConfig, parseDepmodConfig, type DepmodConfig } from './depmod/config.js';
export { updateDepmod, runDepmod } from './depmod/index.js';

// Verdicts
export { checkModules, shardSlice, type CheckModulesOptions, type CheckResult } from './compat/check.js';
export { checkAgainstKernel, type CheckOptions } from './compat/engine.js';
export { loadKernelModel, ModuleCache, type LoadedKernelModel } from './compat/kernel-model.js';
export type { Verdict, Reason, ReasonKind, Semantics, MissingCrcPolicy, KernelModel, Candidate } from './compat/types.js';

// Packages not installed yet
export { PackageArchive, KernelPackages, readPackagedModules, DEFAULT_PACKAGE_LIMITS, type PackageMeta, type PackageLimits, type PayloadEntry } from './package/index.js';

// Linker
export { planAddModules, planRemoveModules, planAddKernel, planRemoveKernel, type PlanOptions } from './linker/plan.js';
export { applyPlan, recoverAll } from './linker/apply.js';
export { postProcess } from './linker/post.js';
export { weakLinkPath } from './linker/weak-link-name.js';
export type { Plan, KernelPlan, LinkOp, LinkPolicy, LinkMode } from './linker/types.js';

// Codecs
export { detectCompression, maybeDecompress, decompress, compress, type Compression } from '../native-bindings/index.js';
