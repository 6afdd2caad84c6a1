/**
 * kabi's public API. Parsers are pure (bytes or text in, data out); everything that reads a
 * system takes a root directory and an optional KabiFs. Failures on bad input are KabiErrors.
 * Every result can be given to JSON.stringify: CRCs come out as the `0x…` strings the CLI
 * prints (see JsonOf).
 *
 * Where a declaration elsewhere has no doc comment, its export is re-declared here with one (a
 * type alias, or a const holding the same function), so every name a user imports is
 * documented (test/api/surface.test.ts). A doc comment at the declaration makes that unneeded.
 */
import { nodeFs as nodeFsBase, type KabiFs } from './fs.js';
import { parseElf as parseElfBase, type ElfFile, type ElfSection as ElfSectionBase, type ElfSymbol as ElfSymbolBase } from './elf/reader.js';
import type { DiscoverOptions as DiscoverOptionsBase, InitramfsStyle as InitramfsStyleBase, InstalledKernel as InstalledKernelBase } from './kernel/discover.js';
import type { LoaderConfig as LoaderConfigBase } from './kernel/kconfig.js';
import {
  scanModuleTree as scanModuleTreeBase,
  type DirListing as DirListingBase,
  type ModuleFile as ModuleFileBase,
  type ModuleTree as ModuleTreeBase,
  type ScanOptions as ScanOptionsBase,
} from './kernel/module-tree.js';
import type { ConfigSource as ConfigSourceBase, DepmodConfig as DepmodConfigBase, OverrideEntry as OverrideEntryBase } from './depmod/config.js';
import type { DepmodOptions as DepmodOptionsBase, DepmodResult as DepmodResultBase, DepmodStats as DepmodStatsBase } from './depmod/run.js';
import type { UpdateDepmodOptions as UpdateDepmodOptionsBase, UpdateDepmodResult as UpdateDepmodResultBase } from './depmod/index.js';
import type { DepmodLevel as DepmodLevelBase, DepmodMessage as DepmodMessageBase } from './depmod/compute.js';
import type { RenderedFile as RenderedFileBase } from './depmod/render.js';
import type { IndexLayout as IndexLayoutBase } from './depmod/index-format.js';
import type { SymversLine as SymversLineBase } from './symvers/write.js';
import type { CheckModulesOptions as CheckModulesOptionsBase, CheckResult as CheckResultBase } from './compat/check.js';
import type { CheckOptions as CheckOptionsBase } from './compat/engine.js';
import {
  loadKernelModel as loadKernelModelBase,
  type KernelModelOptions as KernelModelOptionsBase,
  type LoadedKernelModel as LoadedKernelModelBase,
} from './compat/kernel-model.js';
import type { PlanOptions as PlanOptionsBase } from './linker/plan.js';
import type { ApplyOptions as ApplyOptionsBase } from './linker/apply.js';
import type { DepmodStepOptions as DepmodStepOptionsBase } from './linker/post.js';
import type { KernelPlan as KernelPlanBase, LinkMode as LinkModeBase, LinkPolicy as LinkPolicyBase, Plan as PlanBase } from './linker/types.js';
import type { Runner as RunnerBase, RunResult as RunResultBase } from './util/run.js';
import { decompress as decompressBase, detectCompression as detectCompressionBase } from '../native-bindings/index.js';
import type { Compression as CompressionBase, CompressOptions as CompressOptionsBase, DecompressOptions as DecompressOptionsBase } from '../native-bindings/index.js';
import { withJsonForm } from './json.js';

export { KabiError, isKabiError, type KabiErrorCode, type KabiErrorOptions } from './errors.js';
// The high-level API (src/api/): what each kabi command does, with the CLI's defaults (the
// loader's rules, links as the installed system sees them, depmod and initramfs finished in
// the same run). Every call takes a `root` (default "/"; a missing one is ROOT_NOT_FOUND).
export { inspect, isModuleName, type InspectOptions, type Inspection } from './api/inspect.js';
export { check } from './api/check.js';
export { plan, apply, type LinkRequest, type LinkPlanOptions, type LinkApplyOptions, type LinkResult } from './api/link.js';
export { status, explain, type StatusCallOptions, type StatusResult, type ExplanationResult } from './api/status.js';
export type { StatusOptions } from './status/report.js';
export type { StatusReport, KernelColumn, ModuleRow, ModuleCopy, CopyOrigin, DkmsCoordinates, Cell, CellState, CellNote, NoteKind } from './status/types.js';
export type { Explanation } from './status/explain.js';
export type { ProviderGroup, NeededSymbol } from './status/providers.js';
export { initramfs, type InitramfsCheckOptions, type InitramfsUpdateOptions, type InitramfsRegenerateOptions, type InitramfsFlushOptions } from './api/initramfs.js';
export type { ImageCheck, ImageChange, ChangeKind, AnalysisTimings } from './initramfs/check.js';
export type { ImageLimits } from './initramfs/limits.js';
export type { HostView } from './initramfs/generator/host-view.js';
export type { PlannedLink } from './initramfs/generator/installed-modules.js';
export type { RefreshResult, RefreshAction, RefreshStrategy } from './initramfs/refresh.js';
export type { UpdateResult, UpdateOperation, UpdateTimings } from './initramfs/update.js';
export type { RegenerateResult, GeneratorName } from './initramfs/generators.js';
export type { FlushOutcome } from './initramfs/deferred.js';
export type { ImagePath } from './initramfs/archive-path.js';
export { preserve, type PreserveCallOptions, type PruneCallOptions, type SavedTree } from './api/preserve.js';
export type { SaveResult } from './preserve/save.js';
export type { RestoreResult } from './preserve/restore.js';
export type { PruneOutcome } from './preserve/prune.js';

