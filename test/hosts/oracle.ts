// SPDX-License-Identifier: GPL-2.0-or-later
//
// What must hold in a HostRoot after every package-manager step, each judged by an independent
// oracle:
//   - weak-updates links exactly where `kabi check --semantics depmod` says (weak-modules' rule;
//     the Debian and pacman hooks link with kabi's default, the loader's rule):
//     for every installed kernel K and every out-of-tree module M in another kernel's extra/,
//     K has weak-updates/<M's path under extra/> -> M iff M is compatible with K (modules of one
//     kernel judged together, as weak-modules groups them); no other link, no unreadable file
//     linked, every target inside the root;
//   - the depmod files of every installed kernel byte for byte what kmod's `depmod -a` writes
//     when run in the root (into a separate output directory, so the root is not changed);
//   - no kabi (node) process ran longer than NODE_LIMIT_S.
// Each function returns a list of human-readable problems: empty means it holds.

import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DEPMOD_OUTPUTS } from './kernel-payload.js';
import { NODE_LIMIT_S, REPO, type HostRoot, type NodeRun } from './host-root.js';

const KABI = join(REPO, 'dist/bin/kabi.js');
const MODULE = /\.ko(\.(xz|gz|zst))?$/;

/** Where the root keeps its kernels (merged /usr: /lib is a link to usr/lib). */
export function modulesDir(root: HostRoot): string {
  return root.path('usr/lib/modules');
}

/** Releases that are installed kernels (a module tree with modules.order), not leftover directories. */
export function installedKernels(root: HostRoot): string[] {
  const dir = modulesDir(root);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((k) => !k.startsWith('.') && existsSync(join(dir, k, 'modules.order')))
    .sort();
}

function files(dir: string, re: RegExp, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) files(p, re, out);
    else if (e.isFile() && re.test(e.name)) out.push(p);
  }
  return out;
}

/** weak-updates/<sub> -> target, for every entry (a non-link is reported as `<file>`). */
export function weakUpdates(root: HostRoot, release: string): Record<string, string> {
  const base = join(modulesDir(root), release, 'weak-updates');
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else out[relative(base, p)] = st.isSymbolicLink() ? readlinkSync(p) : '<file>';
    }
  };
  walk(base);
  return out;
}

interface Verdict {
  module: string;
  kernel: string;
  compatible: boolean;
}

