// SPDX-License-Identifier: GPL-2.0-or-later
//
// Every boot image holds what its generator would put there, through real rpm transactions and
// the deferred path: kabi's package (file triggers running kabi's weak-modules with
// --check-initramfs-prog kabi-defer-initramfs, then `kabi initramfs flush`), a kernel-core with
// RHEL's scriptlets, dracut 059 configured with add_drivers and omit_drivers, and kmod packages
// without scriptlets of (a) a module named in add_drivers, (b) a block driver (extra/drivers/block,
// where dracut's "=drivers" rule reaches), (c) a driver no rule includes, (d) a block driver in
// omit_drivers — each installed, upgraded to another build and erased with `rpm --root`. After
// every transaction: the image's module list (lsinitrd) is a fresh `dracut -f`'s for the same
// tree, the image was rebuilt only when that list differs or a module it holds changed, the
// changed module's bytes are dracut's, and no deferred record is left.

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHostRoot, type HostRoot } from '../hosts/host-root.js';
import { kabiRpm } from '../hosts/kabi-package.js';
import { baseRpm, kernelRpm, RHEL_DEPMOD_CONF } from '../hosts/rpm-packages.js';
import { buildRpm, payloadDir, rpmRoot, rpmScriptletFailures } from '../hosts/rpm.js';
import { loadCorpus, type CorpusKernel } from './corpus.js';
import { inclusionModules, type InclusionModule } from './initramfs-env.js';

const PLACE: Partial<Record<InclusionModule, string>> = { kabi_add: 'extra/kabi-add', kabi_blk: 'extra/drivers/block', kabi_plain: 'extra/kabi-plain', kabi_omit: 'extra/drivers/block' };
const KINDS = ['kabi_add', 'kabi_blk', 'kabi_plain', 'kabi_omit'] as const;

function kmodRpm(k: CorpusKernel, m: InclusionModule, version: 1 | 2, file: string): string {
  const dir = `/lib/modules/${k.krel}/${PLACE[m]}`;
  const payload = payloadDir();
  mkdirSync(join(payload, dir), { recursive: true });
  writeFileSync(join(payload, dir, `${m}.ko`), readFileSync(file));
  return buildRpm({
    name: `kmod-${m.replace(/_/g, '-')}`,
    version: String(version),
    release: '1',
    payload,
    requires: ['kernel-core'],
    // No scriptlets: kabi's own file triggers link the module and refresh the images.
    files: [`${dir}/${m}.ko`],
  });
}

function moduleList(root: HostRoot, image: string): string[] {
  const r = root.chroot(['lsinitrd', image]);
  if (r.status !== 0) throw new Error(`lsinitrd ${image}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .map((l) => l.split(/\s+/).slice(8).join(' ').replace(/ -> .*$/, ''))
    .filter((n) => /\.ko(\.(xz|zst|gz))?$/.test(n))
    .sort();
}

describe('rpm --root transactions with the deferred initramfs path', () => {
  let root: HostRoot;
  let K: CorpusKernel;
  let image: string;
  const pkgs: Record<string, string> = {};
  const log: string[] = [];

  beforeAll(async () => {
    K = loadCorpus().kernels({ arch: 'amd64', series: '6.1', role: 'newest' })[0]!;
    root = await makeHostRoot({ prefix: 'kabi-initramfs-rpm-', chroot: 'hostDracut' });
    mkdirSync(root.path('etc/depmod.d'), { recursive: true });
    writeFileSync(root.path('etc/depmod.d/dist.conf'), RHEL_DEPMOD_CONF);
    mkdirSync(root.path('etc/dracut.conf.d'), { recursive: true });
    writeFileSync(root.path('etc/dracut.conf.d/10-kabi-test.conf'), 'compress="zstd -1 -q"\nearly_microcode="no"\nadd_drivers+=" kabi_add "\nomit_drivers+=" kabi_omit "\n');
    const built = inclusionModules(K);
    for (const m of KINDS) for (const v of [1, 2] as const) pkgs[`${m}-${v}`] = kmodRpm(K, m, v, built[v][m]);
    expect(rpmRoot(root, ['--initdb']).status).toBe(0);
    const setup = rpmRoot(root, ['-i', baseRpm(), kabiRpm(), kernelRpm(K)]);
    expect(setup.status, setup.stderr).toBe(0);
    // The first image, as the kernel's own installation (dracut's kernel-install plugin) makes it.
    image = `/boot/initramfs-${K.krel}.img`;
    const d = root.chroot(['dracut', '-q', '-f', image, K.krel]);
    expect(d.status, d.stderr).toBe(0);
  });
  afterAll(() => {
    root?.remove();
    if (log.length) console.log(`rpm transactions:\n${log.join('\n')}`);
  });

  it.each(KINDS)('%s: install, upgrade to another build, erase', (m) => {
    // Only a transaction changes the image: its list after one is its list before the next.
    let before = moduleList(root, image);
    for (const [op, args] of [
      ['install', ['-i', pkgs[`${m}-1`]!]],
      ['upgrade', ['-U', pkgs[`${m}-2`]!]],
      ['erase', ['-e', `kmod-${m.replace(/_/g, '-')}`]],
    ] as const) {
      const bytesBefore = readFileSync(root.path(image));
      const r = rpmRoot(root, args);
      const what = `${m} ${op}`;
      expect(r.status, `${what}: rpm exited ${r.status}\n${r.stdout}\n${r.stderr}`).toBe(0);
      expect(rpmScriptletFailures(r), what).toEqual([]);
      const after = moduleList(root, image);
      const rebuilt = !readFileSync(root.path(image)).equals(bytesBefore);
      const fresh = root.chroot(['dracut', '-q', '-f', '/tmp/fresh.img', K.krel]);
      expect(fresh.status, fresh.stderr).toBe(0);
      const expected = moduleList(root, '/tmp/fresh.img');
      const holds = expected.find((p) => p.endsWith(`/${m}.ko`));
      log.push(`${what}: image ${rebuilt ? 'rebuilt' : 'unchanged'}; ${holds ? `holds ${holds}` : `no ${m}`}`);
      expect(after, `${what}: the image's modules vs a fresh dracut -f`).toEqual(expected);
      expect(rebuilt, `${what}: rebuilt only when a fresh run differs`).toBe(JSON.stringify(expected) !== JSON.stringify(before) || (op === 'upgrade' && holds !== undefined));
      if (holds && op !== 'erase') {
        const extract = (img: string) => root.chroot(['sh', '-c', `lsinitrd -f '${holds}' '${img}' | sha256sum`]).stdout;
        expect(extract(image), `${what}: ${holds} is dracut's`).toBe(extract('/tmp/fresh.img'));
      }
      const records = root.path('run/kabi/initramfs');
      expect(existsSync(records) ? readdirSync(records) : [], `${what}: deferred records left`).toEqual([]);
      before = after;
    }
  });
});
