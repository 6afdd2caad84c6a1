// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi's native depmod against the kmod of each kernel's own release on the Debian kernel trees
// of the corpus: kmod 30 (this machine) on a 6.1 .ko tree, a 6.12 .ko.xz tree (amd64) and the
// big-endian s390x tree; kmod 34 (the trixie chroot, kabi writing kmod 34's pre-order index
// layout) on the newest 7.x tree (merged /usr). Each tree is copied (module files hard-linked,
// never written) twice; kmod's depmod -b runs on one copy, kabi on the other, first as shipped,
// then after adding an extra/ module and weak-updates links (kabi incrementally), then after
// removing a link. Every output must be byte for byte kmod's, and kmod's modprobe and modinfo
// must answer the same for every module from either.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEPMOD_OUTPUTS, formatDepmodMessage, kmodFlavor, runDepmod, type DepmodChange } from '../../src/depmod/index.js';
import { installedKmodFlavor } from '../../src/depmod/kmod-flavor.js';
import { Interner, summarizeElf, type ModuleSummary } from '../../src/depmod/index.js';
import { summarizeElfFast, summarizeElfGeneral, summaryFromKernelModule } from '../../src/depmod/module-summary.js';
import { maybeDecompress } from '../../native-bindings/index.js';
import { readModule } from '../../src/module/read-module.js';
import { loadCorpus, type CorpusKernel } from './corpus.js';
import { kmodOf, kmodRuns } from './kmod.js';
import { TOOLCHAINS } from '../../corpus/debian/toolchains.mjs';

const corpus = loadCorpus();
const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function copyTree(k: CorpusKernel, label: string): string {
  const to = mkdtempSync(join(tmpdir(), `kabi-depmod-${label}-`));
  made.push(to);
  execFileSync('cp', ['-al', `${k.treeRoot}/.`, to]);
  // A system's /var/cache, where kabi keeps its depmod cache (a root without one gets none).
  mkdirSync(join(to, 'var/cache'), { recursive: true });
  return to;
}

const moduleDir = (root: string, k: CorpusKernel) => join(root, 'lib', 'modules', k.krel);

/** kmod's depmod -b root K, with the kmod of the kernel's release. */
async function kmod(root: string, k: CorpusKernel): Promise<{ status: number | null; stderr: string }> {
  const [r] = await kmodRuns(kmodOf(k).tool, root, [(at) => ['depmod', '-b', at(root), k.krel]]);
  return { status: r!.status, stderr: r!.stderr.split(root).join('<root>') };
}

/** The kmod release kabi writes for: the one on the kernel's own release (its index layout, its decompressors). */
function flavorOf(k: CorpusKernel) {
  return kmodOf(k).version === 34 ? kmodFlavor(34, { gz: false, xz: true, zstd: true }) : installedKmodFlavor();
}

async function kabi(root: string, k: CorpusKernel, changes?: DepmodChange[]) {
  const r = await runDepmod({ root, release: k.krel, configRoot: '/', externalRoot: '/', kmod: flavorOf(k), ...(changes ? { changes } : {}) });
  return { status: r.status, stderr: r.messages.map(formatDepmodMessage).join('').split(root).join('<root>'), stats: r.stats };
}

/** The output files that differ between two module directories. */
function differing(a: string, b: string, k: CorpusKernel): string[] {
  const outputs = DEPMOD_OUTPUTS.filter((f) => f !== 'modules.weakdep' || flavorOf(k).weakdep);
  return outputs.filter((f) => {
    const x = existsSync(join(a, f)) ? readFileSync(join(a, f)) : undefined;
    const y = existsSync(join(b, f)) ? readFileSync(join(b, f)) : undefined;
    return x === undefined || y === undefined || !x.equals(y);
  });
}

function moduleNames(dir: string): string[] {
  return readFileSync(join(dir, 'modules.dep'), 'latin1')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.slice(0, l.indexOf(':')).split('/').pop()!.split('.')[0]!.replace(/-/g, '_'));
}

/** Ask kmod's readers (of the kernel's release) about every module, in batches; root paths are masked. */
async function readersAnswer(root: string, k: CorpusKernel, names: string[]): Promise<{ modprobe: string; modinfo: string }> {
  const batches: string[][] = [];
  for (let i = 0; i < names.length; i += 500) batches.push(names.slice(i, i + 500));
  const runs = await kmodRuns(
    kmodOf(k).tool,
    root,
    batches.flatMap((batch) => [
      (at: (p: string) => string) => ['modprobe', '-S', k.krel, '-d', at(root), '--show-depends', '-a', ...batch],
      (at: (p: string) => string) => ['modinfo', '-b', at(root), '-k', k.krel, ...batch],
    ]),
  );
  let modprobe = '';
  let modinfo = '';
  runs.forEach((r, i) => {
    if (i % 2 === 0) modprobe += `${r.status}\n${r.stdout}${r.stderr}`;
    else modinfo += `${r.status}\n${r.stdout}${r.stderr}`;
  });
  return { modprobe: modprobe.split(root).join('<root>'), modinfo: modinfo.split(root).join('<root>') };
}

