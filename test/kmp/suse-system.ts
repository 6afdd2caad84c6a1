// SPDX-License-Identifier: GPL-2.0-or-later
//
// A SUSE-like system on a fixture root, with a package database the fake rpm (fake-rpm.mjs)
// answers from, and packages "installed", "upgraded" and "erased" the way rpm runs a KMP's
// scriptlets (SUSE's kmp-script: %post --add-kmp with INITRD_IN_POSTTRANS=1, %preun saving the
// module list, %postun --remove-kmp with it on standard input, skipped for a reinstall).
// weak-modules2 runs in-process (memoryIo) with a runner that sends rpm to the fake and
// dracut/mkosi-initrd/sdbootutil to recorders.

import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { addKernel, makeRoot, type FixtureKernel, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { weakLinks } from '../linker/helpers.js';
import { mod } from '../status/fixture.js';
import { memoryIo } from '../../src/cli/io.js';
import { weakModules2Main } from '../../src/cli/commands/weak-modules2.js';
import { runCommand, type Runner } from '../../src/util/run.js';
// @ts-expect-error a plain .mjs test helper without declarations
import { answer, DB_FILE, readDb } from './fake-rpm.mjs';

const STRUCT = 0x380; // what mod() builds modules with

/** Two kABIs: B changed printk's CRC (a kABI break). */
export const ABI = {
  A: [
    { symbol: 'printk', crc: 0x11111111 },
    { symbol: 'kfree', crc: 0x2222 },
  ],
  B: [
    { symbol: 'printk', crc: 0x99999999 },
    { symbol: 'kfree', crc: 0x2222 },
    { symbol: 'new_api', crc: 0x3333 },
  ],
} as const;

export interface FakePackage {
  name: string;
  version: string;
  release: string;
  epoch?: number;
  provides?: string[];
  /** System path → contents. */
  files: Record<string, Uint8Array | string>;
}

export interface RunOpts {
  stdin?: string;
  env?: Record<string, string>;
}

export function nvr(p: Pick<FakePackage, 'name' | 'version' | 'release'>): string {
  return `${p.name}-${p.version}-${p.release}`;
}

export class SuseSystem {
  readonly fx: FixtureRoot;
  readonly dracut: string;
  /** Every command the runner was asked to run other than rpm (argv joined, `chroot ROOT` left out). */
  readonly commands: string[] = [];

  constructor(kernels: Record<string, keyof typeof ABI>, opts: { prefix?: string } = {}) {
    this.fx = makeRoot(opts.prefix ?? 'kabi-suse-');
    for (const [release, abi] of Object.entries(kernels)) this.addKernel(release, abi);
    this.fx.write('/usr/lib/depmod.d/00-system.conf', 'search updates extra weak-updates kgraft built-in\n');
    this.fx.write('/etc/fstab', '/dev/root / ext4 defaults 0 0\n');
    mkdirSync(this.fx.path('/var/cache'), { recursive: true }); // where kabi's depmod keeps its cache
    this.dracut = '/usr/bin/dracut';
    this.fx.write(this.dracut, '#!/bin/sh\nexit 0\n');
    chmodSync(this.fx.path(this.dracut), 0o755);
    this.saveDb([]);
  }

  get root(): string {
    return this.fx.root;
  }

  /** A SUSE kernel: /usr/lib/modules/K (with /lib → usr/lib), symvers.gz and System.map there, a vmlinuz. */
  addKernel(release: string, abi: keyof typeof ABI, extra: Partial<FixtureKernel> = {}): void {
    addKernel(this.fx, {
      release,
      usrMerged: true,
      symvers: 'modules-gz',
      vmlinux: [...ABI[abi]],
      moduleStructSize: STRUCT,
      config: { CONFIG_CC_VERSION_TEXT: '"gcc (SUSE Linux) 13.3.0"' },
      ...extra,
    });
    this.fx.write(`/usr/lib/modules/${release}/vmlinuz`, 'kernel image');
    this.fx.write(`/usr/lib/modules/${release}/modules.builtin.modinfo`, '');
  }

  removeKernelFiles(release: string): void {
    rmSync(this.fx.path(`/usr/lib/modules/${release}/kernel`), { recursive: true, force: true });
    for (const f of readdirSync(this.fx.path(`/usr/lib/modules/${release}`))) {
      if (f === 'weak-updates' || f === 'updates' || f === 'extra') continue;
      rmSync(this.fx.path(`/usr/lib/modules/${release}/${f}`), { recursive: true, force: true });
    }
    for (const f of [`/boot/System.map-${release}`, `/boot/config-${release}`]) rmSync(this.fx.path(f), { force: true });
  }

  /** A module built for `release` needing `needs` (vmlinux symbols with kABI `abi`'s CRCs, or others). */
  module(release: string, name: string, needs: Record<string, number> = { printk: ABI.A[0].crc }, extra: object = {}): Uint8Array {
    return mod(release, name, needs, extra);
  }

  /** A tree KMP: <name>-kmp-<flavor>, its modules in /usr/lib/modules/<built>/updates/. */
  kmp(base: string, flavor: string, version: string, built: string, modules: Record<string, Uint8Array>, release = '1'): FakePackage {
    const files: Record<string, Uint8Array> = {};
    for (const [rel, bytes] of Object.entries(modules)) files[`/usr/lib/modules/${built}/updates/${rel}`] = bytes;
    return { name: `${base}-kmp-${flavor}`, version, release, provides: ['multiversion(kernel)'], files };
  }

  /** A store KMP: its modules in a directory of its own version, outside the module hierarchy. */
  storeKmp(base: string, flavor: string, version: string, modules: Record<string, Uint8Array>, release = '1'): FakePackage {
    const dir = `/usr/lib/kmp/${base}-kmp-${flavor}/${version}-${release}`;
    const files: Record<string, Uint8Array> = {};
    for (const [rel, bytes] of Object.entries(modules)) files[`${dir}/updates/${rel}`] = bytes;
    return { name: `${base}-kmp-${flavor}`, version, release, provides: ['multiversion(kernel)'], files };
  }

  db(): FakePackage[] {
    return readDb(this.root) as FakePackage[];
  }

  private saveDb(pkgs: readonly { name: string; version: string; release: string; epoch?: number; provides?: string[]; files: string[] }[]): void {
    this.fx.write(DB_FILE, JSON.stringify(pkgs, null, 1));
  }

  private record(p: FakePackage) {
    return { name: p.name, version: p.version, release: p.release, ...(p.epoch !== undefined ? { epoch: p.epoch } : {}), provides: p.provides ?? [], files: Object.keys(p.files).sort() };
  }

  /**
   * Unpack a package's files and add it to the database (no scriptlets). As rpm -i, a file
   * another installed package owns is a conflict (`replacing` names the package an upgrade replaces).
   */
  unpack(p: FakePackage, replacing?: string): void {
    const db = readDb(this.root) as ReturnType<SuseSystem['record']>[];
    for (const other of db) {
      if (nvr(other) === replacing) continue;
      const clash = Object.keys(p.files).find((f) => other.files.includes(f));
      if (clash) throw new Error(`file ${clash} from install of ${nvr(p)} conflicts with file from package ${nvr(other)}`);
    }
    for (const [path, data] of Object.entries(p.files)) this.fx.write(path, data);
    this.saveDb([...(readDb(this.root) as ReturnType<SuseSystem['record']>[]), this.record(p)]);
  }

  /** Remove a package's files (those no other package owns) and its database record (no scriptlets). */
  unpackRemove(n: string): string[] {
    const db = readDb(this.root) as ReturnType<SuseSystem['record']>[];
    const p = db.find((x) => nvr(x) === n);
    if (!p) throw new Error(`${n} is not installed`);
    const rest = db.filter((x) => x !== p);
    const owned = new Set(rest.flatMap((x) => x.files));
    for (const f of p.files) {
      if (owned.has(f)) continue;
      rmSync(this.fx.path(f), { force: true });
      // The directories the package owned go with it when empty (KMPs own their updates/ tree).
      for (let d = dirname(f); /^\/usr\/lib\/(modules\/[^/]+|kmp)\/./.test(d); d = dirname(d)) {
        try {
          rmdirSync(this.fx.path(d));
        } catch {
          break;
        }
      }
    }
    this.saveDb(rest);
    return p.files;
  }

  /** The runner weak-modules2 gets: rpm → the fake database, anything else recorded (and run if it is a real program here). */
  runner(): Runner {
    return async (cmd, args, opts) => {
      if (cmd === 'rpm') {
        const r = answer([...args], this.root);
        return { status: r.status, signal: null, stdout: r.stdout, stderr: r.stderr, spawnError: undefined };
      }
      const argv = cmd === 'chroot' && args[0] === this.root ? args.slice(1) : [cmd, ...args];
      this.commands.push(argv.join(' '));
      if (/(dracut|mkosi-initrd|sdbootutil|bootctl)$/.test(argv[0]!)) {
        return { status: this.failing.has(argv[0]!) ? 1 : 0, signal: null, stdout: '', stderr: this.failing.has(argv[0]!) ? `${argv[0]} failed\n` : '', spawnError: undefined };
      }
      return runCommand(cmd, args, opts);
    };
  }

  /** Programs the runner makes fail (exit 1). */
  readonly failing = new Set<string>();

  async wm2(argv: string[], opts: RunOpts = {}): Promise<{ status: number; out: string; err: string }> {
    const io = memoryIo({ stdin: opts.stdin ?? '', env: { KABI_ROOT: this.root, ...opts.env }, cwd: this.root });
    const status = await weakModules2Main(argv, io, { run: this.runner() });
    return { status, out: io.out(), err: io.err() };
  }

  /** rpm -i of a KMP: unpack, then %post (SUSE's kmp-script: --add-kmp with INITRD_IN_POSTTRANS=1). */
  async install(p: FakePackage, env: Record<string, string> = {}, replacing?: string): Promise<{ status: number; out: string; err: string }> {
    this.unpack(p, replacing);
    return this.wm2(['--add-kmp', nvr(p)], { env: { INITRD_IN_POSTTRANS: '1', ...env } });
  }

  /** rpm -e: %preun saves the module list, files go, %postun runs --remove-kmp with the list on stdin. */
  async erase(n: string, env: Record<string, string> = {}, upgrade = false): Promise<{ status: number; out: string; err: string }> {
    const files = this.unpackRemove(n);
    const modules = files.filter((f) => /\.ko(\.(xz|gz|zst))?$/.test(f));
    if (upgrade) {
      // kmp-script's check_reinstall: no other version of this name → a reinstall, nothing to do.
      const name = n.split('-').slice(0, -2).join('-');
      if (!this.db().some((x) => x.name.startsWith(name) && nvr(x) !== n)) return { status: 0, out: '', err: '' };
    }
    if (modules.length === 0) return { status: 0, out: '', err: `WARNING: ${n} does not contain any kernel modules\n` };
    return this.wm2(['--remove-kmp', n], { stdin: modules.join('\n') + '\n', env });
  }

  /** rpm -U: the new package in (%post), then the old one out (%preun, files, %postun with $1 = 1). */
  async upgrade(from: string, to: FakePackage, env: Record<string, string> = {}): Promise<{ post: Awaited<ReturnType<SuseSystem['wm2']>>; postun: Awaited<ReturnType<SuseSystem['wm2']>> }> {
    // New files first (a file both own is replaced in place), then the new record.
    const post = await this.install(to, env, from);
    const postun = await this.erase(from, env, true);
    return { post, postun };
  }

  /** weak-updates links of a kernel: path below weak-updates → target. */
  links(release: string): Record<string, string> {
    return weakLinks(this.root, release);
  }

  modulesDep(release: string): string {
    return readFileSync(this.fx.path(`/usr/lib/modules/${release}/modules.dep`), 'utf8');
  }

  exists(path: string): boolean {
    try {
      lstatSync(this.fx.path(path));
      return true;
    } catch {
      return false;
    }
  }

  write(path: string, data: string | Uint8Array): void {
    mkdirSync(dirname(this.fx.path(path)), { recursive: true });
    writeFileSync(this.fx.path(path), data);
  }
}
