import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs } from '../fs.js';
import { confinedPath, hostPath, readSystemFile, resolveInRoot } from './paths.js';
import { rpmvercmp } from './rpmvercmp.js';

/** Where a kernel's Module.symvers came from (which distro convention). */
export type SymversSource = 'boot' | 'modules-dir' | 'debian-headers' | 'build-link' | 'kernel-devel' | 'suse-obj';

export type InitramfsStyle = 'dracut' | 'initramfs-tools' | 'suse' | 'mkinitcpio' | 'kernel-install';

export interface InstalledKernel {
  readonly release: string;
  /** The host root this kernel was found under. */
  readonly root: string;
  /** System path of the module directory (/lib/modules/K or /usr/lib/modules/K). */
  readonly moduleDir: string;
  readonly symvers: { readonly path: string; readonly source: SymversSource } | undefined;
  /** System paths of the other per-kernel files; undefined when absent. */
  readonly systemMap: string | undefined;
  readonly config: string | undefined;
  readonly initramfs: { readonly path: string; readonly exists: boolean; readonly style: InitramfsStyle };
  readonly hasModulesDep: boolean;
}

export interface DiscoverOptions {
  root?: string;
  fs?: KabiFs;
}

/**
 * Files a kernel package installs and its removal deletes, in the module directory (kernel/,
 * modules.order and modules.builtin everywhere; vmlinuz, System.map, config and symvers on
 * RHEL ≥ 8, Arch and Debian's 7.x) or in /boot. depmod's outputs are not among them: they are
 * generated, and a tool that regenerates them for a removed kernel must not make it one.
 */
const KERNEL_MARKERS_IN_MODULE_DIR = ['modules.order', 'modules.builtin', 'modules.builtin.modinfo', 'kernel', 'vmlinuz', 'vmlinux', 'Image', 'System.map', 'config', 'symvers.gz', 'symvers.xz', 'symvers.zst'];
const KERNEL_MARKERS_IN_BOOT = ['vmlinuz-', 'vmlinux-', 'Image-', 'System.map-', 'config-', 'symvers-'];

/**
 * Whether a module directory holds a kernel, not just what outlives one: a removed kernel's
 * directory stays while anything the kernel package did not own is in it (weak-updates
 * links, a kmod package's extra/, DKMS builds, kabi's or depmod's outputs), and such a
 * directory is never an installed kernel.
 */
export async function holdsKernel(fs: KabiFs, root: string, release: string, moduleDir = `/lib/modules/${release}`): Promise<boolean> {
  const present = async (sys: string) => (await resolveInRoot(fs, root, hostPath(root, sys)).catch(() => undefined)) !== undefined;
  for (const m of KERNEL_MARKERS_IN_MODULE_DIR) if (await present(`${moduleDir}/${m}`)) return true;
  for (const m of KERNEL_MARKERS_IN_BOOT) {
    if (m === 'symvers-') {
      for (const ext of ['.gz', '.xz', '.zst', '']) if (await present(`/boot/${m}${release}${ext}`)) return true;
    } else if (await present(`/boot/${m}${release}`)) return true;
  }
  return false;
}

/**
 * Kernels installed under `root`: every directory in /lib/modules and /usr/lib/modules
 * (the same directory once on merged-/usr systems) that holds a kernel (holdsKernel), with
 * the files each distro ships beside it. Ordered oldest first by RPM version order.
 */
export async function discoverKernels(opts: DiscoverOptions = {}): Promise<InstalledKernel[]> {
  const root = opts.root ?? '/';
  const fs = opts.fs ?? nodeFs;
  const seen = new Map<string, string>(); // release → moduleDir (system path)
  const realSeen = new Set<string>();
  for (const base of ['/lib/modules', '/usr/lib/modules']) {
    let names: string[];
    try {
      names = await fs.readdir(await confinedPath(fs, root, base));
    } catch (e) {
      if (isNotFound(e)) continue;
      throw e;
    }
    for (const name of names.sort()) {
      if (name.startsWith('.') || name === 'backup') continue;
      const sys = posix.join(base, name);
      let real: string | undefined;
      try {
        real = await resolveInRoot(fs, root, hostPath(root, sys));
      } catch {
        // A link loop or a path out of bounds is no kernel: one bad entry never stops a run.
        continue;
      }
      if (real === undefined || realSeen.has(real)) continue;
      try {
        if (!(await fs.stat(real)).isDirectory()) continue;
      } catch {
        continue;
      }
      realSeen.add(real);
      if (!seen.has(name) && (await holdsKernel(fs, root, name, sys))) seen.set(name, sys);
    }
  }
  const out: InstalledKernel[] = [];
  for (const [release, moduleDir] of seen) out.push(await describeKernel(fs, root, release, moduleDir));
  return out.sort((a, b) => rpmvercmp(a.release, b.release));
}

