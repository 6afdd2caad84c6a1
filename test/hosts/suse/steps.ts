// SPDX-License-Identifier: GPL-2.0-or-later
//
// The checks after every rpm step of the SUSE host tests (the SUSE counterpart of
// ../step-check.ts, whose link oracle knows RHEL's layout): rpm exited as expected and reported
// no failed scriptlet, kabi ran and no kabi process took longer than NODE_LIMIT_S, SUSE's own
// weak-modules2 was never called, every weak-updates link is a symlink to a module inside the
// root that `kabi check --semantics depmod` finds compatible with its kernel (the rule the
// links were made by), and every kernel's depmod files are kmod's `depmod -a`, byte for byte.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { HostRoot, RunResult } from '../host-root.js';
import { REPO } from '../host-root.js';
import { depmodProblems, installedKernels, slowRuns, weakUpdates } from '../oracle.js';
import { rpmRoot, rpmScriptletFailures } from '../rpm.js';
import { SUSE_WM2_LOG } from './suse-packages.js';

const KABI = join(REPO, 'dist/bin/kabi.js');

/** weak-updates of a kernel: path below weak-updates → link target (`<file>` for a non-link). */
export const links = weakUpdates;

/** Every link of every kernel judged by kabi check (depmod semantics, or the loader's). */
export function linkVerdictProblems(root: HostRoot, semantics: 'depmod' | 'loader' = 'depmod'): string[] {
  const problems: string[] = [];
  for (const k of installedKernels(root)) {
    const targets: string[] = [];
    for (const [name, target] of Object.entries(links(root, k))) {
      if (!target.startsWith('/')) problems.push(`${k}: weak-updates/${name} -> ${target} is not an absolute link`);
      else if (!existsSync(root.path(target))) problems.push(`${k}: weak-updates/${name} -> ${target} dangles`);
      else targets.push(root.path(target));
    }
    if (targets.length === 0) continue;
    const r = spawnSync(process.execPath, [KABI, 'check', '--root', root.dir, '--kernel', k, '--semantics', semantics, '--json', ...targets], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0 && r.status !== 1) throw new Error(`kabi check: ${r.stderr}`);
    for (const v of JSON.parse(r.stdout) as { module: string; compatible: boolean; reasons: { message: string }[] }[]) {
      if (!v.compatible) problems.push(`${k}: ${relative(root.dir, v.module)} is linked but not compatible: ${v.reasons.map((x) => x.message).join('; ')}`);
    }
  }
  return problems;
}

export interface SuseStep {
  readonly r: RunResult;
  readonly problems: string[];
  /** rpm's output (the scriptlets' stderr included). */
  readonly out: string;
}

/** One `rpm --root` step and every check after it. `expectFailure`: a scriptlet is meant to fail. */
export function rpmStep(
  root: HostRoot,
  what: string,
  args: string[],
  opts: { expectFailure?: RegExp; rpmRefuses?: RegExp; kabiRuns?: boolean; semantics?: 'depmod' | 'loader'; depmodLeftStale?: readonly string[] } = {},
): SuseStep {
  const r = rpmRoot(root, args);
  const out = `${r.stdout}\n${r.stderr}`.trim();
  const problems: string[] = [];
  const failures = rpmScriptletFailures(r);
  if (opts.rpmRefuses) {
    // rpm itself refuses the transaction (a file conflict): it must say so and change nothing.
    if (r.status === 0 || !opts.rpmRefuses.test(out)) problems.push(`${what}: expected rpm to refuse with ${opts.rpmRefuses}, it exited ${r.status}:\n${out}`);
  } else if (opts.expectFailure) {
    if (!failures.some((l) => opts.expectFailure!.test(l))) problems.push(`${what}: expected a failed scriptlet matching ${opts.expectFailure}, rpm said:\n${out}`);
  } else {
    if (r.status !== 0 || r.timedOut) problems.push(`${what}: rpm exited ${r.timedOut ? 'by timeout' : (r.signal ?? r.status)}\n${out}`);
    for (const l of failures) problems.push(`${what}: ${l}\n${out}`);
  }
  const runs = root.nodeRuns();
  if (opts.kabiRuns !== false && runs.length === 0) problems.push(`${what}: kabi never ran`);
  problems.push(...slowRuns(runs).map((s) => `${what}: slow or killed: ${s}`));
  if (existsSync(root.path(SUSE_WM2_LOG))) problems.push(`${what}: SUSE's weak-modules2 ran: ${readFileSync(root.path(SUSE_WM2_LOG), 'utf8')}`);
  problems.push(...linkVerdictProblems(root, opts.semantics).map((p) => `${what}: ${p}`));
  // A refused package's files are installed, but weak-modules2 ran no depmod for it.
  const stale = new Set(opts.depmodLeftStale ?? []);
  const depmod = depmodProblems(root);
  problems.push(...depmod.filter((p) => !stale.has(p.split(':')[0]!)).map((p) => `${what}: ${p}`));
  for (const k of stale) if (!depmod.some((p) => p.startsWith(`${k}:`))) problems.push(`${what}: ${k}'s depmod files were expected to lag behind its tree`);
  if (problems.length > 0) problems.push(`${what}: rpm said:\n${out}`);
  return { r, problems, out };
}

/** The module files an initrd holds (paths inside it), listed by kabi (lsinitrd's view). */
export function initrdModules(root: HostRoot, release: string): string[] {
  const image = root.path(`boot/initrd-${release}`);
  if (!existsSync(image)) return [];
  const r = spawnSync(process.execPath, [KABI, 'initramfs', 'ls', '--names', image], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`kabi initramfs ls ${image}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => /\.ko(\.(xz|zst|gz))?$/.test(l)).sort();
}
