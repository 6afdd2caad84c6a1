import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Interner, type ModuleSummary } from '../../src/depmod/index.js';
import { BatchMerger, BatchReader } from '../../src/depmod/read-batch.js';
import { readSummary } from '../../src/depmod/run-io.js';
import { nodeFs } from '../../src/fs.js';
import type { ModuleFile } from '../../src/kernel/module-tree.js';
import { kmodDepmod, mod, OUTPUTS, Tree } from './fixture.js';

// A cold depmod run reads its modules in batches, on one thread per core when built: each
// reader numbers strings its own way and the run takes them into its own. Whatever read a
// file, the summary must be the one reading it in-process gives.

const trees: Tree[] = [];
afterAll(() => trees.forEach((t) => t.destroy()));

/** A tree of `n` modules, each needing its predecessor's export, every `xzEvery`th compressed with xz (0: none). */
function bigTree(n: number, xzEvery = 5): Tree {
  const t = new Tree();
  trees.push(t);
  const order: string[] = [];
  for (let i = 0; i < n; i++) {
    const rel = `kernel/drivers/m${i}.ko`;
    const bytes = mod(`m${i}`, { exports: [`f${i}`], needs: i > 0 ? [`f${i - 1}`, { name: `hook${i % 7}`, weak: true }] : [], aliases: [`pci:v${i}d*`] });
    if (xzEvery > 0 && i % xzEvery === 0) {
      const r = spawnSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c'], { input: bytes });
      t.write(`${rel}.xz`, r.stdout);
      order.push(`${rel}.xz`);
    } else {
      t.write(rel, bytes);
      order.push(rel);
    }
  }
  t.write('kernel/drivers/broken.ko', new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));
  t.write('modules.order', order.join('\n') + '\n');
  return t;
}

const file = (t: Tree, rel: string): ModuleFile => ({ name: rel.split('/').pop()!.split('.')[0]!, path: `/${rel}`, relPath: rel, host: t.path(rel), isLink: false, external: false });

function plain(s: ModuleSummary, strings: Interner) {
  const str = (ids: Uint32Array) => [...ids].map((i) => strings.get(i));
  return { exports: str(s.exports), exportCrcs: [...s.exportCrcs], deps: str(s.deps), depCrcs: [...s.depCrcs], depWeak: [...s.depWeak], info: str(s.info), error: s.error };
}