/** Describe one kernel given its module directory (no need for it to be "installed" in any package sense). */
export async function describeKernel(fs: KabiFs, root: string, release: string, moduleDir = `/lib/modules/${release}`): Promise<InstalledKernel> {
  const exists = async (sys: string) => {
    const r = await resolveInRoot(fs, root, hostPath(root, sys)).catch(() => undefined);
    if (r === undefined) return false;
    try {
      return (await fs.stat(r)).isFile();
    } catch {
      return false;
    }
  };
  const first = async (cands: string[]) => {
    for (const c of cands) if (await exists(c)) return c;
    return undefined;
  };

  const symversCandidates: [string, SymversSource][] = [];
  for (const ext of ['.xz', '.gz', '.zst', '']) {
    // RHEL/Fedora/SUSE: /boot first, then the module directory (weak-modules' order).
    symversCandidates.push([`/boot/symvers-${release}${ext}`, 'boot']);
    symversCandidates.push([`${moduleDir}/symvers${ext}`, 'modules-dir']);
  }
  symversCandidates.push([`/usr/src/linux-headers-${release}/Module.symvers`, 'debian-headers']);
  symversCandidates.push([`${moduleDir}/build/Module.symvers`, 'build-link']);
  symversCandidates.push([`/usr/src/kernels/${release}/Module.symvers`, 'kernel-devel']);
  let symvers: InstalledKernel['symvers'];
  for (const [p, source] of symversCandidates) {
    if (await exists(p)) {
      symvers = { path: p, source };
      break;
    }
  }

  const systemMap = await first([`/boot/System.map-${release}`, `${moduleDir}/System.map`]);
  const config = await first([`/boot/config-${release}`, `${moduleDir}/config`]);

  let pkgbase: string | undefined;
  try {
    pkgbase = new TextDecoder().decode(await readSystemFile(fs, root, `${moduleDir}/pkgbase`)).trim() || undefined;
  } catch {
    pkgbase = undefined;
  }
  const initCands: [string, InitramfsStyle][] = [
    [`/boot/initramfs-${release}.img`, 'dracut'],
    [`/boot/initrd.img-${release}`, 'initramfs-tools'],
    [`/boot/initrd-${release}`, 'suse'],
    ...(pkgbase ? ([[`/boot/initramfs-${pkgbase}.img`, 'mkinitcpio']] as [string, InitramfsStyle][]) : []),
    [`${moduleDir}/initrd`, 'kernel-install'],
  ];
  let initramfs: InstalledKernel['initramfs'] | undefined;
  for (const [p, style] of initCands) {
    if (await exists(p)) {
      initramfs = { path: p, exists: true, style };
      break;
    }
  }
  if (!initramfs) {
    // Nothing built yet: name it the way this system's generator would.
    const style = await guessGenerator(fs, root, pkgbase);
    const path = initCands.find(([, s]) => s === style)?.[0] ?? `/boot/initramfs-${release}.img`;
    initramfs = { path, exists: false, style };
  }

  return {
    release,
    root,
    moduleDir,
    symvers,
    systemMap,
    config,
    initramfs,
    hasModulesDep: await exists(`${moduleDir}/modules.dep`),
  };
}

async function guessGenerator(fs: KabiFs, root: string, pkgbase: string | undefined): Promise<InitramfsStyle> {
  const has = async (p: string) => {
    try {
      await fs.lstat(await confinedPath(fs, root, p, { followLast: false }));
      return true;
    } catch {
      return false;
    }
  };
  if (pkgbase) return 'mkinitcpio';
  if ((await has('/usr/sbin/update-initramfs')) || (await has('/etc/initramfs-tools'))) return 'initramfs-tools';
  if ((await has('/etc/SUSE-brand')) || (await has('/usr/lib/module-init-tools'))) return 'suse';
  return 'dracut';
}

/** The running kernel when root is "/", else undefined (a mounted image has no running kernel). */
export async function runningRelease(root: string): Promise<string | undefined> {
  if (posix.resolve(root) !== '/') return undefined;
  const { release } = await import('node:os');
  return release();
}
