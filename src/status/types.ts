import type { Reason, Semantics } from '../compat/types.js';
import type { KernelModule } from '../module/read-module.js';

/** Where a module file was found. */
export type CopyOrigin =
  /** Under a kernel's module directory, outside kernel/ and weak-updates/ (extra/, updates/, updates/dkms/…). */
  | 'tree'
  /** In an `external` directory that depmod.d configures for that kernel. */
  | 'external'
  /** In a module store directory given with --store (or KABI_STORE). */
  | 'store'
  /** DKMS's build tree: /var/lib/dkms/<module>/<version>/<kernel>/<arch>/module/. */
  | 'dkms'
  /** Found only as the target of some kernel's weak-updates link. */
  | 'link-target';

/** Where a module copy sits in DKMS's tree: module, version, kernel and architecture. */
export interface DkmsCoordinates {
  readonly module: string;
  readonly version: string;
  readonly kernel: string;
  readonly arch: string;
}

/** One out-of-tree module file. */
export interface ModuleCopy {
  /** kmod's module name (from the file name, as modprobe knows it). */
  readonly name: string;
  /** System path. */
  readonly path: string;
  /** Host path of its bytes. */
  readonly host: string;
  readonly origin: CopyOrigin;
  /** The kernel whose tree holds it (tree/external), or DKMS's kernel directory. */
  readonly kernel: string | undefined;
  /** First word of its vermagic. */
  readonly builtFor: string | undefined;
  /** modinfo version=. */
  readonly version: string | undefined;
  readonly srcversion: string | undefined;
  readonly dkms: DkmsCoordinates | undefined;
  readonly module: KernelModule | undefined;
  /** Why it could not be read. */
  readonly error: string | undefined;
}

/**
 * built: a module in this kernel's own tree (extra/, updates/…) provides the name.
 * weak-linked: a weak-updates link provides it, and its target loads.
 * compatible: a module built elsewhere would load here but nothing links it in (see notes).
 * incompatible: no known copy loads here (reasons of the preferred one).
 * stale: a weak-updates link whose target is gone, or no longer loads (it changed since linking).
 */
export type CellState = 'built' | 'weak-linked' | 'compatible' | 'incompatible' | 'stale';

/** Why a cell carries a note (what the `*` of `kabi status` explains below the matrix). */
export type NoteKind =
  /** Another file of the same name wins under this kernel's depmod search order. */
  | 'shadowed'
  /** A newer version exists but cannot load here; this one is older. */
  | 'older-version'
  /** Built for a newer kernel than this one: forward-only linking skips it. */
  | 'newer-build'
  /** DKMS built it for this kernel but it is not installed in the kernel's tree. */
  | 'not-installed'
  /** Nothing else explains it: no link was ever made (kabi link --add-kernel would make one). */
  | 'not-linked'
  | 'target-gone'
  | 'target-changed'
  /** The file could not be parsed. */
  | 'unreadable'
  /** Only a dangling link names it: no file of it exists anywhere. */
  | 'no-copy';

/** A note on a cell: its kind and what it says. */
export interface CellNote {
  readonly kind: NoteKind;
  readonly message: string;
  /** For shadowed: the file that wins. */
  readonly by?: string;
}

/** A module on one kernel: its state (built, weak-linked, compatible, incompatible, stale), the file it is about, whether it loads, and why. */
export interface Cell {
  readonly kernel: string;
  readonly state: CellState;
  /** The module file the state is about (a link's target for links); undefined when a link dangles. */
  readonly file: string | undefined;
  /** The weak-updates link concerned, when there is one. */
  readonly link: string | undefined;
  /** The link's target as written. */
  readonly target: string | undefined;
  readonly builtFor: string | undefined;
  readonly version: string | undefined;
  /** modprobe on this kernel would load this file (or link) for the name. */
  readonly active: boolean;
  /** The verdict for `file` on this kernel; undefined when there is no file to judge. */
  readonly loads: boolean | undefined;
  readonly notes: readonly CellNote[];
  /** Every reason of the verdict (errors first, then warnings). */
  readonly reasons: readonly Reason[];
}

/** One out-of-tree module of a status report: every copy of it found, and its cell on each kernel. */
export interface ModuleRow {
  readonly name: string;
  readonly copies: readonly ModuleCopy[];
  /** One per kernel, in the report's kernel order. */
  readonly cells: readonly Cell[];
}

/** One installed kernel of a status report: its release, module directory, whether it runs and has Module.symvers. */
export interface KernelColumn {
  readonly release: string;
  readonly moduleDir: string;
  readonly running: boolean;
  readonly hasSymvers: boolean;
  /** Checks the verdict engine could not make for this kernel. */
  readonly notes: readonly string[];
}

/** What `kabi status` shows: every kernel installed under the root (columns) and every out-of-tree module (rows), with a cell per pair. */
export interface StatusReport {
  readonly root: string;
  readonly semantics: Semantics;
  readonly running: string | undefined;
  readonly kernels: readonly KernelColumn[];
  readonly modules: readonly ModuleRow[];
}
