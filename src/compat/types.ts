import type { Vermagic } from '../module/modinfo.js';
import type { KernelModule } from '../module/read-module.js';
import type { LoaderConfig } from '../kernel/kconfig.js';

/** `loader`: what the kernel decides. `depmod`: what `depmod -e -E` (and so weak-modules) decides. */
export type Semantics = 'loader' | 'depmod';

/** Debian's kernels refuse a symbol with no CRC entry; upstream accepts it with a warning. */
export type MissingCrcPolicy = 'reject' | 'warn';

/** A symbol a kernel exports (from vmlinux or one of its modules), as the loader resolves it. */
export interface KernelExport {
  readonly symbol: string;
  /** undefined: the exporter carries no CRC (the loader then accepts any). */
  readonly crc: bigint | undefined;
  readonly gplOnly: boolean;
  readonly namespace: string | undefined;
  /** 'vmlinux' or the module name. */
  readonly owner: string;
  /** False when the export table was derived without a Module.symvers and this CRC/flag is a guess. */
  readonly certain: boolean;
}

/** A module of the kernel's tree that modprobe would pick for its name. */
export interface TreeModule {
  readonly name: string;
  /** System path (a weak-updates link's own path for links). */
  readonly path: string;
  /** Under kernel/: shipped with the kernel and taken as loadable on it. Anything else is checked. */
  readonly inTree: boolean;
  /** The loader's view of its exports. */
  readonly exports: readonly KernelExport[];
  /** kmod's view: `__crc_` symbols, or `__ksymtab_strings` with CRC 0 when it has none. */
  readonly depmodExports: readonly { readonly symbol: string; readonly crc: bigint }[];
  /** The first `license=` of its modinfo (undefined: it has none, which the kernel calls proprietary). */
  readonly license: string | undefined;
  /**
   * False while only Module.symvers was read for this module: symvers carries no licence, so
   * whether the module is proprietary is not known until its own modinfo is read
   * (see withProviderLicences).
   */
  readonly licenseKnown: boolean;
  /** Parsed module, for modules that are themselves checked (out-of-tree ones). */
  readonly module: KernelModule | undefined;
}

/** Everything the verdict engine needs to know about one kernel, as plain data. */
export interface KernelModel {
  readonly release: string;
  /** [major, minor] parsed from the release, for version-dependent loader rules. */
  readonly version: readonly [number, number] | undefined;
  readonly elf: { readonly class: 32 | 64; readonly endian: 'little' | 'big'; readonly machine: number } | undefined;
  /** sizeof(struct module), from an in-tree module's .gnu.linkonce.this_module. */
  readonly moduleStructSize: number | undefined;
  readonly vermagic: Vermagic | undefined;
  readonly config: LoaderConfig;
  /** CONFIG_MODVERSIONS (from the config, else from the vermagic). */
  readonly modversions: boolean;
  readonly missingCrcPolicy: MissingCrcPolicy;
  /** Exports of vmlinux (and built-in modules), loader view. */
  readonly vmlinux: ReadonlyMap<string, KernelExport>;
  /** What `depmod -E` loads from the symvers file: lines whose third token is `vmlinux`. */
  readonly depmodVmlinux: ReadonlyMap<string, bigint>;
  /** Where the vmlinux table came from. */
  readonly exportSource: 'symvers' | 'derived';
  /** The chosen module per name. */
  readonly modules: ReadonlyMap<string, TreeModule>;
  /** Checks that could not be made for this kernel, and why. */
  readonly notes: readonly string[];
}

/** What a Reason is about; the README lists what each means. */
export type ReasonKind =
  | 'signature-malformed'
  | 'signature-required'
  | 'elf-mismatch'
  | 'not-relocatable'
  | 'this-module'
  | 'module-struct-size'
  | 'no-modversions'
  | 'module-layout'
  | 'vermagic'
  | 'vermagic-missing'
  | 'exports-without-crcs'
  | 'exports-without-flags'
  | 'module-namespace-import'
  | 'common-symbol'
  | 'unknown-symbol'
  | 'gpl-only'
  | 'gpl-taint-inherit'
  | 'crc-mismatch'
  | 'missing-crc'
  | 'namespace'
  | 'provider-incompatible'
  | 'duplicate-export'
  | 'taint'
  | 'unprovable';

/** One thing the loader (or depmod) would say about a module on a kernel. */
export interface Reason {
  readonly kind: ReasonKind;
  /** 'error' makes the module unloadable; 'warning' is printed by the kernel (or is a caveat) but loads. */
  readonly severity: 'error' | 'warning';
  readonly symbol?: string;
  /** Worded as the kernel (loader semantics) or depmod (depmod semantics) prints it. */
  readonly message: string;
  /** For provider-incompatible: the module that cannot be loaded. */
  readonly provider?: string;
}

/** A module being judged: the path it was given by, and its parsed contents. */
export interface Candidate {
  /** Path as given by the user (for reports). */
  readonly path: string;
  readonly module: KernelModule;
}

/** Whether one module can load on one kernel, and why (not). */
export interface Verdict {
  /** The module's path, as given. */
  readonly module: string;
  /** The module's name (modinfo name=). */
  readonly name: string;
  /** The kernel's release. */
  readonly kernel: string;
  /** No reason of severity 'error'. */
  readonly compatible: boolean;
  readonly reasons: readonly Reason[];
}
