#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-or-later
//
// Debian chroots for the tests that need a whole system: real package managers (rpm, dpkg,
// pacman, kernel-install) running their scriptlets chrooted, trixie's toolchain (gcc-14, kmod 34,
// dracut 106), QEMU images. One pristine copy per (suite, architecture, package set) is built
// once with debootstrap and cached beside the kernel corpus; tests work on a copy of it.
//
//   node corpus/debian/chroot.mjs SUITE [PACKAGE...]    build (or find) it, print its path
//
// Library (plain Node >= 20, no npm dependencies):
//   ensureChroot({ suite, packages, arch, mirror })   → path of the pristine chroot (never write to it)
//   copyChroot(pristine, dest)                         → a private, writable copy (cp -a --reflink=auto)
//   TEST_CHROOTS, prebuildTestChroots()              the chroots the tests use, built ahead by fetch.mjs
//   runInChroot(dir, argv, { env, input, timeoutMs, binds, overlay, cwd }) → { status, stdout, stderr }
//       runs argv chrooted into dir inside a private mount namespace with /proc, /dev, /sys
//       and /dev/pts mounted (objtool and dracut need /proc; package scriptlets need /dev/null),
//       so nothing stays mounted when the command ends, even if it is killed. With `overlay`,
//       the command sees a writable overlay of dir whose changes are thrown away afterwards:
//       a pristine chroot can be used in place (DKMS builds write to /var/lib/dkms and
//       /lib/modules; binds get their mount points there too).
//
// Cache: ${KABI_CORPUS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kabi-corpus}/chroots/<suite>-<arch>-<hash>/
// with a `.kabi-chroot-complete` stamp written last: a half-built chroot is never used.
// Needs root, debootstrap, unshare and mount (util-linux): .ci/run installs debootstrap.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnAsync } from './util.mjs';

/** Bump to rebuild every cached chroot (the recipe below changed). */
const RECIPE = 1;
const STAMP = '.kabi-chroot-complete';
const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

export const CACHE = path.resolve(
  process.env.KABI_CORPUS_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'kabi-corpus'),
);

function log(msg) {
  process.stderr.write(`[kabi-chroot] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return r;
}

function mustRun(cmd, args, opts = {}) {
  const r = run(cmd, args, opts);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.signal ?? `exit ${r.status}`}):\n${(r.stderr || r.stdout || '').slice(-4000)}`);
  }
  return r;
}

function hostArch() {
  return mustRun('dpkg', ['--print-architecture']).stdout.trim();
}

/** Where the pristine chroot for a spec is cached (its lock is DIR.lock, its build DIR.tmp). */
function chrootDir({ suite, packages = [], arch = hostArch(), mirror = DEFAULT_MIRROR, variant = 'minbase' }) {
  const pkgs = [...new Set(packages)].sort();
  const key = createHash('sha256').update(JSON.stringify({ RECIPE, suite, arch, mirror, variant, pkgs })).digest('hex').slice(0, 12);
  return path.join(CACHE, 'chroots', `${suite}-${arch}-${key}`);
}

/**
 * The pristine chroot for a suite and package set, built on first use. Concurrent callers
 * (parallel test files, helpers) wait for one build through a lock directory.
 */
