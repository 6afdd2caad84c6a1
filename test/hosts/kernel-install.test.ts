// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi's kernel-install plugin (integrations/kernel-install/40-kabi.install, installed in
// /usr/lib/kernel/install.d) run by systemd's real kernel-install (Debian 12's, chrooted into
// the root) beside its own 50-depmod.install: `kernel-install add` of a kernel links the
// out-of-tree modules of the other kernels that load there (weak-modules' rule, as on RHEL where
// the kernel's %posttrans runs weak-modules first), `kernel-install remove` drops them. The
// kernels' files are put in place as a package manager would, and taken away after remove.

import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCorpus, type CorpusKernel } from '../real/corpus.js';
import { makeHostRoot, type HostRoot } from './host-root.js';
import { installIntegration, installKabiFiles } from './kabi-package.js';
import { kernelPayload, type KernelPayload } from './kernel-payload.js';
import { installedKernels, weakUpdates } from './oracle.js';
import { payloadDir } from './rpm.js';
import { afterStep } from './step-check.js';

const LEFTOVER_DIRS = ['boot', 'usr/lib/modules', 'run'];

describe('kernel-install add/remove with kabi’s plugin', () => {
  let root: HostRoot;
  let K56: CorpusKernel, K57: CorpusKernel;
  const payloads: Record<string, KernelPayload> = {};
  let baseline: string[] = [];
  /** What a package manager does: the kernel's files put in place (through the /lib link). */
  const unpack = (p: KernelPayload) => {
    for (const f of p.files) {
      mkdirSync(dirname(root.path(f)), { recursive: true });
      copyFileSync(join(p.dir, f), root.path(f));
    }
  };
  const run = (args: string[]) => root.chroot(['kernel-install', ...args], { env: { KERNEL_INSTALL_VERBOSE: '1' } });
  const kernelInstall = (what: string, args: string[]) => afterStep(root, what, run(args), { kabiRuns: true });
  /** What a package manager does after `kernel-install remove`: its files go, then the empty directories. */
  const erase = (k: CorpusKernel) => {
    for (const f of payloads[k.krel]!.files) rmSync(root.path(f));
    root.chroot(['find', `/usr/lib/modules/${k.krel}`, '-depth', '-type', 'd', '-empty', '-delete']);
  };

  beforeAll(async () => {
    const corpus = loadCorpus();
    K56 = corpus.kernel('6.1.0-56-amd64');
    K57 = corpus.kernel('6.1.0-57-amd64');
    root = await makeHostRoot({ prefix: 'kabi-kernel-install-' });
    installKabiFiles(root);
    installIntegration(root, 'kernel-install/40-kabi.install', 'usr/lib/kernel/install.d/40-kabi.install');
    for (const k of [K56, K57]) payloads[k.krel] = kernelPayload(k, 'rhel', payloadDir());
    baseline = root.listing(LEFTOVER_DIRS);
  });
  afterAll(() => root?.remove());

  it('adds a kernel with out-of-tree modules (one corrupt) in its extra/', () => {
    unpack(payloads[K57.krel]!);
    const extra = root.path(`usr/lib/modules/${K57.krel}/extra/kabi-k`);
    mkdirSync(extra, { recursive: true });
    for (const m of ['kabi_minimal', 'kabi_provider', 'kabi_consumer', 'kabi_nongpl'] as const) copyFileSync(K57.builtModules![m], join(extra, `${m}.ko`));
    writeFileSync(join(extra, 'kabi_broken.ko'), readFileSync(K57.builtModules!.kabi_minimal).subarray(0, 1500));
    const r = kernelInstall('kernel-install add 57', ['add', K57.krel, `/lib/modules/${K57.krel}/vmlinuz`]);
    expect(r.problems).toEqual([]);
    expect(installedKernels(root)).toEqual([K57.krel]);
  });

  it('adds another kernel: the modules that load there are linked before depmod indexes them', () => {
    unpack(payloads[K56.krel]!);
    const r = kernelInstall('kernel-install add 56', ['add', K56.krel, `/lib/modules/${K56.krel}/vmlinuz`]);
    expect(r.problems).toEqual([]);
    expect(Object.keys(weakUpdates(root, K56.krel)).length).toBeGreaterThan(0);
  });

  it('removes that kernel: its links go; once its files are gone nothing of it is left', () => {
    const removed = run(['remove', K56.krel]);
    expect(weakUpdates(root, K56.krel)).toEqual({});
    erase(K56);
    expect(afterStep(root, 'kernel-install remove 56', removed, { kabiRuns: true }).problems).toEqual([]);
    expect(root.listing(['usr/lib/modules']).filter((p) => p.includes(K56.krel))).toEqual([]);
  });

  it('removes the last kernel the same way: the system is as it was', () => {
    const removed = run(['remove', K57.krel]);
    rmSync(root.path(`usr/lib/modules/${K57.krel}/extra`), { recursive: true });
    erase(K57);
    expect(afterStep(root, 'kernel-install remove 57', removed, { kabiRuns: true }).problems).toEqual([]);
    expect(root.listing(LEFTOVER_DIRS)).toEqual(baseline);
  });
});