export type { KabiFs } from './fs.js';
/** node:fs/promises as a KabiFs: the default wherever an `fs` option is left out. */
export const nodeFs: KabiFs = nodeFsBase;
export { toJsonValue, type JsonOf } from './json.js';

// ELF and modules
export { ElfFile, SymbolTable } from './elf/reader.js';
/** Parse an ELF file (32 or 64 bits, either byte order), bounds-checked, without copying it. Pure. */
export const parseElf: (bytes: Uint8Array, file?: string) => ElfFile = parseElfBase;
/** A section header of an ELF file. */
export type ElfSection = ElfSectionBase;
/** An entry of an ELF symbol table. */
export type ElfSymbol = ElfSymbolBase;
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
  type ElfIdentity,
  type ReadModuleOptions,
  type ReadModuleFileOptions,
} from './module/read-module.js';
export { ModInfo, parseModinfo, parseVermagic, isGplCompatible, type Vermagic } from './module/modinfo.js';
export { SharedModuleValues } from './module/shared-values.js';
export { formatCrc, type ModVersion } from './module/modversions.js';
export { type ExportedSymbol, type CrcSymbol } from './module/exports.js';
export { splitSignature, type ModuleSignature, type SplitModule } from './module/signature.js';

// Module.symvers
export { parseSymvers, SymversTable, formatSymvers, readSymversFile, type SymversEntry, type SymversFormat, type ExportType } from './symvers/index.js';
/** A line for formatSymvers: a SymversEntry without its line number; CRCs may be numbers. */
export type SymversLine = SymversLineBase;

// Kernels under a root
export { discoverKernels, describeKernel, runningRelease, type SymversSource } from './kernel/discover.js';
/** A kernel found under a root: its module directory and the per-kernel files beside it. */
export type InstalledKernel = InstalledKernelBase;
/** Which initramfs generator's naming and layout a kernel's image follows. */
export type InitramfsStyle = InitramfsStyleBase;
/** Options of discoverKernels: the root to look under (default "/") and the filesystem. */
export type DiscoverOptions = DiscoverOptionsBase;
/** The CONFIG_ switches of a kernel that change what its module loader accepts. */
export type LoaderConfig = LoaderConfigBase;
export { rpmvercmp, sortReleases } from './kernel/rpmvercmp.js';
export { chooseModules, type ScannedEntry, type ScanListings, type ScanRoot } from './kernel/module-tree.js';
/**
 * Every module file of a kernel's module directory in depmod's scan order, and the one
 * modprobe would load for each name (depmod.d search, override, external and exclude applied).
 */
export const scanModuleTree = async (...args: Parameters<typeof scanModuleTreeBase>): Promise<ModuleTree> => withJsonForm(await scanModuleTreeBase(...args));
/** A module file found by a scan. */
export type ModuleFile = ModuleFileBase;
/** The result of scanModuleTree. */
export type ModuleTree = ModuleTreeBase;
/** Options of scanModuleTree. */
export type ScanOptions = ScanOptionsBase;
/** One directory's listing, as a scan read it (reused by a later scan while its stamp holds). */
export type DirListing = DirListingBase;
export { hostPath, systemPathOf, resolveInRoot } from './kernel/paths.js';
export { loadDepmodConfig, parseDepmodConfig, type SearchEntry } from './depmod/config.js';
/** A kernel's depmod.d configuration, as kmod reads it. */
export type DepmodConfig = DepmodConfigBase;
/** An `override MODULE KERNEL SUBDIR` line that applies to the kernel. */
export type OverrideEntry = OverrideEntryBase;
/** A depmod.d file's name and text, for parseDepmodConfig. */
export type ConfigSource = ConfigSourceBase;
export { updateDepmod, runDepmod, type DepmodChange, type KernelSymbolSource, type KmodFlavor } from './depmod/index.js';
export { DepmodReaderThreads } from './depmod/reader-threads.js';
/** Options of updateDepmod: the root and kernel, and what changed since the last run. */
export type UpdateDepmodOptions = UpdateDepmodOptionsBase;
/** What updateDepmod did: depmod's exit status, the files written, its warnings. */
export type UpdateDepmodResult = UpdateDepmodResultBase;
/** Options of runDepmod, named after depmod's own (-b, -C, -e, -E, -F, -n, -v…). */
export type DepmodOptions = DepmodOptionsBase;
/** What runDepmod did and would print. */
export type DepmodResult = DepmodResultBase;
/** How much work a depmod run did, and how long each step took (ms). */
export type DepmodStats = DepmodStatsBase;
/** A message depmod prints on stderr. */
export type DepmodMessage = DepmodMessageBase;
/** The level word of a DepmodMessage. */
export type DepmodLevel = DepmodLevelBase;
/** One output file of depmod (modules.dep, modules.dep.bin, …) and its bytes. */
export type RenderedFile = RenderedFileBase;
/** The layout of kmod's binary index files, which changed with kmod 34. */
export type IndexLayout = IndexLayoutBase;