function kabiJson<T>(args: string[]): T {
  const r = spawnSync(process.execPath, [KABI, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`kabi ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A module file kabi cannot read (the corrupt ones the tests ship) is never a candidate. */
function readable(file: string): boolean {
  return spawnSync(process.execPath, [KABI, 'inspect', '--json', file], { encoding: 'utf8', timeout: 60_000 }).status === 0;
}

/** For every installed kernel: link name -> the targets (system paths) allowed for it. */
export type Semantics = 'depmod' | 'loader';

export function expectedLinks(root: HostRoot, semantics: Semantics = 'depmod'): Record<string, Record<string, string[]>> {
  const kernels = installedKernels(root);
  const expected: Record<string, Record<string, string[]>> = Object.fromEntries(kernels.map((k) => [k, {}]));
  if (kernels.length === 0) return expected;
  const mods = modulesDir(root);
  for (const source of readdirSync(mods).filter((k) => !k.startsWith('.'))) {
    const extra = join(mods, source, 'extra');
    const candidates = files(extra, MODULE).filter(readable);
    if (candidates.length === 0) continue;
    const verdicts = kabiJson<Verdict[]>(['check', '--root', root.dir, '--semantics', semantics, '--json', ...kernels.flatMap((k) => ['--kernel', k]), ...candidates]);
    for (const v of verdicts) {
      if (!v.compatible || v.kernel === source) continue;
      const sub = relative(extra, v.module);
      const target = `/lib/modules/${source}/extra/${sub}`;
      (expected[v.kernel]![sub] ??= []).push(target);
    }
  }
  return expected;
}

/** Differences between the links in the root and expectedLinks(). */
export function linkProblems(root: HostRoot, semantics: Semantics = 'depmod'): string[] {
  const problems: string[] = [];
  const expected = expectedLinks(root, semantics);
  for (const [kernel, want] of Object.entries(expected)) {
    const have = weakUpdates(root, kernel);
    for (const [name, target] of Object.entries(have)) {
      const allowed = want[name];
      if (!allowed) problems.push(`${kernel}: weak-updates/${name} -> ${target} should not be there`);
      else if (!allowed.some((t) => sameFile(root, t, target))) problems.push(`${kernel}: weak-updates/${name} -> ${target}, expected -> ${allowed.join(' or ')}`);
    }
    for (const [name, allowed] of Object.entries(want)) {
      if (!(name in have)) problems.push(`${kernel}: weak-updates/${name} is missing (-> ${allowed.join(' or ')} is compatible)`);
    }
  }
  return problems;
}

/** Whether a link target (absolute, as the installed system sees it) names the same file as a system path. */
function sameFile(root: HostRoot, systemPath: string, linkTarget: string): boolean {
  if (!linkTarget.startsWith('/')) return false;
  try {
    return realpathSync(root.path(systemPath)) === realpathSync(root.path(linkTarget));
  } catch {
    return false;
  }
}

/**
 * kmod's `depmod -a K`, run in the root with its output put aside (-o), compared byte for byte
 * with the files in the kernel's module directory.
 */
export function depmodProblems(root: HostRoot): string[] {
  const problems: string[] = [];
  for (const kernel of installedKernels(root)) {
    // bookworm's kmod 30 has no -o: depmod -b runs on a hard-linked copy of the module
    // directory (links stay links and resolve in the root, as depmod sees them in place).
    const out = `/tmp/kabi-oracle-depmod`;
    rmSync(root.path(out), { recursive: true, force: true });
    mkdirSync(root.path(`${out}/lib/modules`), { recursive: true });
    const copy = spawnSync('cp', ['-al', join(modulesDir(root), kernel), root.path(`${out}/lib/modules/${kernel}`)], { encoding: 'utf8' });
    if (copy.status !== 0) throw new Error(`cp -al: ${copy.stderr}`);
    mkdirSync(root.path(`${out}/etc`), { recursive: true });
    if (existsSync(root.path('etc/depmod.d'))) spawnSync('cp', ['-a', root.path('etc/depmod.d'), root.path(`${out}/etc/`)]);
    for (const f of DEPMOD_OUTPUTS) rmSync(root.path(`${out}/lib/modules/${kernel}/${f}`), { force: true });
    const r = root.chroot(['depmod', '-a', '-b', out, kernel], { timeoutMs: 120_000 });
    if (r.status !== 0) {
      problems.push(`${kernel}: depmod -a failed in the root (${r.status}): ${r.stderr}`);
      continue;
    }
    const oracleDir = root.path(`${out}/lib/modules/${kernel}`);
    for (const f of DEPMOD_OUTPUTS) {
      const theirs = join(oracleDir, f);
      const ours = join(modulesDir(root), kernel, f);
      const a = existsSync(ours) ? readFileSync(ours) : undefined;
      const b = existsSync(theirs) ? readFileSync(theirs) : undefined;
      if (!a && b) problems.push(`${kernel}: ${f} is missing (depmod -a writes it)`);
      else if (a && !b) problems.push(`${kernel}: ${f} is there but depmod -a does not write it`);
      else if (a && b && !a.equals(b)) problems.push(`${kernel}: ${f} differs from depmod -a's (${a.length} vs ${b.length} bytes)`);
    }
    rmSync(root.path(out), { recursive: true, force: true });
  }
  return problems;
}

/** Node processes (kabi) that ran too long or were killed by the wrapper. */
export function slowRuns(runs: readonly NodeRun[]): string[] {
  return runs.filter((r) => r.seconds > NODE_LIMIT_S || r.status === 124 || r.status === 137).map((r) => `${r.argv}: ${r.seconds.toFixed(1)} s, status ${r.status}`);
}