describe('reading in batches', () => {
  it('gives the summaries and identities of reading each file in-process, batch after batch', async () => {
    const t = bigTree(30);
    const rels = [...Array.from({ length: 30 }, (_, i) => `kernel/drivers/m${i}.ko${i % 5 === 0 ? '.xz' : ''}`), 'kernel/drivers/broken.ko', 'kernel/drivers/missing.ko'];
    const files = rels.map((r) => file(t, r));
    const reader = new BatchReader(nodeFs);
    const run = new Interner();
    run.id('already-known');
    const merger = new BatchMerger(run);
    const got = [...merger.merge(await reader.read(files.slice(0, 13))), ...merger.merge(await reader.read(files.slice(13)))];
    const direct = new Interner();
    for (let i = 0; i < files.length; i++) {
      expect(plain(got[i]!.summary, run)).toEqual(plain(await readSummary(nodeFs, files[i]!, direct), direct));
    }
    expect(got[0]!.id?.size).toBeGreaterThan(0n);
    expect(got[30]!.summary.error).toBe('Exec format error');
    expect(got[31]!.id).toBeUndefined();
    expect(got[31]!.summary.error).toBe('No such file or directory');
  });

  it('.ko.xz files decoded together by xz: the summaries of reading each alone, a corrupt one included', async () => {
    const t = new Tree();
    trees.push(t);
    const rels: string[] = [];
    for (let i = 0; i < 8; i++) {
      // A long description: enough output per batch for it to go to an xz process.
      const bytes = mod(`x${i}`, { exports: [`g${i}`], needs: i > 0 ? [`g${i - 1}`] : [], aliases: [`usb:v${i}p*`], modinfo: [['description', `module ${i} `.repeat(30_000)]] });
      const xz = spawnSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c'], { input: bytes }).stdout;
      // One of them damaged inside its LZMA2 data: the container walks, the data does not decode.
      if (i === 5) xz[xz.length >> 1] = xz[xz.length >> 1]! ^ 0x40;
      rels.push(`kernel/x/x${i}.ko.xz`);
      t.write(rels[i]!, xz);
    }
    const files = rels.map((r) => file(t, r));
    const run = new Interner();
    const packed = await new BatchReader(nodeFs).read(files);
    expect(packed.clock.xzProcesses).toBeGreaterThan(0);
    const got = new BatchMerger(run).merge(packed);
    const direct = new Interner();
    for (let i = 0; i < files.length; i++) {
      expect(plain(got[i]!.summary, run)).toEqual(plain(await readSummary(nodeFs, files[i]!, direct), direct));
    }
    expect(got[5]!.summary.error).toBe('Invalid argument');
    expect(got.filter((g) => g.summary.error === undefined)).toHaveLength(7);
    expect(plain(got[7]!.summary, run).deps).toContain('g6');
  });

  it('refuses a reader’s batches out of order (its strings would be misnumbered)', async () => {
    const t = bigTree(4);
    const reader = new BatchReader(nodeFs);
    const first = await reader.read([file(t, 'kernel/drivers/m1.ko')]);
    const second = await reader.read([file(t, 'kernel/drivers/m2.ko')]);
    const merger = new BatchMerger(new Interner());
    expect(() => merger.merge(second)).toThrow(/out of order/);
    merger.merge(first);
    expect(() => merger.merge(second)).not.toThrow();
  });

  /** runDepmod() of the built library in a fresh process: its status, reader threads and modules parsed. */
  function depmodProcess(t: Tree) {
    const url = new URL('../../dist/src/depmod/index.js', import.meta.url).href;
    const script = join(t.root, 'run.mjs');
    writeFileSync(
      script,
      `const { runDepmod } = await import(${JSON.stringify(url)});
       const { ModuleReaderPool } = await import(${JSON.stringify(new URL('../../dist/src/module/reader-pool.js', import.meta.url).href)});
       let pools = 0;
       const create = ModuleReaderPool.create;
       ModuleReaderPool.create = (...a) => { const p = create.apply(ModuleReaderPool, a); if (p) pools++; return p; };
       const r = await runDepmod({ root: process.argv[2], release: process.argv[3], configRoot: '/', externalRoot: '/' });
       console.log(JSON.stringify({ status: r.status, threads: r.stats.timings['read.threads'], parsed: r.stats.parsed, pools }));`,
    );
    const r = spawnSync(process.execPath, [script, t.root, '6.1.0-99-amd64'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.error, 'the process did not exit by itself').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { status: number; threads: number; parsed: number; pools: number };
  }

  it('a tree of uncompressed modules is read in-process, threads or not (on two cores threads only slow it down): what kmod writes', () => {
    expect(existsSync('dist/bin/read-worker.js'), 'run npm run build first').toBe(true);
    const t = bigTree(300, 0);
    expect(kmodDepmod(t).status).toBe(0);
    const expected = t.outputs();
    for (const f of [...OUTPUTS, 'modules.kabi-cache']) t.remove(f);
    expect(depmodProcess(t)).toEqual({ status: 0, threads: 0, parsed: 301, pools: 0 });
    const got = t.outputs();
    for (const f of OUTPUTS) expect(got.get(f)?.equals(expected.get(f)!), f).toBe(true);
  });

  it('no threads either when the first module modules.order names is missing (a split package not installed)', () => {
    const t = bigTree(300, 0);
    t.write('modules.order', 'kernel/gone/missing.ko\n' + readFileSync(t.path('modules.order'), 'latin1'));
    expect(depmodProcess(t)).toEqual({ status: 0, threads: 0, parsed: 301, pools: 0 });
  });

  it('on worker threads (the built library, in a fresh process), .ko files read here meanwhile: what kmod writes', () => {
    expect(existsSync('dist/bin/read-worker.js'), 'run npm run build first').toBe(true);
    const t = bigTree(300, 2);
    const kmod = kmodDepmod(t);
    expect(kmod.status).toBe(0);
    const expected = t.outputs();
    for (const f of [...OUTPUTS, 'modules.kabi-cache']) t.remove(f);
    const r = depmodProcess(t);
    expect(r).toEqual({ status: 0, threads: expect.any(Number), parsed: 301, pools: 1 });
    expect(r.threads).toBeGreaterThan(0);
    const got = t.outputs();
    for (const f of OUTPUTS) expect(got.get(f)?.equals(expected.get(f)!), f).toBe(true);
  });

  it('threads held open across runs (as weak-modules refreshes several kernels): each run what kmod writes', () => {
    const a = bigTree(200, 2);
    const b = bigTree(150, 2);
    const expected = [a, b].map((t) => {
      expect(kmodDepmod(t).status).toBe(0);
      const out = t.outputs();
      for (const f of [...OUTPUTS, 'modules.kabi-cache']) t.remove(f);
      return out;
    });
    const url = (p: string) => new URL(`../../dist/src/${p}`, import.meta.url).href;
    const script = join(a.root, 'runs.mjs');
    writeFileSync(
      script,
      `const { runDepmod } = await import(${JSON.stringify(url('depmod/index.js'))});
       const { ModuleReaderPool } = await import(${JSON.stringify(url('module/reader-pool.js'))});
       const { DepmodReaderThreads } = await import(${JSON.stringify(url('depmod/reader-threads.js'))});
       let pools = 0;
       const create = ModuleReaderPool.create;
       ModuleReaderPool.create = (...a) => { const p = create.apply(ModuleReaderPool, a); if (p) pools++; return p; };
       const threads = new DepmodReaderThreads();
       const out = [];
       for (const root of process.argv.slice(2)) {
         const r = await runDepmod({ root, release: '6.1.0-99-amd64', configRoot: '/', externalRoot: '/', readers: threads });
         out.push([r.status, r.stats.timings['read.threads'], r.stats.parsed]);
       }
       // Held: one set of threads served every run, open until its owner closes it.
       out.push(pools);
       threads.close();
       console.log(JSON.stringify(out));`,
    );
    const r = spawnSync(process.execPath, [script, a.root, b.root, a.root], { encoding: 'utf8', timeout: 60_000 });
    expect(r.error, 'the process did not exit by itself').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    // The third run (a again) finds the cache the first wrote: nothing to read.
    expect(JSON.parse(r.stdout)).toEqual([[0, 2, 201], [0, 2, 151], [0, 0, 0], 1]);
    [a, b].forEach((t, i) => {
      const got = t.outputs();
      for (const f of OUTPUTS) expect(got.get(f)?.equals(expected[i]!.get(f)!), f).toBe(true);
    });
  });
});
