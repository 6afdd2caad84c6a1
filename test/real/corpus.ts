// SPDX-License-Identifier: GPL-2.0-or-later
//
// The Debian kernel corpus, for tests of the vitest `real` project. The project's global setup
// (./global-setup.ts) runs corpus/debian/fetch.mjs and provides the manifest path; loadCorpus()
// reads it.
//
// The trees, header sets and built modules are SHARED by every test file (and cached across runs):
// treat them as read-only. A test that needs to write (depmod output, a weak-updates/ dir, an
// initramfs) should build its own root in a temp dir and symlink or copy what it needs from here.

import fs from 'node:fs';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    kabiCorpusManifest: string;
  }
}

export type Series = '6.1' | '6.12' | '7.x';
/** The Debian release a kernel comes from: its own suite's toolchain builds its modules. */
export type Suite = 'bookworm' | 'trixie' | 'trixie-backports';
export type DpkgArch = 'amd64' | 's390x' | 'i386' | 'armhf';

/** The test modules built from corpus/modules/ against every amd64 header set. */
export const TEST_MODULES = [
  'kabi_consumer', // GPL; uses kabi_provider_value (EXPORT_SYMBOL_GPL of kabi_provider)
  'kabi_minimal', // GPL; init/exit only
  'kabi_nongpl', // license "Proprietary"; uses ktime_get_mono_fast_ns (EXPORT_SYMBOL_GPL, vmlinux)
  'kabi_ns_missing', // GPL; uses usb_stor_sense_invalidCDB (namespace USB_STORAGE) without importing it
  'kabi_ns_ok', // GPL; uses usb_stor_sense_invalidCDB and imports USB_STORAGE
  'kabi_provider', // GPL; exports kabi_provider_value (GPL-only) and kabi_provider_plain
] as const;
export type TestModuleName = (typeof TEST_MODULES)[number];

export interface CorpusPackage {
  name: string;
  version: string;
  /** dpkg architecture of the package (`all` for linux-headers-*-common). */
  arch: string;
  /** File name in <cacheDir>/debs/. */
  file: string;
}

/** One build of a Debian DKMS package against a corpus kernel (corpus/debian/dkms.mjs). */
export interface DkmsBuild {
  /** Debian package and version, e.g. "v4l2loopback-dkms", "0.12.7-2". */
  source: string;
  version: string;
  /** dkms.conf's PACKAGE_NAME and PACKAGE_VERSION. */
  dkmsName: string;
  dkmsVersion: string;
  /** The suites that offer this version. */
  suites: string[];
  /** Whether the package's own release promises to build for this kernel (such builds must succeed). */
  expected: boolean;
  toolchain: string;
  status: 'built' | 'failed' | 'excluded';
  /** Module name (as dkms.conf's BUILT_MODULE_NAME) → built file (.ko, .ko.xz: as dkms made it). */
  modules: Record<string, string>;
  log: string;
  /** For failed and excluded builds: the first line that says why. */
  error?: string;
}

export interface CorpusKernel {
  /** e.g. "6.1.0-47", "6.12.117+deb12", "7.2.12+deb13". */
  abi: string;
  /** Kernel release (uname -r, lib/modules/<krel>), e.g. "6.1.0-47-amd64". */
  krel: string;
  arch: DpkgArch;
  /** Debian flavour: amd64, s390x, 686-pae, armmp. */
  flavour: string;
  series: Series;
  suite: Suite;
  /** Which of the ABIs apt offered for its arch+suite+series this one is. */
  role: Role;
  /**
   * image: one linux-image package, System.map/config/vmlinuz in /boot. split (7.x):
   * linux-binary + linux-modules + linux-base, all of it in /usr/lib/modules/<krel>/.
   */
  layout: 'image' | 'split';
  /** The tree is a merged-/usr system: modules in usr/lib/modules, lib -> usr/lib. */
  mergedUsr: boolean;
  /** Number of files named *.ko* under moduleDir. */
  moduleCount: number;
  compression: 'none' | 'xz';
  /** Root to use as `depmod -b` / `modprobe -d` base dir (holds lib/modules/<krel>, boot/ unless split). */
  treeRoot: string;
  /** treeRoot/[usr/]lib/modules/<krel>: as shipped (no modules.dep etc.: depmod has not run there). */
  moduleDir: string;
  /** boot/System.map-<krel>, or moduleDir/System.map (split). Debian's is a one-line stub (see systemMapIsStub). */
  systemMap: string;
  /**
   * True when systemMap is Debian's stub ("The real System.map is in the linux-image-<version>-dbg
   * package"), which holds no symbols: take the kernel's exports from `symvers` (depmod -E).
   */
  systemMapIsStub: boolean;
  config: string;
  /** The bootable image (amd64 always; foreign kernels when shipped). */
  vmlinuz: string | null;
  /** CONFIG_MODVERSIONS (7.x has it off: only a module built for the very release loads). */
  modversions: boolean;
  /** Root the header packages were extracted into (usr/src/…, usr/lib/linux-kbuild-…). */
  headersRoot: string;
  /** The linux-headers-<krel> dir: `make -C <headersDir> M=… modules` works. */
  headersDir: string;
  /** headersDir/Module.symvers. */
  symvers: string;
  /** image (layout image) or binary + modules + base (layout split), and headers, common, kbuild. */
  packages: Partial<Record<'image' | 'binary' | 'modules' | 'base', CorpusPackage>> & { headers: CorpusPackage; common: CorpusPackage; kbuild: CorpusPackage };
  /** All ABIs apt offered for this arch+suite+series when the corpus was prepared. */
  offeredAbis: string[];
  /** Which toolchain built the test modules (host: this machine's gcc-12; trixie: gcc-14 in a chroot). */
  toolchain?: 'host' | 'trixie';
  compiler?: string;
  /** amd64 only: where the test modules were built. */
  builtDir?: string;
  buildLog?: string;
  /** Module.symvers of the test modules' M= dir (kabi_provider's exports). */
  builtSymvers?: string;
  /** amd64 only: test module name → path of its .ko (uncompressed). */
  builtModules?: Record<TestModuleName, string>;
  /** Every offered version of every DKMS package of the corpus, built (or tried) against this kernel. */
  dkms?: DkmsBuild[];
}

