// SPDX-License-Identifier: GPL-2.0-or-later
//
// A trixie system with backports kernels, as installed: trixie's 6.12 kernels (modules in
// /usr/lib/modules, System.map and config in /boot, merged /usr) beside 7.x kernels (linux-binary,
// linux-modules, linux-base: vmlinuz, System.map and config in /usr/lib/modules/K, no /boot
// files, CONFIG_MODVERSIONS off). kabi status, kabi link and weak-modules must find every
// kernel with its files, link by CRCs where the kernel has them, and never link across releases
// where it has none: there only a module built for that very kernel loads, whatever depmod's
// CRC-less check says.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverKernels } from '../../src/kernel/discover.js';
import { loadCorpus, type CorpusKernel } from './corpus.js';
import { placeModules, rootWithKernels } from './roots.js';

const corpus = loadCorpus();
const k7 = corpus.kernels({ arch: 'amd64', series: '7.x' });
const trixie = corpus.kernels({ arch: 'amd64', suite: 'trixie' });
const all = [...trixie, ...k7];
const oldest7 = k7.find((k) => k.role === 'oldest')!;
const newestTrixie = trixie.find((k) => k.role === 'newest')!;
// Modules that load on the kernel they were built for (kabi_nongpl and kabi_ns_missing do not).
const MODULES = ['kabi_provider', 'kabi_consumer', 'kabi_minimal', 'kabi_ns_ok'] as const;

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function trixieRoot(): string {
  const root = rootWithKernels(all, 'kabi-real-7x-');
  roots.push(root);
  for (const k of all) mkdirSync(join(root, 'usr/lib/modules', k.krel, 'weak-updates'), { recursive: true });
  return root;
}

function bin(name: 'kabi' | 'weak-modules', args: string[], stdin = '') {
  return spawnSync(process.execPath, [`dist/bin/${name}.js`, ...args], { input: stdin, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 600_000 });
}

const linksIn = (root: string, k: CorpusKernel) => {
  const wu = join(root, 'usr/lib/modules', k.krel, 'weak-updates');
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const n of existsSync(d) ? readdirSync(d).sort() : []) {
      const p = join(d, n);
      try {
        out.push(`${rel}${n} -> ${readlinkSync(p)}`);
      } catch {
        walk(p, `${rel}${n}/`);
      }
    }
  };
  walk(wu, '');
  return out;
};