// Verdicts
export { checkModules } from './compat/check.js';
/** Options of checkModules. */
export type CheckModulesOptions = CheckModulesOptionsBase;
/** What checkModules found: one verdict per (module, kernel), the kernels judged, notes per kernel. */
export type CheckResult = CheckResultBase;
export { checkAgainstKernel } from './compat/engine.js';
/** Options of checkAgainstKernel: the semantics, CRC comparison under depmod's, which modules are fixed, the cascade. */
export type CheckOptions = CheckOptionsBase;
export { ModuleCache } from './compat/kernel-model.js';
/**
 * Everything the verdict engine needs to know about one installed kernel: its exports, its
 * module tree as modprobe sees it, its loader configuration.
 */
export const loadKernelModel: typeof loadKernelModelBase = loadKernelModelBase;
/** Options of loadKernelModel. */
export type KernelModelOptions = KernelModelOptionsBase;
/** The result of loadKernelModel: a KernelModel and what it was made from. */
export type LoadedKernelModel = LoadedKernelModelBase;
export type { Verdict, Reason, ReasonKind, Semantics, MissingCrcPolicy, KernelModel, Candidate, KernelExport, TreeModule } from './compat/types.js';

// Kernel and module packages (.deb, .rpm) judged before they are installed
export { KernelPackages, type KernelPackageOptions } from './package/kernel-packages.js';
export type { PackageMeta, PackageFormat } from './package/archive.js';
export { DEFAULT_PACKAGE_LIMITS, type PackageLimits } from './package/limits.js';

// Linker
export { planAddModules, planRemoveModules, planAddKernel, planRemoveKernel } from './linker/plan.js';
/** Options of the plan functions: root, semantics and link policy. */
export type PlanOptions = PlanOptionsBase;
export { applyPlan, recoverAll, recoverRoot, type ApplyResult, type DepmodStep } from './linker/apply.js';
/** Options of applyPlan: the filesystem, the lock wait, the depmod step, a stop signal. */
export type ApplyOptions = ApplyOptionsBase;
export { depmodStep } from './linker/post.js';
/** Options of depmodStep: which depmod (kabi's own, the system's, none), the kernels, where messages go. */
export type DepmodStepOptions = DepmodStepOptionsBase;
export { withRootLock } from './linker/root-lock.js';
export type { Recovery } from './linker/apply.js';
export type { LockOptions } from './linker/lock.js';
export { runLinker, type LinkerRunOptions, type LinkerRun } from './linker/run.js';
/** How a depmod step runs a program (replaceable in tests). */
export type Runner = RunnerBase;
/** What a Runner returns. */
export type RunResult = RunResultBase;
export { weakLinkPath } from './linker/weak-link-name.js';
export type { LinkOp } from './linker/types.js';
/** The weak-updates changes for every kernel, as pure data, before anything is written. */
export type Plan = PlanBase;
/** The part of a Plan for one kernel. */
export type KernelPlan = KernelPlanBase;
/** Opt-in linking policies (forward-only, multi-version, target spelling, sources). */
export type LinkPolicy = LinkPolicyBase;
/** Which weak-modules operation a Plan is for. */
export type LinkMode = LinkModeBase;

// Codecs
export { maybeDecompress, compress } from '../native-bindings/index.js';
/** The compression of bytes, by magic number (never by file name); undefined when none is recognised. */
export const detectCompression: (bytes: Uint8Array, offset?: number) => Compression | undefined = detectCompressionBase;
/** Decompress bytes of a known format, whole, within `maxOutputBytes`. */
export const decompress: (bytes: Uint8Array, format: Compression, opts?: DecompressOptions) => Promise<Uint8Array> = decompressBase;
/** A compression format kabi reads: every one the kernel and kmod know. */
export type Compression = CompressionBase;
/** Options of decompress and maybeDecompress. */
export type DecompressOptions = DecompressOptionsBase;
/** Options of compress. */
export type CompressOptions = CompressOptionsBase;
