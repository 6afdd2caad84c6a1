// SPDX-License-Identifier: GPL-2.0-or-later
//
// What the reliability tests share: one template root whose kernels already carry links and
// depmod files, the drop-in and kabi link runs that change it (adds, a replaced target, a
// removal with its directory pruned, a kernel linked anew, a kernel emptied), and pictures of
// a root to compare: per kernel its links and its modules.dep(.bin), the staging files a run
// leaves while it works.

import { spawn, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureKernel } from '../../corpus/fixtures/system-root.js';
import { main } from '../../src/cli/main.js';
import { memoryIo } from '../../src/cli/io.js';
import type { KabiFs } from '../../src/fs.js';
import { nodeFs } from '../../src/fs.js';
import { wm } from '../linker/helpers.js';

export const A = '5.14.0-100.el9.x86_64'; // the modules were built here
export const B = '5.14.0-200.el9.x86_64';
export const C = '5.14.0-300.el9.x86_64';
export const D = '5.14.0-400.el9.x86_64'; // printk changed: nothing of A's loads here
export const E = '5.14.0-500.el9.x86_64'; // installed after the modules: no links yet
export const KERNELS = [A, B, C, D, E];

const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
const PRINTK = { symbol: 'printk', crc: 0x11 };

function kernel(release: string, printk = 0x11): FixtureKernel {
  return { release, symvers: 'boot-gz', vmlinux: [{ symbol: 'printk', crc: printk }], config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11"' }, dirs: ['extra'] };
}

/**
 * A root as a system with packages installed over time. `small` leaves out D and E (the runs
 * that only add and remove modules need no more, and are quicker).
 */
export async function template(opts: { small?: boolean } = {}): Promise<string> {
  const fx = makeRoot('kabi-rel-template-');
  for (const k of [A, B, C]) addKernel(fx, kernel(k));
  if (!opts.small) addKernel(fx, kernel(D, 0x99));
  const mod = (release: string, sub: string, name: string, exports: { symbol: string; crc: number }[] = []) =>
    fx.write(`/lib/modules/${release}/extra/${sub}/${name}.ko`, externalModule(release, { name, versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'], exports }));
  const old = mod(A, 'oldmod', 'oldmod');
  const gone = mod(A, 'gone', 'gone');
  const dup = mod(A, 'dup', 'dup');
  // Installed earlier: their links and depmod files are there.
  const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], [old, gone, dup].join('\n') + '\n');
  if (r.status !== 0) throw new Error(r.err);
  rmSync(gone); // its package was erased, weak-modules --remove-modules not yet run
  mod(A, 'alpha', 'alpha', [{ symbol: 'alpha_fn', crc: 0x31 }]);
  mod(A, 'beta', 'beta');
  mod(B, 'dup', 'dup'); // a newer build of dup, in B's tree
  if (!opts.small) addKernel(fx, kernel(E));
  return fx.root;
}

export interface Scenario {
  readonly name: string;
  readonly bin: 'weak-modules' | 'kabi';
  args(root: string): string[];
  stdin(root: string): string;
}

const sys = (root: string, p: string) => join(root, p);

/** The runs a package transaction makes (each starts from the template). */
export const SCENARIOS: readonly Scenario[] = [
  {
    // alpha and beta are new; B's dup replaces the link C has to A's dup (a changed target).
    name: 'weak-modules --add-modules',
    bin: 'weak-modules',
    args: (root) => ['--basedir', root, '--add-modules', '--no-initramfs'],
    stdin: (root) => [`/lib/modules/${A}/extra/alpha/alpha.ko`, `/lib/modules/${A}/extra/beta/beta.ko`, `/lib/modules/${B}/extra/dup/dup.ko`].map((p) => sys(root, p)).join('\n') + '\n',
  },
  {
    name: 'weak-modules --remove-modules',
    bin: 'weak-modules',
    args: (root) => ['--basedir', root, '--remove-modules', '--no-initramfs'],
    stdin: (root) => sys(root, `/lib/modules/${A}/extra/gone/gone.ko`) + '\n',
  },
  {
    name: 'weak-modules --add-kernel',
    bin: 'weak-modules',
    args: (root) => ['--basedir', root, '--add-kernel', E, '--no-initramfs'],
    stdin: () => '',
  },
  {
    name: 'kabi link --add',
    bin: 'kabi',
    args: (root) => ['link', '--root', root, '--no-initramfs', '--add', sys(root, `/lib/modules/${A}/extra/alpha/alpha.ko`), sys(root, `/lib/modules/${A}/extra/beta/beta.ko`)],
    stdin: () => '',
  },
  {
    name: 'weak-modules --remove-kernel',
    bin: 'weak-modules',
    args: (root) => ['--basedir', root, '--remove-kernel', C],
    stdin: () => '',
  },
];

/** A scenario run in this process, through a file system the test controls. */
export async function runInProcess(s: Scenario, root: string, fs: KabiFs = nodeFs): Promise<{ status: number; out: string; err: string }> {
  if (s.bin === 'weak-modules') return wm(s.args(root), s.stdin(root), fs);
  const io = memoryIo({ stdin: s.stdin(root), fs });
  const status = await main(s.args(root), io);
  return { status, out: io.out(), err: io.err() };
}

export function copyRoot(root: string, prefix = 'kabi-rel-'): string {
  const dst = mkdtempSync(join(tmpdir(), prefix));
  cpSync(root, dst, { recursive: true, verbatimSymlinks: true });
  return dst;
}

/** One kernel as modprobe sees it: its weak-updates links and its module index. */
export interface KernelPicture {
  readonly links: Record<string, string>;
  readonly weakUpdates: boolean;
  readonly dep: string;
}

export function picture(root: string): Record<string, KernelPicture> {
  const out: Record<string, KernelPicture> = {};
  for (const k of KERNELS) {
    const dir = join(root, 'lib/modules', k);
    if (!existsSync(dir)) continue;
    const links: Record<string, string> = {};
    const walk = (d: string) => {
      for (const n of readdirSync(d).sort()) {
        const p = join(d, n);
        const st = lstatSync(p);
        if (st.isSymbolicLink()) links[p.slice(dir.length + 'weak-updates/'.length + 1)] = readlinkSync(p);
        else if (st.isDirectory()) walk(p);
      }
    };
    const weakUpdates = existsSync(join(dir, 'weak-updates'));
    if (weakUpdates) walk(join(dir, 'weak-updates'));
    const dep = ['modules.dep', 'modules.dep.bin']
      .map((f) => (existsSync(join(dir, f)) ? createHash('sha256').update(readFileSync(join(dir, f))).digest('hex').slice(0, 16) : '-'))
      .join('/');
    out[k] = { links, weakUpdates, dep };
  }
  return out;
}

/** What a run leaves while it works (and must not leave once it, or the next run, is done). */
export function leftovers(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (/kabi-(tmp|new|old|journal|staging)|\.kabi\.lock/.test(n)) out.push(p.slice(root.length));
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(join(root, 'lib/modules'));
  return out.sort();
}

/**
 * The invariant a reader relies on at every instant, even right after a kill -9: each kernel's
 * weak-updates/ exists if it did before, and each link that exists both before and after the
 * run is there, pointing at its old target or its new one.
 */
export function neverMissing(root: string, before: Record<string, KernelPicture>, after: Record<string, KernelPicture>): string[] {
  const problems: string[] = [];
  for (const k of Object.keys(before)) {
    const dir = join(root, 'lib/modules', k, 'weak-updates');
    if (before[k]!.weakUpdates && !existsSync(dir)) problems.push(`${k}: weak-updates/ is missing`);
    for (const [link, was] of Object.entries(before[k]!.links)) {
      const will = after[k]!.links[link];
      if (will === undefined) continue;
      let now: string | undefined;
      try {
        now = readlinkSync(join(dir, link));
      } catch {
        now = undefined;
      }
      if (now !== was && now !== will) problems.push(`${k}: ${link} is ${now ?? 'missing'} (was ${was}, will be ${will})`);
    }
  }
  return problems;
}

/** Kernels whose picture is neither the old one nor the new one. */
export function mixedKernels(now: Record<string, KernelPicture>, before: Record<string, KernelPicture>, after: Record<string, KernelPicture>): string[] {
  const same = (a: KernelPicture, b: KernelPicture) => JSON.stringify(a) === JSON.stringify(b);
  return Object.keys(before).filter((k) => !same(now[k]!, before[k]!) && !same(now[k]!, after[k]!)).map((k) => `${k}: ${JSON.stringify(now[k])}`);
}

export interface BinRun {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export const BINS = { 'weak-modules': 'dist/bin/weak-modules.js', kabi: 'dist/bin/kabi.js' } as const;

/** Run a built bin as a process with a time limit (a run that hangs fails the test instead). */
export function runBin(bin: keyof typeof BINS, args: string[], opts: { stdin?: string; env?: Record<string, string>; timeoutMs?: number; nodeArgs?: string[] } = {}): Promise<BinRun> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...(opts.env ?? {}) } };
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), join(process.cwd(), BINS[bin]), ...args], spawnOpts);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.stdin ?? '');
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} ${args.join(' ')} did not end within ${opts.timeoutMs ?? 60_000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

export { rng } from '../random.js';

export { pool } from '../real/util.js';

/** $KABI_TEST_SEED replays a run; each test names the seed it used. */
export function seedFromEnv(): number {
  const s = Number(process.env.KABI_TEST_SEED);
  return Number.isFinite(s) && process.env.KABI_TEST_SEED !== '' ? s : 20240611;
}