describe('a trixie root with 6.12 and 7.x kernels', () => {
  it('the corpus has 7.x kernels without modversions, laid out in /usr/lib/modules', () => {
    expect(k7.length).toBeGreaterThanOrEqual(2);
    for (const k of k7) {
      expect(k.modversions, k.krel).toBe(false);
      expect(k.layout).toBe('split');
      expect(k.systemMap).toBe(join(k.moduleDir, 'System.map'));
      expect(k.config).toBe(join(k.moduleDir, 'config'));
      expect(k.vmlinuz).toBe(join(k.moduleDir, 'vmlinuz'));
    }
    for (const k of trixie) expect(k.modversions, k.krel).toBe(true);
  });

  it('discovery finds every kernel with its System.map and config, in /usr/lib/modules/K or /boot', async () => {
    const root = trixieRoot();
    const found = await discoverKernels({ root });
    expect(found.map((k) => k.release).sort()).toEqual(all.map((k) => k.krel).sort());
    for (const k of found) {
      const c = all.find((x) => x.krel === k.release)!;
      if (c.layout === 'split') {
        expect(k.systemMap, k.release).toBe(`${k.moduleDir}/System.map`);
        expect(k.config, k.release).toBe(`${k.moduleDir}/config`);
      } else {
        expect(k.systemMap, k.release).toBe(`/boot/System.map-${k.release}`);
        expect(k.config, k.release).toBe(`/boot/config-${k.release}`);
      }
      expect(k.symvers?.path, k.release).toBe(`/usr/src/linux-headers-${k.release}/Module.symvers`);
    }
  });

  it('kabi status reads every kernel fully and shows a 7.x module incompatible with every other kernel', () => {
    const root = trixieRoot();
    placeModules(root, oldest7.krel, 'extra', MODULES.map((m) => corpus.builtModule(oldest7, m)));
    const r = bin('kabi', ['status', '--root', root, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      kernels: { release: string; moduleDir: string; hasSymvers: boolean; notes: string[] }[];
      modules: { name: string; cells: { kernel: string; state: string; reasons: { kind: string; severity: string; message: string }[] }[] }[];
    };
    expect(report.kernels.map((k) => k.release).sort()).toEqual(all.map((k) => k.krel).sort());
    for (const k of report.kernels) {
      expect(k.hasSymvers, k.release).toBe(true);
      expect(k.notes.filter((n) => /config|System\.map|Module\.symvers/.test(n)), k.release).toEqual([]);
    }
    // Built for 7.2.6: at home there, refused by its version magic everywhere else.
    const cells = report.modules.find((m) => m.name === 'kabi_minimal')!.cells;
    expect(cells.map((c) => c.kernel).sort()).toEqual(all.map((k) => k.krel).sort());
    for (const c of cells) {
      if (c.kernel === oldest7.krel) expect(c.state, c.kernel).toBe('built');
      else {
        expect(c.state, c.kernel).toBe('incompatible');
        expect(c.reasons.find((r) => r.severity === 'error')?.message, c.kernel).toMatch(/^kabi_minimal: version magic '7\.2\.6\+deb13-amd64 SMP preempt mod_unload ' should be /);
      }
    }
  });

  it('weak-modules and kabi link never link a module across releases on a kernel without modversions, and say why', () => {
    const root = trixieRoot();
    const files = placeModules(root, oldest7.krel, 'extra/kabi', MODULES.map((m) => corpus.builtModule(oldest7, m)));
    // weak-modules' own semantics (depmod's): every CRC is 0 on 7.x, so only the refusal stops it.
    const wm = bin('weak-modules', ['--basedir', root, '--add-modules', '--verbose', '--no-initramfs'], files.join('\n') + '\n');
    expect(wm.status, wm.stderr).toBe(0);
    for (const k of all) expect(linksIn(root, k), k.krel).toEqual([]);
    const why = (k: CorpusKernel) =>
      `Module kabi_minimal.ko from kernel ${oldest7.krel} is not compatible with kernel ${k.krel}: kernel ${k.krel} has no modversions: only a module built for ${k.krel} itself loads (kabi_minimal is built for ${oldest7.krel})`;
    for (const k of k7.filter((x) => x !== oldest7)) expect(wm.stdout).toContain(why(k));

    // kabi link, with weak-modules' semantics and with its own (the loader's).
    for (const semantics of ['depmod', 'loader']) {
      const link = bin('kabi', ['link', '--root', root, '--semantics', semantics, '--dry-run', '--add', ...files]);
      expect(link.status, link.stderr).toBe(0);
      for (const k of k7.filter((x) => x !== oldest7)) expect(link.stdout, semantics).toContain(why(k));
    }
    for (const k of all) expect(linksIn(root, k), k.krel).toEqual([]);
  });

  it('where the kernel has modversions (trixie 6.12) links follow the CRCs, under /usr/lib/modules', () => {
    const root = trixieRoot();
    const files = placeModules(root, newestTrixie.krel, 'extra', MODULES.map((m) => corpus.builtModule(newestTrixie, m)));
    const wm = bin('weak-modules', ['--basedir', root, '--add-modules', '--no-initramfs'], files.join('\n') + '\n');
    expect(wm.status, wm.stderr).toBe(0);
    const other = trixie.find((k) => k !== newestTrixie)!;
    const linked = linksIn(root, other);
    const compatible = wm.stdout.includes(`Module kabi_minimal.ko from kernel ${newestTrixie.krel} is compatible with kernel ${other.krel}`);
    console.log(`${newestTrixie.krel} → ${other.krel}: ${compatible ? 'linked' : 'not linked'}\n${wm.stdout}`);
    expect(linked.length).toBe(compatible ? MODULES.length : 0);
    for (const k of k7) expect(linksIn(root, k), k.krel).toEqual([]);
  });
});