/** Module files to add: the corpus's built test modules (amd64), or renamed copies of real ones. */
function extraModules(k: CorpusKernel): { name: string; from: string }[] {
  if (k.builtModules) return [{ name: 'kabi_provider.ko', from: k.builtModules.kabi_provider }, { name: 'kabi_consumer.ko', from: k.builtModules.kabi_consumer }];
  const ext = k.compression === 'xz' ? '.ko.xz' : '.ko';
  const dir = join(k.moduleDir, 'kernel', 'drivers', 'net');
  return [
    { name: `kabi_dummy_copy${ext}`, from: join(dir, `dummy${ext}`) },
    { name: `kabi_veth_copy${ext}`, from: join(dir, `veth${ext}`) },
  ];
}

const kernels = [
  corpus.kernels({ arch: 'amd64', suite: 'bookworm', series: '6.1', role: 'twin' })[0]!,
  corpus.kernels({ arch: 'amd64', suite: 'bookworm', series: '6.12', role: 'newest' })[0]!,
  corpus.kernels({ arch: 's390x' })[0]!,
  corpus.kernels({ arch: 'amd64', series: '7.x', role: 'newest' })[0]!,
];

describe.each(kernels.map((k) => [k.krel, k] as const))('native depmod on %s', (_label, k) => {
  const a = copyTree(k, 'kmod');
  const b = copyTree(k, 'kabi');
  const da = moduleDir(a, k);
  const db = moduleDir(b, k);

  it('writes what kmod writes for the tree as shipped', async () => {
    const km = await kmod(a, k);
    const ka = await kabi(b, k);
    expect(ka.status).toBe(km.status);
    expect(km.status).toBe(0);
    expect(differing(da, db, k)).toEqual([]);
    expect(ka.stderr).toBe(km.stderr);
    expect(ka.stats.parsed).toBe(ka.stats.modules);
  });

  it('and so does a cold run of the built library (compressed modules read on worker threads)', () => {
    // The tests above run the TypeScript sources, which read in-process; the built library
    // (what the CLI and weak-modules run) decodes compressed modules on one thread per core,
    // and reads plain .ko files in-process: the same files either way.
    const c = copyTree(k, 'kabi-threads');
    const url = new URL('../../dist/src/depmod/index.js', import.meta.url).href;
    const script = `
      const { runDepmod } = await import(${JSON.stringify(url)});
      const r = await runDepmod({ root: process.argv[1], release: process.argv[2], configRoot: '/', externalRoot: '/', kmod: JSON.parse(process.argv[3]) });
      console.log(JSON.stringify({ status: r.status, threads: r.stats.timings['read.threads'], parsed: r.stats.parsed, modules: r.stats.modules }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, c, k.krel, JSON.stringify(flavorOf(k))], { encoding: 'utf8', timeout: 600_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { status: number; threads: number; parsed: number; modules: number };
    expect(out).toMatchObject({ status: 0, parsed: out.modules });
    if (k.compression !== 'none') expect(out.threads).toBeGreaterThan(0);
    else expect(out.threads).toBe(0);
    expect(differing(da, moduleDir(c, k), k)).toEqual([]);
  });

  it('summarises every module on its fast path, as the general path does', async () => {
    const files = readFileSync(join(da, 'modules.dep'), 'latin1')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => join(k.moduleDir, l.slice(0, l.indexOf(':'))));
    const a = new Interner();
    const b = new Interner();
    const text = (s: ModuleSummary, strings: Interner) => JSON.stringify([s.exports, s.deps, s.info].map((ids) => [...ids].map((i) => strings.strings[i]))) + [...s.exportCrcs, ...s.depCrcs, ...s.depWeak].join(',');
    let differ = 0;
    let general = 0;
    for (const f of files) {
      const { data } = await maybeDecompress(readFileSync(f));
      const fast = summarizeElfFast(data, a);
      if (fast === undefined) general++;
      else if (text(fast, a) !== text(summarizeElfGeneral(data, b, f), b)) differ++;
    }
    expect(files.length).toBeGreaterThan(2000);
    expect({ differ, general }).toEqual({ differ: 0, general: 0 });
  });

  it('and after an extra/ module and weak-updates links are added, incrementally', async () => {
    const ext = k.compression === 'xz' ? '.ko.xz' : '.ko';
    const changes: DepmodChange[] = [];
    const sys = (rel: string) => `/lib/modules/${k.krel}/${rel}`;
    for (const root of [da, db]) {
      mkdirSync(join(root, 'extra'), { recursive: true });
      mkdirSync(join(root, 'weak-updates'), { recursive: true });
    }
    for (const m of extraModules(k)) {
      for (const root of [da, db]) copyFileSync(m.from, join(root, 'extra', m.name));
      changes.push({ kind: 'added', path: sys(`extra/${m.name}`) });
    }
    const first = extraModules(k)[0]!.name;
    const links: [string, string][] = [
      [`weak-updates/linked_${first}`, `../extra/${first}`],
      // Same name as an in-tree module: ties with it, and the first file scanned keeps it.
      [`weak-updates/veth${ext}`, `../kernel/drivers/net/veth${ext}`],
      [`weak-updates/dangling${ext}`, `../extra/nowhere${ext}`],
    ];
    for (const [link, target] of links) {
      for (const root of [da, db]) symlinkSync(target, join(root, link));
      changes.push({ kind: 'added', path: sys(link) });
    }
    const km = await kmod(a, k);
    const ka = await kabi(b, k, changes);
    expect(ka.stats.incremental).toBe(true);
    expect(ka.stats.parsed).toBeLessThanOrEqual(changes.length);
    expect(ka.status).toBe(km.status);
    expect(differing(da, db, k)).toEqual([]);
    expect(ka.stderr).toBe(km.stderr);
    expect(readFileSync(join(db, 'modules.dep'), 'latin1')).toContain(`extra/${first}`);

    // Remove a link again.
    for (const root of [da, db]) unlinkSync(join(root, links[0]![0]));
    const km2 = await kmod(a, k);
    const ka2 = await kabi(b, k, [{ kind: 'removed', path: sys(links[0]![0]) }]);
    expect(ka2.stats.incremental).toBe(true);
    expect(ka2.stats.parsed).toBe(0);
    expect(differing(da, db, k)).toEqual([]);
    expect(ka2.stderr).toBe(km2.stderr);
  });

  it("kmod's modprobe and modinfo answer the same from kabi's files, for every module", async () => {
    const names = moduleNames(da);
    expect(names.length).toBeGreaterThan(2000);
    const fromKmod = await readersAnswer(a, k, names);
    const fromKabi = await readersAnswer(b, k, names);
    expect(fromKabi.modprobe === fromKmod.modprobe).toBe(true);
    expect(fromKabi.modinfo === fromKmod.modinfo).toBe(true);
    expect(fromKmod.modprobe).toContain('insmod <root>/lib/modules/');
    expect(fromKmod.modinfo).toContain('filename:       <root>/lib/modules/');
  });

  if (k.compression === 'none') {
    it('the module reader’s parse (used on worker threads for compressed trees) gives depmod’s summary of every module', async () => {
      const files = readFileSync(join(da, 'modules.dep'), 'latin1')
        .split('\n')
        .filter((l) => l !== '' && l.startsWith('kernel/'))
        .map((l) => join(k.moduleDir, l.slice(0, l.indexOf(':'))));
      const a = new Interner();
      const b = new Interner();
      const text = (s: ModuleSummary, strings: Interner) => JSON.stringify([s.exports, s.deps, s.info].map((ids) => [...ids].map((i) => strings.strings[i]))) + [...s.exportCrcs, ...s.depCrcs, ...s.depWeak].join(',');
      let differing = 0;
      for (const f of files) {
        const bytes = readFileSync(f);
        if (text(summarizeElf(bytes, a, f), a) !== text(summaryFromKernelModule(readModule(bytes, { file: f }), b), b)) differing++;
      }
      expect(files.length).toBeGreaterThan(2000);
      expect(differing).toBe(0);
    });
  }

  if (k.arch === 'amd64' && k.series === '6.1') {
    it("kabi writing for kmod 34 is byte for byte kmod 34's depmod on the same tree, and kmod 30's readers read it as their own", async () => {
      const kmod34 = copyTree(k, 'kmod34');
      const [r34] = await kmodRuns(TOOLCHAINS.trixie, kmod34, [(at) => ['depmod', '-b', at(kmod34), k.krel]]);
      expect(r34!.status, r34!.stderr).toBe(0);
      const c = copyTree(k, 'kabi34');
      const r = await runDepmod({ root: c, release: k.krel, configRoot: '/', externalRoot: '/', kmod: kmodFlavor(34, { gz: false }), cache: false });
      expect(r.status).toBe(0);
      const dc = moduleDir(c, k);
      expect(DEPMOD_OUTPUTS.filter((f) => !readFileSync(join(dc, f)).equals(readFileSync(join(moduleDir(kmod34, k), f))))).toEqual([]);
      expect(readFileSync(join(dc, 'modules.dep.bin')).readUInt32BE(8) & 0x0fffffff).toBe(12);
      const shipped = copyTree(k, 'kmod-shipped');
      expect((await kmod(shipped, k)).status).toBe(0);
      const names = moduleNames(dc);
      expect((await readersAnswer(c, k, names)).modprobe === (await readersAnswer(shipped, k, names)).modprobe).toBe(true);
    });
  }
});