export function ensureChroot({ suite, packages = [], arch = hostArch(), mirror = DEFAULT_MIRROR, variant = 'minbase' }) {
  const pkgs = [...new Set(packages)].sort();
  const dir = chrootDir({ suite, packages: pkgs, arch, mirror, variant });
  if (fs.existsSync(path.join(dir, STAMP))) return dir;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  for (let waited = 0; ; waited += 1) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      if (fs.existsSync(path.join(dir, STAMP))) return dir;
      // A lock older than an hour belongs to a build that died.
      const age = Date.now() - fs.statSync(lock).mtimeMs;
      if (age > 3600_000) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (waited % 30 === 0) log(`waiting for another build of ${path.basename(dir)}`);
      spawnSync('sleep', ['2']);
    }
  }
  try {
    if (fs.existsSync(path.join(dir, STAMP))) return dir;
    fs.rmSync(dir, { recursive: true, force: true });
    const tmp = `${dir}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    log(`debootstrap ${suite} (${arch}, ${variant}${pkgs.length ? `, +${pkgs.join(',')}` : ''}) into ${tmp}`);
    const args = [`--variant=${variant}`, `--arch=${arch}`, ...(pkgs.length ? [`--include=${pkgs.join(',')}`] : []), suite, tmp, mirror];
    let last;
    for (let attempt = 1; attempt <= 3; attempt++) {
      last = run('debootstrap', args);
      if (last.status === 0) break;
      log(`debootstrap attempt ${attempt} failed:\n${(last.stderr || last.stdout).slice(-2000)}`);
      fs.rmSync(tmp, { recursive: true, force: true });
      spawnSync('sleep', [String(attempt * 10)]);
    }
    if (last.status !== 0) throw new Error(`debootstrap ${suite} failed three times; see the messages above`);
    // apt inside the chroot talks to the same mirror; no daemons may start from scriptlets.
    fs.writeFileSync(path.join(tmp, 'etc/apt/sources.list'), `deb ${mirror} ${suite} main\n`);
    fs.writeFileSync(path.join(tmp, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    fs.rmSync(path.join(tmp, 'var/cache/apt/archives'), { recursive: true, force: true });
    fs.mkdirSync(path.join(tmp, 'var/cache/apt/archives/partial'), { recursive: true });
    fs.writeFileSync(path.join(tmp, STAMP), JSON.stringify({ suite, arch, mirror, variant, packages: pkgs, built: new Date().toISOString() }) + '\n');
    fs.renameSync(tmp, dir);
    return dir;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** A writable copy of a pristine chroot (tests must never change the cached one). */
export function copyChroot(pristine, dest) {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  mustRun('cp', ['-a', '--reflink=auto', pristine, dest]);
  return dest;
}

const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** The shell script (run under unshare) that mounts what the command needs and chroots into it. */
function chrootScript(dir, argv, { env = {}, binds = {}, overlay = false, cwd = '/' }) {
  let scratch;
  let root = dir;
  const mounts = [];
  if (overlay) {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kabi-chroot-overlay-'));
    for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(scratch, d));
    root = path.join(scratch, 'merged');
    mounts.push(`mount -t overlay overlay -o ${q(`lowerdir=${dir},upperdir=${scratch}/upper,workdir=${scratch}/work`)} ${q(root)}`);
  }
  mounts.push(
    `mount -t proc proc ${q(path.join(root, 'proc'))}`,
    `mount -t sysfs sys ${q(path.join(root, 'sys'))} 2>/dev/null || true`,
    `mount --rbind /dev ${q(path.join(root, 'dev'))}`,
    ...Object.entries(binds).map(([host, inside]) => {
      const target = path.join(root, inside);
      return `mkdir -p ${q(target)} && mount --bind ${q(host)} ${q(target)}`;
    }),
  );
  const envArgs = Object.entries({ PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', HOME: '/root', ...env }).map(
    ([k, v]) => `${k}=${v}`,
  );
  const inner = cwd === '/' ? argv : ['sh', '-c', 'cd "$0" && exec "$@"', cwd, ...argv];
  const script = `set -e\n${mounts.join('\n')}\nexec chroot ${q(root)} /usr/bin/env -i ${envArgs.map(q).join(' ')} ${inner.map(q).join(' ')}`;
  // The overlay dies with the namespace; its upper layer is all that is left to remove.
  const cleanup = () => scratch && fs.rmSync(scratch, { recursive: true, force: true });
  return { script, cleanup };
}

const UNSHARE = ['--mount', '--propagation', 'private', '--fork', 'sh', '-c'];

/**
 * Run argv chrooted into dir. The mounts live in a private mount namespace that dies with the
 * command. `binds` maps host directories to paths inside the chroot (read-write bind mounts).
 */
export function runInChroot(dir, argv, { env = {}, input, timeoutMs = 600_000, binds = {}, overlay = false, cwd = '/' } = {}) {
  const { script, cleanup } = chrootScript(dir, argv, { env, binds, overlay, cwd });
  try {
    const r = spawnSync('unshare', [...UNSHARE, script], {
      encoding: 'utf8',
      input,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 256 * 1024 * 1024,
    });
    if (r.error && r.error.code !== 'ETIMEDOUT') throw new Error(`unshare/chroot: ${r.error.message}`);
    return { status: r.status, signal: r.signal, timedOut: r.error?.code === 'ETIMEDOUT', stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  } finally {
    cleanup();
  }
}

/** runInChroot without blocking the event loop (builds run side by side). */
export function runInChrootAsync(dir, argv, { env = {}, timeoutMs = 600_000, binds = {}, overlay = false, cwd = '/' } = {}) {
  const { script, cleanup } = chrootScript(dir, argv, { env, binds, overlay, cwd });
  return spawnAsync('unshare', [...UNSHARE, script], { timeoutMs }).finally(cleanup);
}

/**
 * The chroots the tests build for themselves (ensureChroot with these specs): bookworm hosts for
 * the package-manager tests (test/hosts/host-root.ts: kmod, systemd, rpm; with dracut-core and
 * cpio for test/hosts/suse and test/real/initramfs-rpm), bookworm with initramfs-tools
 * (test/real/kernel-package-apt) and trixie with dracut 106 (test/real/initramfs-inclusion-trixie).
 * fetch.mjs builds them while the DKMS modules compile: debootstrap waits on the network, the
 * compilers on the CPU, and a test that finds its chroot ready does not hold a worker for it.
 */
export const TEST_CHROOTS = {
  host: { suite: 'bookworm', packages: ['kmod', 'rpm', 'systemd'] },
  hostDracut: { suite: 'bookworm', packages: ['cpio', 'dracut-core', 'kmod', 'rpm', 'systemd'] },
  initramfsTools: { suite: 'bookworm', packages: ['initramfs-tools', 'kmod', 'linux-base'] },
  trixieDracut: { suite: 'trixie', packages: ['binutils', 'cpio', 'dracut-core', 'kmod', 'zstd'] },
};

/**
 * Build the TEST_CHROOTS that are missing, one at a time, each by this file's CLI in a child
 * process (ensureChroot blocks its thread for minutes), its output in CACHE/chroots/prebuild-NAME.log.
 * Resolves with the names that failed: ensureChroot tries again when a test (or the next
 * fetch.mjs) asks for that chroot, and fails there, loudly, if it cannot.
 */
export async function prebuildTestChroots(report = log) {
  const failed = [];
  fs.mkdirSync(path.join(CACHE, 'chroots'), { recursive: true });
  for (const [name, spec] of Object.entries(TEST_CHROOTS)) {
    if (fs.existsSync(path.join(chrootDir(spec), STAMP))) continue;
    const t0 = Date.now();
    const logFile = path.join(CACHE, 'chroots', `prebuild-${name}.log`);
    const fd = fs.openSync(logFile, 'w');
    const status = await new Promise((resolve) => {
      // Its own process group: a timeout kills debootstrap too, not only the node that waits for it.
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), spec.suite, ...spec.packages], { stdio: ['ignore', fd, fd], detached: true });
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 1_800_000);
      child.on('error', () => {
        clearTimeout(timer);
        resolve(-1);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve(code ?? signal);
      });
    });
    fs.closeSync(fd);
    if (status === 0) report(`test chroot ${name} ready (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    else {
      // Nothing is removed here: a killed debootstrap may leave mounts in its tree, and its lock
      // is ensureChroot's to judge. The next ensureChroot for this spec tries again.
      failed.push(name);
      report(`test chroot ${name} was not built ahead (${status}; ${logFile}); the next run of this script or the test that needs it builds it`);
    }
  }
  return failed;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [suite, ...packages] = process.argv.slice(2);
  if (!suite) {
    process.stderr.write('usage: node corpus/debian/chroot.mjs SUITE [PACKAGE...]\n');
    process.exit(2);
  }
  process.stdout.write(ensureChroot({ suite, packages }) + '\n');
}
