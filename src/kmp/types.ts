import type { Plan } from '../linker/types.js';
import type { Kmp } from './kmp.js';

export type Wm2Mode = 'add-kmp' | 'remove-kmp' | 'add-kernel' | 'remove-kernel' | 'add-kernel-modules' | 'remove-kernel-modules';

/**
 * A line weak-modules2 prints on stderr: `error` and `warn` always, `log` from -v, `dlog` from
 * -vv (its debug lines), `debug` with --debug (the depmod output behind a refusal).
 */
export interface KmpLine {
  readonly level: 'error' | 'warn' | 'log' | 'dlog' | 'debug';
  readonly text: string;
}

/** What weak-modules2 does for one kernel after its links changed (run_depmod_build_initrd). */
export interface KernelRefresh {
  readonly release: string;
  /**
   * The module file names whose change may concern the initrd, or `_kernel_` when the kernel
   * itself changed (then the initrd is always rebuilt).
   */
  readonly changed: readonly string[] | '_kernel_';
  /** System paths of the modules that changed for this kernel (links and the KMP's own files). */
  readonly changedModules: readonly string[];
}

/** A copy of a KMP version's modules kept by kabi (KmpPolicy.keepFallback). */
export interface PreserveOp {
  readonly kind: 'keep' | 'drop';
  readonly kmp: Kmp;
}

export interface KmpPlan {
  readonly mode: Wm2Mode;
  readonly root: string;
  /** The weak-updates changes, per kernel, for the linker to apply (and depmod to be told about). */
  readonly links: Plan;
  /** Kernels to run depmod and the initrd step for, in the order weak-modules2 visits them. */
  readonly refresh: readonly KernelRefresh[];
  readonly lines: readonly KmpLine[];
  /** A package was refused or could not be read: the run fails (status 1) after doing the rest. */
  readonly failed: boolean;
  readonly preserve: readonly PreserveOp[];
  /** --remove-kernel: the kernel whose links all go. */
  readonly removedKernel: string | undefined;
  /**
   * Kernels whose files are gone (--remove-kernel, or a removed KMP's own kernel when rpm
   * erased the kernel first): their emptied directories go after the links.
   */
  readonly tidy: readonly string[];
}
