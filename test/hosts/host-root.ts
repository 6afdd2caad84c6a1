// SPDX-License-Identifier: GPL-2.0-or-later
//
// A whole Debian system to run real package managers against: a private copy of a cached
// bookworm minbase chroot (corpus/debian/chroot.mjs) with kmod, systemd (kernel-install) and rpm
// in it, plus this machine's node, so that kabi's bins run inside the root when rpm, dpkg,
// pacman or kernel-install chroot into it to run scriptlets and hooks.
//
// Every node process started inside the root is timed: /usr/bin/node there is a small wrapper
// that runs the real node under `timeout` (so a hang cannot stall the test run) and appends
// start, end, status and argv to /var/log/kabi-test-node.log. nodeRuns() reads it back.
//
// Reuse: makeHostRoot({ chroot: 'hostDracut' }) gives a root with dracut-core and cpio too
// (the chroots are chroot.mjs's TEST_CHROOTS, which the corpus builds ahead); root.chroot([...])
// runs a command inside.

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

/** A kabi process (any node process in the root) must finish within this; the wrapper kills it later. */
export const NODE_LIMIT_S = 60;
const NODE_KILL_S = 150;

export interface RunResult {
  status: number | null;
  signal?: string | null;
  timedOut?: boolean;
  stdout: string;
  stderr: string;
}

/**
 * The host roots' chroots (chroot.mjs's TEST_CHROOTS): `host` has, besides minbase, depmod (the
 * oracle), kernel-install and rpm (kmodtool's %preun runs rpm -ql); `hostDracut` adds dracut-core and cpio.
 */
export type HostChroot = 'host' | 'hostDracut';

interface ChrootModule {
  TEST_CHROOTS: Record<HostChroot, { suite: string; packages: string[] }>;
  ensureChroot(o: { suite: string; packages?: string[] }): string;
  copyChroot(pristine: string, dest: string): string;
  runInChroot(dir: string, argv: string[], o?: { env?: Record<string, string>; input?: string; timeoutMs?: number; binds?: Record<string, string> }): RunResult;
}

let chrootModule: ChrootModule | undefined;
async function chrootLib(): Promise<ChrootModule> {
  // A plain .mjs without types: imported by path so that tsc does not look for declarations.
  const path = join(REPO, 'corpus/debian/chroot.mjs');
  chrootModule ??= (await import(path)) as ChrootModule;
  return chrootModule;
}

export interface NodeRun {
  startS: number;
  seconds: number;
  status: number;
  argv: string;
}

export class HostRoot {
  constructor(
    readonly dir: string,
    private readonly lib: ChrootModule,
  ) {}

  /** The host path of a path inside the root. */
  path(p: string): string {
    return join(this.dir, p);
  }

  /** Run argv chrooted into the root (private mount namespace with /proc, /dev, /sys). */
  chroot(argv: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): RunResult {
    return this.lib.runInChroot(this.dir, argv, { timeoutMs: 600_000, ...opts });
  }

  /**
   * Run a host tool that works on the root from outside (rpm --root, dpkg --root, pacman -r).
   * It chroots into the root itself for scriptlets; /proc and /dev are mounted in a private
   * mount namespace for it, as runInChroot does.
   */
  host(argv: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): RunResult {
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = [
      'set -e',
      `mount -t proc proc ${q(this.path('proc'))}`,
      `mount --rbind /dev ${q(this.path('dev'))}`,
      `exec ${argv.map(q).join(' ')}`,
    ].join('\n');
    const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', HOME: '/root', ...opts.env };
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--fork', 'sh', '-c', script], {
      encoding: 'utf8',
      input: opts.input,
      env,
      timeout: opts.timeoutMs ?? 600_000,
      killSignal: 'SIGKILL',
      maxBuffer: 256 * 1024 * 1024,
    });
    if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
    return { status: r.status, signal: r.signal, timedOut: (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT', stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Every node process run in the root so far, and forget them (the next call returns only newer ones). */
  nodeRuns(): NodeRun[] {
    const log = this.path('var/log/kabi-test-node.log');
    if (!existsSync(log)) return [];
    const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '');
    rmSync(log);
    return lines.map((l) => {
      const [start, end, status, ...argv] = l.split('\t');
      return { startS: Number(start), seconds: Number(end) - Number(start), status: Number(status), argv: argv.join('\t') };
    });
  }

  /** Paths under the given directories (relative to the root), with symlink targets: a listing to compare. */
  listing(dirs: readonly string[]): string[] {
    const out: string[] = [];
    const walk = (rel: string) => {
      const abs = this.path(rel);
      let st;
      try {
        st = lstatSync(abs);
      } catch {
        return;
      }
      if (st.isSymbolicLink()) out.push(`${rel} -> ${readlinkSync(abs)}`);
      else if (st.isDirectory()) {
        out.push(`${rel}/`);
        for (const e of readdirSync(abs).sort()) walk(`${rel}/${e}`);
      } else out.push(rel);
    };
    for (const d of dirs) walk(d.replace(/^\/+|\/+$/g, ''));
    return out;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A private, writable bookworm root (a copy of the `chroot` of TEST_CHROOTS), node installed as
 * /usr/bin/node (timed wrapper), and /etc/rpm/macros pointing rpm's database at /var/lib/rpm
 * (Debian's rpm defaults to ~/.rpmdb) so that rpm inside the root and `rpm --root` outside agree.
 */
export async function makeHostRoot(opts: { chroot?: HostChroot; prefix?: string } = {}): Promise<HostRoot> {
  const lib = await chrootLib();
  const pristine = lib.ensureChroot(lib.TEST_CHROOTS[opts.chroot ?? 'host']);
  const parent = mkdtempSync(join(tmpdir(), opts.prefix ?? 'kabi-host-'));
  const dir = lib.copyChroot(pristine, join(parent, 'root'));
  const root = new HostRoot(dir, lib);
  installNode(root);
  // Every installed system has it (minbase has no kernel); its absence would make it a leftover.
  mkdirSync(root.path('usr/lib/modules'), { recursive: true });
  mkdirSync(root.path('etc/rpm'), { recursive: true });
  writeFileSync(root.path('etc/rpm/macros'), '%_dbpath /var/lib/rpm\n');
  return root;
}

function installNode(root: HostRoot): void {
  mkdirSync(root.path('usr/libexec/kabi-test'), { recursive: true });
  copyFileSync(process.execPath, root.path('usr/libexec/kabi-test/node'));
  chmodSync(root.path('usr/libexec/kabi-test/node'), 0o755);
  writeFileSync(
    root.path('usr/bin/node'),
    `#!/bin/sh
# Test instrumentation (test/hosts/host-root.ts): time every node process, kill a hung one.
start=$(date +%s.%N)
timeout -k 5 ${NODE_KILL_S} /usr/libexec/kabi-test/node "$@"
rc=$?
end=$(date +%s.%N)
mkdir -p /var/log
printf '%s\\t%s\\t%s\\t%s\\n' "$start" "$end" "$rc" "$*" >>/var/log/kabi-test-node.log
exit $rc
`,
    { mode: 0o755 },
  );
}
