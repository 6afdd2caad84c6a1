// SPDX-License-Identifier: GPL-2.0-or-later
//
// Where the corpus builds kernel modules: each kernel with the compiler of its own Debian
// release, as its users would.
//
//   host      this machine (Debian 12: gcc-12): the test modules for bookworm's kernels
//   bookworm  a bookworm chroot (gcc-12, dkms 3.0): DKMS packages for bookworm's kernels
//   trixie    a trixie chroot (gcc-14, dkms 3.2, kmod 34): everything for trixie and 7.x kernels,
//             and kmod 34's depmod as an oracle
//
// The chroots are debootstrapped once and cached (corpus/debian/chroot.mjs); commands run in a
// throw-away overlay of them, with the directories they work on bind-mounted under /mnt/kabi/.

import path from 'node:path';
import { ensureChroot, runInChrootAsync } from './chroot.mjs';
import { spawnAsync } from './util.mjs';

const BUILD_PACKAGES = ['make', 'libc6-dev', 'binutils', 'bc', 'kmod', 'dkms', 'openssl', 'patch', 'xz-utils', 'zstd', 'zlib1g'];

export const TOOLCHAINS = {
  host: { name: 'host', compiler: 'gcc-12' },
  bookworm: { name: 'bookworm', compiler: 'gcc-12', suite: 'bookworm', packages: [...BUILD_PACKAGES, 'gcc-12', 'libelf1', 'libssl3', 'dwarves'] },
  trixie: { name: 'trixie', compiler: 'gcc-14', suite: 'trixie', packages: [...BUILD_PACKAGES, 'gcc-14', 'libelf1t64', 'libssl3t64', 'pahole'] },
};

const roots = new Map();

/** The pristine chroot of a toolchain (built on first use); undefined for the host. */
export function toolchainRoot(tc) {
  if (!tc.suite) return undefined;
  let r = roots.get(tc.name);
  if (!r) {
    r = ensureChroot({ suite: tc.suite, packages: tc.packages });
    roots.set(tc.name, r);
  }
  return r;
}

/** What identifies a toolchain's build results (the chroot's recipe is in its directory name). */
export function toolchainId(tc) {
  const root = toolchainRoot(tc);
  return root ? `${tc.name}:${path.basename(root)}` : tc.name;
}

/**
 * Run a command with a toolchain. `dirs` names host directories the command works on; `argv`
 * is a function of where they are seen (the host paths themselves, or /mnt/kabi/<name> in a
 * chroot). On the host the command gets `hostEnv` (default: this process's environment);
 * in a chroot, a clean one. Resolves to { status, stdout, stderr, timedOut }.
 */
export function toolchainRun(tc, argv, { dirs = {}, cwd, env = {}, hostEnv, timeoutMs = 900_000 } = {}) {
  const root = toolchainRoot(tc);
  if (!root) {
    const args = argv(dirs);
    return spawnAsync(args[0], args.slice(1), { cwd: cwd ? cwd(dirs) : undefined, env: hostEnv ?? { ...process.env, LC_ALL: 'C', ...env }, timeoutMs });
  }
  const inside = Object.fromEntries(Object.keys(dirs).map((k) => [k, `/mnt/kabi/${k}`]));
  const binds = Object.fromEntries(Object.entries(dirs).map(([k, host]) => [host, inside[k]]));
  return runInChrootAsync(root, argv(inside), { binds, overlay: true, env: { LC_ALL: 'C', ...env }, timeoutMs, ...(cwd ? { cwd: cwd(inside) } : {}) });
}
