// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi's pacman hooks (integrations/pacman/*.hook) run by a real `pacman -r` installing and
// removing linux-like packages built from corpus kernels, beside Arch's depmod hook. A package of
// out-of-tree modules built for 57 (one corrupt) is installed; a kernel installed next gets every
// module that loads there linked (kabi link's default, the loader's rule); its removal leaves
// nothing behind, and neither does the removal of everything else.

import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCorpus, type CorpusKernel } from '../real/corpus.js';
import { makeHostRoot, REPO, type HostRoot } from './host-root.js';
import { installIntegration, installKabiFiles } from './kabi-package.js';
import { installedKernels, weakUpdates } from './oracle.js';
import { archKernelPkg, buildPkg, installArchDepmodHook, pacmanFailures, pacmanRoot } from './pacman.js';
import { payloadDir } from './rpm.js';
import { afterStep } from './step-check.js';

const LEFTOVER_DIRS = ['boot', 'usr/lib/modules', 'run'];
const MODULES = ['kabi_minimal', 'kabi_provider', 'kabi_consumer', 'kabi_nongpl'] as const;

function modulesPkg(k: CorpusKernel): string {
  const dir = payloadDir();
  const extra = join(dir, 'usr/lib/modules', k.krel, 'extra/kabi-p');
  mkdirSync(extra, { recursive: true });
  for (const m of MODULES) copyFileSync(k.builtModules![m], join(extra, `${m}.ko`));
  writeFileSync(join(extra, 'kabi_broken.ko'), readFileSync(k.builtModules!.kabi_minimal).subarray(0, 1500));
  return buildPkg({ name: 'kabi-p-modules', version: '1-1', payload: dir, depends: [`linux-${k.krel.split('-')[1]}`] });
}

describe('pacman -r: linux-like packages run kabi’s alpm hooks', () => {
  let root: HostRoot;
  let K56: CorpusKernel, K57: CorpusKernel;
  const pkg: Record<string, string> = {};
  let baseline: string[] = [];
  const step = (what: string, args: string[], kabiRuns = true) => afterStep(root, what, pacmanRoot(root, args), { failures: pacmanFailures, kabiRuns, semantics: 'loader' });

  beforeAll(async () => {
    const corpus = loadCorpus();
    K56 = corpus.kernel('6.1.0-56-amd64');
    K57 = corpus.kernel('6.1.0-57-amd64');
    root = await makeHostRoot({ prefix: 'kabi-pacman-' });
    installKabiFiles(root);
    installArchDepmodHook(root);
    for (const hook of readdirSync(join(REPO, 'integrations/pacman'))) installIntegration(root, `pacman/${hook}`, `usr/share/libalpm/hooks/${hook}`, 0o644);
    pkg.k56 = archKernelPkg(K56);
    pkg.k57 = archKernelPkg(K57);
    pkg.mods = modulesPkg(K57);
    baseline = root.listing(LEFTOVER_DIRS);
  });
  afterAll(() => root?.remove());

  it('installs a kernel: depmod and kabi’s hooks run', () => {
    const r = step('pacman -U linux-57', ['-U', pkg.k57!]);
    expect(r.problems).toEqual([]);
    expect(installedKernels(root)).toEqual([K57.krel]);
  });

  it('installs out-of-tree modules for it (one corrupt)', () => {
    const r = step('pacman -U kabi-p-modules', ['-U', pkg.mods!], false);
    expect(r.problems).toEqual([]);
  });

  it('installs another kernel: the modules that load there are linked into it', () => {
    const r = step('pacman -U linux-56', ['-U', pkg.k56!]);
    expect(r.problems).toEqual([]);
    expect(Object.keys(weakUpdates(root, K56.krel)).length).toBeGreaterThan(0);
  });

  it('removes that kernel: nothing of it is left', () => {
    const r = step('pacman -R linux-56', ['-R', 'linux-56']);
    expect(r.problems).toEqual([]);
    expect(root.listing(['usr/lib/modules']).filter((p) => p.includes(K56.krel))).toEqual([]);
  });

  it('removes the rest: the system is as it was', () => {
    const r = step('pacman -R kabi-p-modules linux-57', ['-R', 'kabi-p-modules', 'linux-57']);
    expect(r.problems).toEqual([]);
    expect(root.listing(LEFTOVER_DIRS)).toEqual(baseline);
  });
});
