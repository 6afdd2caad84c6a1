import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkModules } from '../../src/compat/check.js';
import type { Verdict } from '../../src/compat/types.js';
import { PackageArchive } from '../../src/package/archive.js';
import { buildRpmFromTree } from '../package/helpers.js';
import { loadCorpus, TEST_MODULES } from './corpus.js';

/*
 * Acceptance: an RPM kernel package built here with rpmbuild, from a real Debian kernel's files
 * laid out as RHEL 9 lays out its kernel (kernel-core: vmlinuz, System.map, config,
 * symvers.xz and part of the module tree under /lib/modules/K, the /boot copies as %ghost;
 * kernel-modules: the rest of the tree), gives the same verdicts as that kernel installed with
 * `rpm --root` (and depmod, as kernel-install runs it).
 */

const corpus = loadCorpus();
const built = corpus.kernels({ built: true, arch: 'amd64', suite: 'bookworm' });
const K = corpus.kernels({ arch: 'amd64', suite: 'bookworm', series: '6.12', role: 'newest' })[0]!;

/** RHEL's kernel-core keeps these directories of the tree; kernel-modules has the rest. */
const CORE = ['kernel/arch', 'kernel/crypto', 'kernel/fs', 'kernel/lib', 'kernel/drivers/usb', 'kernel/net/ipv4'];

/** Hard-link the files under `from` into `to` (the trees are read-only and shared). */
function linkTree(from: string, to: string, keep: (rel: string) => boolean, rel = ''): void {
  for (const n of readdirSync(join(from, rel))) {
    const r = rel ? `${rel}/${n}` : n;
    const st = statSync(join(from, r));
    if (st.isDirectory()) linkTree(from, to, keep, r);
    else if (keep(r)) {
      mkdirSync(join(to, rel), { recursive: true });
      linkSync(join(from, r), join(to, r));
    }
  }
}

const shape = (vs: readonly Verdict[]) => vs.map((v) => ({ ...v, module: basename(v.module) }));

describe('a RHEL-style kernel RPM built from a Debian kernel', () => {
  it(`kernel-core + kernel-modules of ${K.krel}: the same verdicts as the kernel installed with rpm --root`, async () => {
    const work = mkdtempSync(join(tmpdir(), 'kabi-rpm-kernel-'));
    try {
      const inCore = (rel: string) => !rel.startsWith('kernel/') || CORE.some((d) => rel.startsWith(d + '/'));
      const mod = `lib/modules/${K.krel}`;
      const core = join(work, 'core');
      const modules = join(work, 'modules');
      linkTree(K.moduleDir, join(core, mod), inCore);
      linkTree(K.moduleDir, join(modules, mod), (rel) => !inCore(rel));
      linkSync(K.config, join(core, mod, 'config'));
      linkSync(K.systemMap, join(core, mod, 'System.map'));
      writeFileSync(join(core, mod, 'symvers.xz'), execFileSync('xz', ['-c', '-T2', K.symvers], { maxBuffer: 1 << 28 }));
      writeFileSync(join(core, mod, 'vmlinuz'), 'not a kernel image');
      const ghosts = ['vmlinuz', 'System.map', 'config', 'symvers'].map((f) => `/boot/${f}-${K.krel}${f === 'symvers' ? '.xz' : ''}`);
      const rpms = join(work, 'rpms');
      mkdirSync(rpms);
      const files = [
        buildRpmFromTree(rpms, core, { name: 'kernel-core', version: '5.14.0', payload: 'w2T.xzdio', ghosts }),
        buildRpmFromTree(rpms, modules, { name: 'kernel-modules', version: '5.14.0', payload: 'w3T.zstdio' }),
      ];
      for (const f of files) {
        const a = await PackageArchive.open(f);
        try {
          expect(a.meta.format).toBe('rpm');
        } finally {
          await a.close();
        }
      }

      const installed = join(work, 'installed');
      mkdirSync(installed);
      execFileSync('rpm', ['--root', installed, '--initdb']);
      execFileSync('rpm', ['--root', installed, '-i', '--nodeps', '--noscripts', '--nosignature', '--ignorearch', ...files]);
      execFileSync('depmod', ['-b', installed, K.krel]);
      const bare = join(work, 'bare');
      mkdirSync(bare);

      let compared = 0;
      for (const b of built) {
        const mods = TEST_MODULES.map((n) => corpus.builtModule(b, n));
        const want = await checkModules(mods, { root: installed, kernels: [K.krel] });
        const got = await checkModules(mods, { root: bare, kernelPackages: files });
        expect(got.kernels.map((k) => [k.release, k.symvers?.path])).toEqual([[K.krel, `/lib/modules/${K.krel}/symvers.xz`]]);
        expect(shape(got.verdicts), `modules built for ${b.krel}`).toEqual(shape(want.verdicts));
        expect(got.notes).toEqual(want.notes);
        compared += got.verdicts.length;
      }
      expect(compared).toBe(built.length * TEST_MODULES.length);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
