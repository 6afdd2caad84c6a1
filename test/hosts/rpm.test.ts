// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi inside a real rpm: kabi's own package (integrations/rpm/kabi.spec: file triggers,
// alternatives for /usr/sbin/weak-modules), kernel-core packages with RHEL 9's kernel scriptlets,
// a kmod package with no scriptlets (kabi's triggers link it) and one with kmodtool's scriptlets
// calling /usr/sbin/weak-modules, installed, upgraded to a build for another kernel and erased
// with `rpm --root` in a bookworm root (rpm chroots into it for every scriptlet and trigger).
// Kernels: three Debian 6.1 ABIs of the corpus; 56 and 57 share module_layout, 47 does not,
// so modules built for 57 link into 56 and modules built for 47 link nowhere.

import { existsSync, mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCorpus, type CorpusKernel } from '../real/corpus.js';
import { makeHostRoot, type HostRoot } from './host-root.js';
import { kabiRpm } from './kabi-package.js';
import { installedKernels, weakUpdates } from './oracle.js';
import { baseRpm, kernelRpm, kmodRpm, RHEL_DEPMOD_CONF } from './rpm-packages.js';
import { rpmRoot, rpmScriptletFailures } from './rpm.js';
import { afterStep } from './step-check.js';

const LEFTOVER_DIRS = ['boot', 'usr/lib/modules', 'var/cache/kabi', 'usr/sbin', 'usr/libexec', 'etc/alternatives', 'var/lib/dpkg/alternatives', 'run', 'etc/kernel'];

