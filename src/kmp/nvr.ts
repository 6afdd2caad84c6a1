import { KabiError } from '../errors.js';

/**
 * How SUSE names kernel module packages: `<basename>-kmp-<flavor>-<version>-<release>`, e.g.
 * `drbd-kmp-default-9.1.16_k6.4.0_150600.21-150600.3.2`. weak-modules2 is handed that string
 * (name-version-release, no epoch, no arch) and takes it apart by its last dashes.
 */
export interface KmpName {
  /** The whole string as given. */
  readonly nvr: string;
  /** Package %NAME: `drbd-kmp-default`. */
  readonly name: string;
  readonly version: string;
  readonly release: string;
  /** `drbd`: the name up to its last `-kmp-`. */
  readonly basename: string;
  /** `default`: what follows the name's last dash; a kernel's flavor is the same suffix of its release. */
  readonly flavor: string;
  /**
   * The basename without a kernel version (`drbd-k6.4.0_150600.21` → `drbd`): packages that
   * carry the kernel they were built for in their name are versions of one driver.
   */
  readonly family: string;
}

export function parseKmpName(nvr: string): KmpName {
  const parts = nvr.split('-');
  if (parts.length < 5 || parts.some((p) => p === '') || /[\s/]/.test(nvr)) {
    throw new KabiError('USAGE', `"${nvr}" is not a kernel module package name-version-release (<name>-kmp-<flavor>-<version>-<release>)`);
  }
  const release = parts[parts.length - 1]!;
  const version = parts[parts.length - 2]!;
  const name = parts.slice(0, -2).join('-');
  const at = name.lastIndexOf('-kmp-');
  if (at <= 0) throw new KabiError('USAGE', `"${nvr}" is not a kernel module package: its name has no "-kmp-<flavor>"`);
  const basename = name.slice(0, at);
  const flavor = name.slice(name.lastIndexOf('-') + 1);
  return { nvr, name, version, release, basename, flavor, family: familyOf(basename) };
}

/** The package name without version and release (`${nvr%-*-*}`). */
export function packageNameOf(nvr: string): string {
  return nvr.split('-').slice(0, -2).join('-');
}

export function familyOf(basename: string): string {
  return basename.replace(/-k\d+\.\d+\.\d+[^-]*$/, '');
}

/** A kernel release belongs to a flavor when it ends in `-<flavor>` (weak-modules2's `*-$flavor`). */
export function isFlavorOf(release: string, flavor: string): boolean {
  return release.length > flavor.length + 1 && release.endsWith(`-${flavor}`);
}

/** The flavor of a kernel release: what follows its last dash. */
export function kernelFlavor(release: string): string {
  return release.slice(release.lastIndexOf('-') + 1);
}

/** `kmp_in_kernel`: a KMP built from the kernel's own spec file; weak-modules2 leaves it alone. */
export const KMP_IN_KERNEL = 'kmp_in_kernel';