export type Role = 'oldest' | 'previous' | 'newest' | 'twin';

export interface CorpusManifest {
  version: number;
  created: string;
  cacheDir: string;
  /** Architectures the manifest was restricted to (fetch.mjs --only), or null for the full set. */
  only: DpkgArch[] | null;
  dkmsSources: { name: string; version: string; suites: string[]; file: string; dkmsName: string; dkmsVersion: string }[];
  kernels: CorpusKernel[];
}

export interface KernelFilter {
  arch?: DpkgArch;
  series?: Series;
  suite?: Suite;
  flavour?: string;
  role?: Role;
  /** Only kernels the test modules were built against. */
  built?: boolean;
}

export interface Corpus {
  manifestPath: string;
  manifest: CorpusManifest;
  /** Kernels matching every given criterion, in manifest order. */
  kernels(filter?: KernelFilter): CorpusKernel[];
  /** The one kernel with this release; throws if absent. */
  kernel(krel: string): CorpusKernel;
  /** Path of a test module built against `kernel`; throws if it was not built there. */
  builtModule(kernel: CorpusKernel, name: TestModuleName): string;
}

let loaded: Corpus | undefined;

export function loadCorpus(): Corpus {
  if (loaded) return loaded;
  const manifestPath = inject('kabiCorpusManifest');
  if (!manifestPath) {
    throw new Error(
      'no corpus manifest was provided: run this file in the vitest `real` project, whose global setup prepares the corpus',
    );
  }
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as CorpusManifest;
  const matches = (k: CorpusKernel, f: KernelFilter): boolean =>
    (f.arch === undefined || k.arch === f.arch) &&
    (f.series === undefined || k.series === f.series) &&
    (f.suite === undefined || k.suite === f.suite) &&
    (f.flavour === undefined || k.flavour === f.flavour) &&
    (f.role === undefined || k.role === f.role) &&
    (f.built === undefined || (k.builtModules !== undefined) === f.built);
  loaded = {
    manifestPath,
    manifest,
    kernels: (filter = {}) => manifest.kernels.filter((k) => matches(k, filter)),
    kernel: (krel) => {
      const k = manifest.kernels.find((x) => x.krel === krel);
      if (!k) throw new Error(`kernel ${krel} is not in the corpus (${manifest.kernels.map((x) => x.krel).join(', ')})`);
      return k;
    },
    builtModule: (kernel, name) => {
      const p = kernel.builtModules?.[name];
      if (!p) throw new Error(`test module ${name} was not built against ${kernel.krel}`);
      return p;
    },
  };
  return loaded;
}

/**
 * The bookworm amd64 kernels the initramfs generator tests (dracut, initramfs-tools) build images of:
 * the newest of each series, with the oldest of the same series as the other kernel beside it.
 */
export function generatorKernels(): { K61: CorpusKernel; K61_OTHER: CorpusKernel; K612: CorpusKernel; K612_OTHER: CorpusKernel } {
  const corpus = loadCorpus();
  const pick = (series: Series, role: 'newest' | 'oldest') => corpus.kernels({ arch: 'amd64', suite: 'bookworm', series, role })[0]!;
  return { K61: pick('6.1', 'newest'), K61_OTHER: pick('6.1', 'oldest'), K612: pick('6.12', 'newest'), K612_OTHER: pick('6.12', 'oldest') };
}
