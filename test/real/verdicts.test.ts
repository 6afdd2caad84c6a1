// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi's depmod semantics against kmod's `depmod -n -e -E`, with the kmod of each kernel's own
// release (kmod 30 here for bookworm; kmod 34 in the trixie chroot for trixie and 7.x), for
// every pair of the corpus: every module built for every kernel (test modules and DKMS builds,
// each build installed as a set into extra/) on every amd64 kernel. The loader's own verdict is
// proven against the kernel in qemu-verdicts.test.ts.
//
// Each pair's root holds the kernel's in-tree modules that export a symbol some tested module
// needs (the kernel build's Module.symvers says which), not all four thousand: the warnings of
// the tested modules depend on nothing else, and a hundred sets per kernel stay affordable.
// Both tools judge the same root.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkModules } from '../../src/compat/check.js';
import type { Verdict } from '../../src/compat/types.js';
import { loadCorpus, TEST_MODULES, type CorpusKernel } from './corpus.js';
import { kmodOf, kmodRuns } from './kmod.js';
import { allSets, type ModuleSet } from './module-sets.js';
import { moduleBytes } from './qemu-oracle.js';
import { addCorpusKernel, placeModules, rootWithKernels } from './roots.js';
import { moduleFiles } from './util.js';

const corpus = loadCorpus();
const kernels = corpus.kernels({ arch: 'amd64' });
const built = corpus.kernels({ built: true, arch: 'amd64' });
const sets = allSets();
const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** What depmod -n -e -E prints per module file: "needs unknown symbol X" / "disagrees about version of symbol X". */
function depmodWarnings(stderr: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of stderr.split('\n')) {
    const m = /^depmod: WARNING: (\S+) (needs unknown symbol|disagrees about version of symbol) (\S+)$/.exec(line);
    if (!m) continue;
    const file = m[1]!.split('/').pop()!;
    out.set(file, [...(out.get(file) ?? []), `${m[2] === 'needs unknown symbol' ? 'unknown' : 'disagrees'} ${m[3]}`]);
  }
  return out;
}

function ourWarnings(v: Verdict): string[] {
  return v.reasons.filter((r) => r.severity === 'error').map((r) => `${/needs unknown symbol/.test(r.message) ? 'unknown' : 'disagrees'} ${r.symbol}`);
}

