// SPDX-License-Identifier: GPL-2.0-or-later
//
// Real RPM packages, built with this machine's rpmbuild (Debian's rpm 4.18), installed into a
// HostRoot with `rpm --root` (rpm chroots into it to run scriptlets and triggers).
//
//   buildRpm({ name, version, release, payload, files, scripts })  → path of the .rpm
//   rpmRoot(root, ['-i', pkg])                                        → rpm's RunResult
//
// A package's files come from a payload directory laid out as the installed system
// (payload/lib/modules/K/...); `files` are its %files lines; `scripts` is spec text appended
// as is (%post, %posttrans, %transfiletriggerin…). Packages are noarch, uncompressed, without
// automatic dependencies and without rpmbuild's post-install processing (no stripping).
// SUSE KMP tests (test/hosts/suse/) and the initramfs tests build their packages with this.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostRoot, RunResult } from './host-root.js';

export interface RpmSpec {
  name: string;
  version: string;
  release: string;
  /** Directory laid out as the installed system; copied into the buildroot. */
  payload?: string;
  /** %files lines (paths as installed, %dir, %ghost …). */
  files?: readonly string[];
  /** Spec text appended after %files: scriptlets, triggers. */
  scripts?: string;
  requires?: readonly string[];
  provides?: readonly string[];
  conflicts?: readonly string[];
  summary?: string;
}

/** The common rpmbuild/rpm defines: rpm's database where the root's rpm looks for it. */
const DB = ['--define', '_dbpath /var/lib/rpm'];

export function rpmbuildDefines(topdir: string): string[] {
  return [
    ...DB,
    '--define', `_topdir ${topdir}`,
    '--define', '_binary_payload w.ufdio',
    '--define', 'debug_package %{nil}',
    '--define', '__os_install_post %{nil}',
    '--define', '_build_id_links none',
  ];
}

export function specText(s: RpmSpec): string {
  const lines = [
    `Name: ${s.name}`,
    `Version: ${s.version}`,
    `Release: ${s.release}`,
    `Summary: ${s.summary ?? `${s.name} (kabi host test package)`}`,
    'License: GPL-2.0-or-later',
    'BuildArch: noarch',
    'AutoReqProv: no',
    ...(s.requires ?? []).map((r) => `Requires: ${r}`),
    ...(s.provides ?? []).map((p) => `Provides: ${p}`),
    ...(s.conflicts ?? []).map((c) => `Conflicts: ${c}`),
    '',
    '%description',
    `${s.name}, built by kabi's host tests.`,
    '',
    '%install',
    'mkdir -p %{buildroot}',
    ...(s.payload ? [`cp -a ${JSON.stringify(s.payload)}/. %{buildroot}/`] : []),
    '',
    '%files',
    ...(s.files ?? []),
    '',
    s.scripts ?? '',
  ];
  return lines.join('\n') + '\n';
}

/** rpmbuild -bb a spec text (sources in sourceDir); returns the one binary package it wrote. */
export function rpmbuildSpec(text: string, sourceDir?: string, extraDefines: readonly string[] = []): string {
  const top = mkdtempSync(join(tmpdir(), 'kabi-rpmbuild-'));
  const spec = join(top, 'package.spec');
  writeFileSync(spec, text);
  const args = ['-bb', ...rpmbuildDefines(top), ...(sourceDir ? ['--define', `_sourcedir ${sourceDir}`] : []), ...extraDefines, spec];
  const r = spawnSync('rpmbuild', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 600_000 });
  if (r.status !== 0) throw new Error(`rpmbuild failed (${r.status ?? r.signal}):\n${r.stderr.slice(-4000)}\n--- spec ---\n${text}`);
  const rpms = join(top, 'RPMS');
  const found: string[] = [];
  for (const arch of existsSync(rpms) ? readdirSync(rpms) : []) for (const f of readdirSync(join(rpms, arch))) found.push(join(rpms, arch, f));
  if (found.length !== 1) throw new Error(`rpmbuild wrote ${found.length} packages: ${found.join(', ')}`);
  return found[0]!;
}

export function buildRpm(s: RpmSpec): string {
  return rpmbuildSpec(specText(s));
}

/**
 * `rpm --root ROOT --dbpath /var/lib/rpm ARGS…`, as an administrator runs it (rpm chroots into
 * the root for every scriptlet). --force-debian silences Debian's "use alien" note on install.
 */
export function rpmRoot(root: HostRoot, args: readonly string[]): RunResult {
  const install = args.some((a) => /^-[^-]*[iU]|^--(install|upgrade|reinstall)$/.test(a));
  return root.host(['rpm', '--root', root.dir, ...DB, ...(install ? ['--force-debian'] : []), ...args]);
}

/** rpm's complaints that do not change its exit status: a failed scriptlet or trigger is a failed step. */
export function rpmScriptletFailures(r: RunResult): string[] {
  return `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /scriptlet failed|%(pre|post|preun|postun|posttrans|trigger\w*|transfiletrigger\w*)\([^)]*\) scriptlet/.test(l));
}

/** A payload directory to fill (payload/<path as installed>). */
export function payloadDir(prefix = 'kabi-payload-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(d, { recursive: true });
  return d;
}
