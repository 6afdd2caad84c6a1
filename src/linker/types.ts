import type { Verdict } from '../compat/types.js';

/** One change to a kernel's weak-updates directory. Paths are system paths. */
export interface LinkOp {
  readonly kind: 'add' | 'replace' | 'remove';
  /** The link, e.g. /lib/modules/K/weak-updates/foo/bar.ko. */
  readonly link: string;
  /** New target (add/replace). */
  readonly target?: string;
  /** Target before the change (replace/remove). */
  readonly previousTarget?: string;
  /** The verdict behind an add/replace, or behind a removal for incompatibility. */
  readonly verdict?: Verdict;
  readonly why: string;
}

export interface KernelPlan {
  readonly release: string;
  /** weak-modules' notion: a symvers and a System.map exist; others are skipped. */
  readonly installed: boolean;
  readonly ops: readonly LinkOp[];
  /** Run depmod for this kernel after applying (changed links, an input module's own kernel, or an update case). */
  readonly depmod: boolean;
  /** Refresh this kernel's initramfs after depmod. */
  readonly initramfs: boolean;
  /** All-or-nothing was triggered: the kernel keeps its previous links. */
  readonly fellBack: boolean;
  /**
   * System paths of module files that changed for this kernel (links added, replaced or
   * removed; the input modules themselves in their own kernel): what an initramfs check
   * looks for.
   */
  readonly changedModules: readonly string[];
}

export type LinkMode = 'add-modules' | 'remove-modules' | 'add-kernel' | 'remove-kernel';

export interface Plan {
  readonly mode: LinkMode;
  readonly root: string;
  readonly kernels: readonly KernelPlan[];
  /** weak-modules --verbose lines, in the order the original prints them. */
  readonly messages: readonly string[];
  /** Lines weak-modules prints on stderr. */
  readonly warnings: readonly string[];
}

export interface LinkPolicy {
  /** Link only into kernels newer than the one the module was built for (by RPM version order). */
  forwardOnly?: boolean;
  /** Among several versions of a module, link the newest one that is compatible, per kernel. */
  multiVersion?: boolean;
  /**
   * Where --add-kernel looks for modules to link: `extra` (weak-modules: other kernels'
   * extra/ only) or `all` (also updates/ — DKMS —, depmod.d external directories, and the
   * targets other kernels already link to, such as a module store).
   */
  sources?: 'extra' | 'all';
  /**
   * weak-modules only touches kernels with a symvers and a System.map. Without this, a kernel
   * lacking them is still judged, from its own modules' tables (kabi link).
   */
  requireSymvers?: boolean;
}