describe('rpm --root: kabi package, kernel-core and kmod packages', () => {
  let root: HostRoot;
  let K47: CorpusKernel, K56: CorpusKernel, K57: CorpusKernel;
  const pkg: Record<string, string> = {};
  let baseline: string[] = [];

  const step = (what: string, args: string[], kabiRuns = true) => {
    const r = rpmRoot(root, args);
    return afterStep(root, what, r, { failures: rpmScriptletFailures, kabiRuns });
  };

  beforeAll(async () => {
    const corpus = loadCorpus();
    const byAbi = (abi: string) => corpus.kernels({ arch: 'amd64', series: '6.1' }).find((k) => k.krel === `6.1.0-${abi}-amd64`)!;
    [K47, K56, K57] = [byAbi('47'), byAbi('56'), byAbi('57')];
    expect([K47, K56, K57].every(Boolean)).toBe(true);
    root = await makeHostRoot({ prefix: 'kabi-rpm-' });
    mkdirSync(root.path('etc/depmod.d'), { recursive: true });
    writeFileSync(root.path('etc/depmod.d/dist.conf'), RHEL_DEPMOD_CONF);
    pkg.base = baseRpm();
    pkg.kabi = kabiRpm();
    for (const k of [K47, K56, K57]) pkg[`kernel-${k.krel}`] = kernelRpm(k);
    pkg.a1 = kmodRpm({ name: 'kabi-a', version: '1', kernel: K47, modules: ['kabi_provider', 'kabi_consumer', 'kabi_ns_ok'], corrupt: ['kabi_broken'], style: 'triggers' });
    pkg.a2 = kmodRpm({ name: 'kabi-a', version: '2', kernel: K57, modules: ['kabi_provider', 'kabi_consumer', 'kabi_ns_ok'], corrupt: ['kabi_broken'], style: 'triggers' });
    pkg.b1 = kmodRpm({ name: 'kabi-b', version: '1', kernel: K57, modules: ['kabi_minimal', 'kabi_nongpl', 'kabi_ns_missing'], style: 'kmodtool' });
    pkg.b2 = kmodRpm({ name: 'kabi-b', version: '2', kernel: K47, modules: ['kabi_minimal', 'kabi_nongpl', 'kabi_ns_missing'], style: 'kmodtool' });
    expect(rpmRoot(root, ['--initdb']).status).toBe(0);
  });
  afterAll(() => root?.remove());

  it('installs kabi: /usr/sbin/weak-modules is kabi’s, through alternatives', () => {
    const r = step('rpm -i kabi', ['-i', pkg.base!, pkg.kabi!], false);
    expect(r.problems).toEqual([]);
    expect(readlinkSync(root.path('usr/sbin/weak-modules'))).toBe('/etc/alternatives/weak-modules');
    expect(readlinkSync(root.path('etc/alternatives/weak-modules'))).toBe('/usr/libexec/kabi/weak-modules');
    baseline = root.listing(LEFTOVER_DIRS);
  });

  it('installs two kernels in one transaction (their %posttrans runs weak-modules --add-kernel, kernel-install)', () => {
    const r = step('rpm -i kernel-core 47 57', ['-i', pkg[`kernel-${K47.krel}`]!, pkg[`kernel-${K57.krel}`]!]);
    expect(r.problems).toEqual([]);
    expect(installedKernels(root)).toEqual([K47.krel, K57.krel]);
  });

  it('installs a kmod without scriptlets (kabi’s file trigger) and a kmodtool-style one, a corrupt module among them', () => {
    const r = step('rpm -i kmod-kabi-a-1 kmod-kabi-b-1', ['-i', pkg.a1!, pkg.b1!]);
    expect(r.problems).toEqual([]);
  });

  it('installs a third kernel: compatible modules of the others are linked into it', () => {
    const r = step('rpm -i kernel-core 56', ['-i', '--oldpackage', pkg[`kernel-${K56.krel}`]!]);
    expect(r.problems).toEqual([]);
    // kmod-kabi-b-1 (built for 57) loads on 56.
    expect(Object.keys(weakUpdates(root, K56.krel)).sort()).toEqual(['kabi-b/kabi_minimal.ko', 'kabi-b/kabi_nongpl.ko', 'kabi-b/kabi_ns_missing.ko']);
  });

  it('upgrades the trigger-only kmod to a build for another kernel', () => {
    const r = step('rpm -U kmod-kabi-a-2', ['-U', pkg.a2!]);
    expect(r.problems).toEqual([]);
    expect(Object.keys(weakUpdates(root, K56.krel)).filter((l) => l.startsWith('kabi-a/')).sort()).toEqual([
      'kabi-a/kabi_consumer.ko',
      'kabi-a/kabi_ns_ok.ko',
      'kabi-a/kabi_provider.ko',
    ]);
  });

  it('upgrades the kmodtool-style kmod to a build for another kernel', () => {
    const r = step('rpm -U kmod-kabi-b-2', ['-U', pkg.b2!]);
    expect(r.problems).toEqual([]);
    expect(Object.keys(weakUpdates(root, K56.krel)).filter((l) => l.startsWith('kabi-b/'))).toEqual([]);
  });

  it('erases the trigger-only kmod: its links go at the end of the transaction', () => {
    const r = step('rpm -e kmod-kabi-a', ['-e', 'kmod-kabi-a']);
    expect(r.problems).toEqual([]);
    expect(weakUpdates(root, K56.krel)).toEqual({});
    expect(existsSync(root.path('run/kabi/rpm-trigger/erased-modules'))).toBe(false);
  });

  it('erases a kernel: nothing of it is left', () => {
    const r = step('rpm -e kernel-core 56', ['-e', `kernel-core-6.1.0-56`]);
    expect(r.problems).toEqual([]);
    expect(root.listing(['usr/lib/modules']).filter((p) => p.includes(K56.krel))).toEqual([]);
    expect(root.listing(['boot']).filter((p) => p.includes(K56.krel))).toEqual([]);
  });

  it('erases the rest: the system is as it was before the first kernel', () => {
    const r = step('rpm -e kmod-kabi-b kernel-core', ['-e', 'kmod-kabi-b', `kernel-core-6.1.0-47`, `kernel-core-6.1.0-57`]);
    expect(r.problems).toEqual([]);
    expect(root.listing(LEFTOVER_DIRS)).toEqual(baseline);
  });

  it('erases kabi: its alternative and files go', () => {
    const r = step('rpm -e kabi', ['-e', 'kabi'], false);
    expect(r.problems).toEqual([]);
    expect(existsSync(root.path('usr/sbin/weak-modules'))).toBe(false);
    expect(root.listing(['usr/libexec/kabi', 'usr/lib/node_modules/kabi', 'etc/alternatives/weak-modules', 'var/cache/kabi'])).toEqual([]);
  });
});