/** Undefined symbols of a module file (binutils' nm on its uncompressed bytes). */
const undefinedCache = new Map<string, string[]>();
function undefinedSymbols(file: string): string[] {
  let u = undefinedCache.get(file);
  if (!u) {
    const tmp = mkdtempSync(join(tmpdir(), 'kabi-nm-'));
    try {
      writeFileSync(join(tmp, 'm.ko'), moduleBytes(file));
      u = execFileSync('nm', ['-u', join(tmp, 'm.ko')], { encoding: 'utf8' })
        .split('\n')
        .map((l) => l.trim().split(/\s+/).pop()!)
        .filter(Boolean);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    undefinedCache.set(file, u);
  }
  return u;
}

/** In-tree modules (paths under the module directory) that export any of `symbols`, per Module.symvers. */
function exporters(k: CorpusKernel, symbols: ReadonlySet<string>): string[] {
  const ext = k.compression === 'xz' ? '.ko.xz' : '.ko';
  const out = new Set<string>();
  for (const line of readFileSync(k.symvers, 'utf8').split('\n')) {
    const f = line.split('\t');
    if (f.length < 4 || f[2] === 'vmlinux' || !symbols.has(f[1]!)) continue;
    out.add(`kernel/${f[2]}${ext}`);
  }
  // Module.symvers also names modules a flavour does not ship (and the kernel cannot load them).
  return [...out].filter((rel) => existsSync(join(k.moduleDir, rel)));
}

const matrix: string[] = [];

describe('verdicts on Debian kernels', () => {
  it('the corpus has two differing 6.1 ABIs, two 6.12 ABIs, two trixie 6.12 ABIs and three 7.x ABIs with the test modules built', () => {
    expect(built.filter((k) => k.suite === 'bookworm' && k.series === '6.1').length).toBe(2);
    expect(built.filter((k) => k.suite === 'bookworm' && k.series === '6.12').length).toBe(2);
    expect(built.filter((k) => k.suite === 'trixie' && k.series === '6.12').length).toBe(2);
    expect(built.filter((k) => k.series === '7.x').length).toBe(3);
  });

  it('loader semantics refuses what the kernel refuses even where depmod sees no problem', async () => {
    const k = built.find((x) => x.series === '6.1')!;
    const root = rootWithKernels([k]);
    made.push(root);
    const files = placeModules(root, k.krel, 'extra', TEST_MODULES.map((n) => corpus.builtModule(k, n)));
    const byName = Object.fromEntries((await checkModules(files, { root, kernels: [k.krel] })).verdicts.map((v) => [v.name, v]));
    const dep = Object.fromEntries((await checkModules(files, { root, kernels: [k.krel], semantics: 'depmod' })).verdicts.map((v) => [v.name, v]));
    // Same kernel: depmod is happy with all six; the loader refuses the GPL-only use and the missing namespace import.
    expect(Object.values(dep).every((v) => v.compatible)).toBe(true);
    expect(byName.kabi_nongpl!.reasons.filter((r) => r.severity === 'error').map((r) => [r.kind, r.symbol])).toEqual([['gpl-only', 'ktime_get_mono_fast_ns']]);
    expect(byName.kabi_ns_missing!.reasons.filter((r) => r.severity === 'error').map((r) => [r.kind, r.symbol])).toEqual([['namespace', 'usb_stor_sense_invalidCDB']]);
    for (const n of ['kabi_minimal', 'kabi_provider', 'kabi_consumer', 'kabi_ns_ok']) expect(byName[n]!.compatible, n).toBe(true);
  });

  it('a module built for 6.1 is refused by a 6.12 kernel for its struct module size, before any CRC', async () => {
    const k61 = built.find((x) => x.series === '6.1')!;
    const k612 = built.find((x) => x.series === '6.12')!;
    const root = rootWithKernels([k612]);
    made.push(root);
    const [f] = placeModules(root, k612.krel, 'extra', [corpus.builtModule(k61, 'kabi_minimal')]);
    const v = (await checkModules([f!], { root, kernels: [k612.krel] })).verdicts[0]!;
    expect(v.reasons.find((r) => r.severity === 'error')?.kind).toBe('module-struct-size');
  });
});

describe.each(kernels.map((k) => [k.krel, k] as const))('--semantics depmod on %s', (_krel, k) => {
  const { tool, version } = kmodOf(k);
  it(`equals kmod ${version}'s depmod -n -e -E for every module built for every corpus kernel`, async () => {
    const work = mkdtempSync(join(tmpdir(), 'kabi-depmod-pairs-'));
    made.push(work);
    const needed = new Set(sets.flatMap((s) => s.modules.flatMap((m) => undefinedSymbols(m.file))));
    const inTree = exporters(k, needed);
    // usb-storage (kabi_ns_*), videodev (v4l2loopback), … : the out-of-tree modules do use in-tree ones.
    expect(inTree.length, inTree.join(" ")).toBeGreaterThanOrEqual(2);
    const symvers = `usr/src/linux-headers-${k.krel}/Module.symvers`;
    const placed = sets.map((s: ModuleSet, i) => {
      const root = join(work, String(i));
      addCorpusKernel(root, k, inTree);
      return { s, root, files: placeModules(root, k.krel, 'extra', s.modules.map((m) => m.file)) };
    });
    const runs = await kmodRuns(
      tool,
      work,
      placed.map(({ root }) => (at) => ['depmod', '-b', at(root), '-n', '-e', '-E', at(join(root, symvers)), k.krel]),
    );
    const disagreements: string[] = [];
    for (const [i, { s, root, files }] of placed.entries()) {
      const run = runs[i]!;
      expect(run.status, run.stderr).toBe(0);
      const kmod = depmodWarnings(run.stderr);
      const ours = await checkModules(files, { root, kernels: [k.krel], semantics: 'depmod' });
      for (const v of ours.verdicts) {
        const file = v.module.split('/').pop()!;
        const want = (kmod.get(file) ?? []).sort();
        const got = ourWarnings(v).sort();
        if (JSON.stringify(got) !== JSON.stringify(want) || v.compatible !== (want.length === 0)) {
          disagreements.push(`${v.name} (${s.what}, built for ${s.builtFor}): kmod ${JSON.stringify(want)}, kabi ${JSON.stringify(got)}`);
        }
        matrix.push(`${v.name} | ${s.what} | built for ${s.builtFor} | on ${k.krel} | kmod ${version} | ${want.length === 0 ? 'no warning' : want.slice(0, 3).join(', ') + (want.length > 3 ? ` (+${want.length - 3})` : '')}`);
      }
      rmSync(root, { recursive: true, force: true });
    }
    expect(disagreements).toEqual([]);
  });
});

describe('the depmod-semantics matrix', () => {
  it('covers every module of every set on every kernel', () => {
    console.log(['depmod semantics: module | build | built for | kernel | oracle | kmod and kabi say', ...matrix].join('\n'));
    expect(matrix.length).toBe(kernels.length * sets.reduce((n, s) => n + s.modules.length, 0));
  });
});

describe.each(corpus.kernels().filter((k) => k.role !== 'twin').map((k) => [k.krel, k] as const))('every in-tree module of %s loads on its own kernel', (_krel, k) => {
  it('no false alarm', async () => {
    const root = rootWithKernels([k]);
    made.push(root);
    const dir = `${root}/${k.mergedUsr ? 'usr/lib' : 'lib'}/modules/${k.krel}`;
    const files = moduleFiles(k.moduleDir).map((f) => f.replace(k.moduleDir, dir));
    const r = await checkModules(files, { root, kernels: [k.krel] });
    const refused = r.verdicts.filter((v) => !v.compatible).map((v) => `${v.name}: ${v.reasons.find((x) => x.severity === 'error')!.message}`);
    console.log(`${k.krel}: ${r.verdicts.length} in-tree modules checked against their own kernel, ${refused.length} refused`);
    expect(refused).toEqual([]);
    expect(r.verdicts.length).toBe(k.moduleCount);
  });
});
