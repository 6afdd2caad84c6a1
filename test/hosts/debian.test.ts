// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi's Debian kernel hooks (/etc/kernel/postinst.d/dkms-kabi, /etc/kernel/prerm.d/kabi) run by
// real linux-image packages installed and purged with `dpkg --root` (dpkg chroots into the root
// for the maintainer scripts, which run the hooks with run-parts --exit-on-error). Out-of-tree
// modules come in a package of their own built for 57 (with a corrupt file among them); a kernel
// installed next gets every module that loads there linked (kabi link's default, the loader's
// rule), and its purge leaves nothing behind.

import { mkdirSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCorpus, type CorpusKernel } from '../real/corpus.js';
import { buildDeb, debianKernelDeb, dpkgFailures, dpkgRoot } from './deb.js';
import { makeHostRoot, type HostRoot } from './host-root.js';
import { installIntegration, installKabiFiles } from './kabi-package.js';
import { installedKernels, weakUpdates } from './oracle.js';
import { payloadDir } from './rpm.js';
import { afterStep } from './step-check.js';

const LEFTOVER_DIRS = ['boot', 'usr/lib/modules', 'run', 'etc/kernel'];
const MODULES = ['kabi_minimal', 'kabi_provider', 'kabi_consumer', 'kabi_nongpl'] as const;

function modulesDeb(k: CorpusKernel): string {
  const dir = payloadDir();
  const extra = join(dir, 'lib/modules', k.krel, 'extra/kabi-d');
  mkdirSync(extra, { recursive: true });
  for (const m of MODULES) copyFileSync(k.builtModules![m], join(extra, `${m}.ko`));
  writeFileSync(join(extra, 'kabi_broken.ko'), readFileSync(k.builtModules!.kabi_minimal).subarray(0, 1500));
  const depmod = `#!/bin/sh -e\ndepmod ${k.krel}\n`;
  return buildDeb({ name: `kabi-d-modules-${k.krel}`, version: '1', payload: dir, depends: `linux-image-${k.krel}`, scripts: { postinst: depmod, postrm: `#!/bin/sh -e\n[ -d /lib/modules/${k.krel}/kernel ] || exit 0\ndepmod ${k.krel}\n` } });
}

describe('dpkg --root: linux-image packages run kabi’s /etc/kernel hooks', () => {
  let root: HostRoot;
  let K56: CorpusKernel, K57: CorpusKernel;
  const deb: Record<string, string> = {};
  let baseline: string[] = [];
  const step = (what: string, args: string[], kabiRuns = true) => afterStep(root, what, dpkgRoot(root, args), { failures: dpkgFailures, kabiRuns, semantics: 'loader' });

  beforeAll(async () => {
    const corpus = loadCorpus();
    K56 = corpus.kernel('6.1.0-56-amd64');
    K57 = corpus.kernel('6.1.0-57-amd64');
    root = await makeHostRoot({ prefix: 'kabi-deb-' });
    installKabiFiles(root);
    installIntegration(root, 'debian/postinst.d/dkms-kabi', 'etc/kernel/postinst.d/dkms-kabi');
    installIntegration(root, 'debian/prerm.d/kabi', 'etc/kernel/prerm.d/kabi');
    deb.k56 = debianKernelDeb(K56);
    deb.k57 = debianKernelDeb(K57);
    deb.mods = modulesDeb(K57);
    baseline = root.listing(LEFTOVER_DIRS);
  });
  afterAll(() => root?.remove());

  it('installs a kernel: its postinst runs depmod and the hooks', () => {
    const r = step('dpkg -i linux-image 57', ['-i', deb.k57!]);
    expect(r.problems).toEqual([]);
    expect(installedKernels(root)).toEqual([K57.krel]);
  });

  it('installs out-of-tree modules for that kernel (one corrupt)', () => {
    const r = step('dpkg -i modules for 57', ['-i', deb.mods!], false);
    expect(r.problems).toEqual([]);
  });

  it('installs another kernel: the modules that load there are linked into it', () => {
    const r = step('dpkg -i linux-image 56', ['-i', deb.k56!]);
    expect(r.problems).toEqual([]);
    expect(Object.keys(weakUpdates(root, K56.krel)).length).toBeGreaterThan(0);
  });

  it('purges that kernel: its links go first, nothing of it is left', () => {
    const r = step('dpkg --purge linux-image 56', ['--purge', `linux-image-${K56.krel}`]);
    expect(r.problems).toEqual([]);
    expect(root.listing(['usr/lib/modules', 'boot']).filter((p) => p.includes(K56.krel))).toEqual([]);
  });

  it('purges the rest: the system is as it was', () => {
    const r = step('dpkg --purge modules, linux-image 57', ['--purge', `kabi-d-modules-${K57.krel}`, `linux-image-${K57.krel}`], false);
    expect(r.problems).toEqual([]);
    // dpkg itself removes /usr/lib/modules once the last package that ships it is gone (as it
    // would without kabi); everything else is as it was.
    const dpkgsOwn = (l: string[]) => l.filter((p) => p !== 'usr/lib/modules/');
    expect(dpkgsOwn(root.listing(LEFTOVER_DIRS))).toEqual(dpkgsOwn(baseline));
    expect(root.listing(['usr/lib/modules']).filter((p) => p !== 'usr/lib/modules/')).toEqual([]);
  });
});
