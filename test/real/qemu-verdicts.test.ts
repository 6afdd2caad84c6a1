// SPDX-License-Identifier: GPL-2.0-or-later
//
// The loader's verdict, proven by the kernel: every amd64 corpus kernel is booted under QEMU
// (qemu-oracle.ts) and asked to load every module built for every corpus kernel (the test
// modules and every DKMS build), each with its providers from the same build loaded first, and
// alone when it has such providers. kabi's loader semantics must agree on every case: loads or
// not, and when not, the same problems of the stage the kernel stopped at (loader-oracle.ts).

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAgainstKernel } from '../../src/compat/engine.js';
import { loadKernelModel } from '../../src/compat/kernel-model.js';
import type { Candidate, Verdict } from '../../src/compat/types.js';
import { discoverKernels } from '../../src/kernel/discover.js';
import { readModuleFile, type KernelModule } from '../../src/module/read-module.js';
import { loadCorpus } from './corpus.js';
import { kabiProblems, kernelProblems } from './loader-oracle.js';
import { allSets, normalizeName } from './module-sets.js';
import { bootAndInsmod, type BootResult } from './qemu-oracle.js';
import { rootWithKernels } from './roots.js';

const corpus = loadCorpus();
const booted = corpus.kernels({ arch: 'amd64' });
const builtFor = corpus.kernels({ arch: 'amd64', built: true });

const sets = allSets();
const setById = new Map(sets.map((s) => [s.id, s]));

// Parsed once, shared by every kernel's check.
const parsed = new Map<string, Promise<KernelModule>>();
const readOnce = (file: string) => {
  let p = parsed.get(file);
  if (!p) parsed.set(file, (p = readModuleFile(file)));
  return p;
};

// Two kernels boot at a time (TCG uses one host core per guest).
const boots = new Map<string, Promise<BootResult>>();
beforeAll(() => {
  let next = 0;
  const waiters = booted.map(() => {
    let resolve!: (r: BootResult) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<BootResult>((res, rej) => ((resolve = res), (reject = rej)));
    promise.catch(() => {});
    return { promise, resolve, reject };
  });
  booted.forEach((k, i) => boots.set(k.krel, waiters[i]!.promise));
  const worker = async () => {
    while (next < booted.length) {
      const i = next++;
      await bootAndInsmod(booted[i]!, sets, corpus.manifest.cacheDir).then(waiters[i]!.resolve, waiters[i]!.reject);
    }
  };
  void Promise.all([worker(), worker()]);
});

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const matrix: string[] = [];
const byKernel = new Map<string, { cases: number; loads: number; refused: number; fromCache: boolean; seconds: number; accel: string }>();

describe('the corpus the kernel is asked about', () => {
  it('has bookworm 6.1 and 6.12, trixie 6.12 and 7.x kernels to boot, with test modules and DKMS builds for each', () => {
    for (const [suite, series] of [['bookworm', '6.1'], ['bookworm', '6.12'], ['trixie', '6.12'], ['trixie-backports', '7.x']] as const) {
      expect(builtFor.filter((k) => k.suite === suite && k.series === series).length, `${suite} ${series}`).toBeGreaterThanOrEqual(2);
    }
    for (const k of builtFor) {
      const built = (k.dkms ?? []).filter((d) => d.status === 'built');
      expect(new Set(built.map((d) => d.source)).size, k.krel).toBeGreaterThanOrEqual(3);
    }
    expect(booted.every((k) => k.vmlinuz)).toBe(true);
  });
});

describe.each(booted.map((k) => [k.krel, k] as const))('on %s', (_krel, k) => {
  it('kabi check (loader semantics) says what the kernel says for every module built for every corpus kernel', async () => {
    const boot = await boots.get(k.krel)!;
    expect(boot.inTree.filter((d) => d.rc !== 0), 'in-tree providers the guest could not load').toEqual([]);

    const root = rootWithKernels([k], 'kabi-qemu-');
    roots.push(root);
    const kernel = (await discoverKernels({ root })).find((x) => x.release === k.krel)!;
    const model = await loadKernelModel(kernel);

    const kabi = new Map<string, Verdict>();
    for (const s of sets) {
      const cands: Candidate[] = await Promise.all(s.modules.map(async (m) => ({ path: m.file, module: await readOnce(m.file) })));
      for (const v of checkAgainstKernel(cands, model)) kabi.set(`${s.id}\0${normalizeName(v.name)}\0together`, v);
      for (const c of cands) {
        const v = checkAgainstKernel([c], model)[0]!;
        kabi.set(`${s.id}\0${normalizeName(v.name)}\0alone`, v);
      }
    }

    const disagreements: string[] = [];
    let loads = 0;
    for (const r of boot.results) {
      const set = setById.get(r.set)!;
      const v = kabi.get(`${r.set}\0${r.module}\0${r.mode}`);
      if (!v) {
        disagreements.push(`${r.set} ${r.module} (${r.mode}): kabi judged no such module`);
        continue;
      }
      const kernelSays = kernelProblems(r.module, r.messages, r.loaded);
      const kabiSays = kabiProblems(v.reasons);
      if (r.loaded) loads++;
      const verdict = (loaded: boolean, problems: string[]) => (loaded ? 'loads' : `refused: ${problems.join(', ')}`);
      const init = r.initReturned !== undefined ? ` (init returned ${r.initReturned})` : '';
      matrix.push(`${r.module} | ${set.what} | built for ${set.builtFor} | on ${k.krel} | ${r.mode} | kernel ${verdict(r.loaded, kernelSays)}${init} | kabi ${verdict(v.compatible, kabiSays)}`);
      if (r.loaded !== v.compatible || JSON.stringify(kernelSays) !== JSON.stringify(kabiSays)) {
        disagreements.push(
          `${r.module} (${set.what}, built for ${set.builtFor}, ${r.mode}): kernel ${verdict(r.loaded, kernelSays)} [${r.messages.join(' | ')}]; ` +
            `kabi ${verdict(v.compatible, kabiSays)} [${v.reasons.filter((x) => x.severity === 'error').map((x) => x.message).join(' | ')}]`,
        );
      }
    }
    byKernel.set(k.krel, { cases: boot.results.length, loads, refused: boot.results.length - loads, fromCache: boot.fromCache, seconds: boot.seconds, accel: boot.accel });
    expect(disagreements).toEqual([]);
    // Every module of every set was tried, together and (with providers) alone.
    expect(boot.results.filter((r) => r.mode === 'together').length).toBe(sets.reduce((n, s) => n + s.modules.length, 0));
  });
});

describe('the verdict matrix', () => {
  it('every booted kernel answered, and the modules built for it load on it', () => {
    console.log(['module | build | built for | kernel | mode | kernel says | kabi says', ...matrix].join('\n'));
    console.log([...byKernel].map(([k, s]) => `${k}: ${s.cases} cases, ${s.loads} load, ${s.refused} refused (${s.fromCache ? 'cached' : `${s.accel} boot, ${s.seconds.toFixed(0)} s`})`).join('\n'));
    expect(byKernel.size).toBe(booted.length);
    // A module built for a kernel loads on it (with its providers): the corpus is not all refusals.
    for (const line of matrix.filter((l) => / \| together \| /.test(l))) {
      const [, , builtForPart, onPart] = line.split(' | ');
      if (builtForPart!.slice('built for '.length) === onPart!.slice('on '.length) && !/kabi_nongpl|kabi_ns_missing/.test(line)) {
        expect(line, 'a module on the kernel it was built for').toMatch(/kernel loads/);
      }
    }
  });
});
