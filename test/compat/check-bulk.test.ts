import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, makeRoot, MODULE_LAYOUT_CRC, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { checkModules } from '../../src/compat/check.js';

// A whole tree checked (`kabi check` of every module of a kernel) reads thousands of modules.
// Through the built library, with reader threads at hand: threads start once for the whole
// check (not again at every pause of the reading), only when there is decoding to do, and
// the verdicts are the ones reading in-process gives.

const K = '6.1.0-99-amd64';
const roots: FixtureRoot[] = [];
afterAll(() => roots.forEach((r) => rmSync(r.root, { recursive: true, force: true })));

function treeRoot(compression: '' | 'xz', n: number): FixtureRoot {
  const fx = makeRoot('kabi-check-bulk-');
  roots.push(fx);
  const modules = Array.from({ length: n }, (_, i) => ({
    path: `kernel/drivers/bulk/m${i}`,
    spec: {
      license: 'GPL',
      exports: [{ symbol: `bulk_f${i}`, crc: 0x1000 + i }],
      ...(i > 0 ? { versions: [{ symbol: 'module_layout', crc: MODULE_LAYOUT_CRC }, { symbol: `bulk_f${i - 1}`, crc: 0x1000 + i - 1 }], undefinedSymbols: [`bulk_f${i - 1}`] } : {}),
    },
  }));
  addKernel(fx, { release: K, compression, modules });
  return fx;
}

function moduleFiles(fx: FixtureRoot): string[] {
  const dir = fx.path(`lib/modules/${K}/kernel/drivers/bulk`);
  return readdirSync(dir).map((f) => join(dir, f)).sort();
}

/** checkModules() of the built library in a fresh process: its verdicts and how many reader pools it started. */
function builtCheck(fx: FixtureRoot, files: readonly string[]) {
  const url = (p: string) => new URL(`../../dist/src/${p}`, import.meta.url).href;
  const script = join(fx.root, 'check.mjs');
  writeFileSync(
    script,
    `const { ModuleReaderPool } = await import(${JSON.stringify(url('module/reader-pool.js'))});
     const { checkModules } = await import(${JSON.stringify(url('compat/check.js'))});
     let pools = 0;
     const create = ModuleReaderPool.create;
     ModuleReaderPool.create = (...a) => { const p = create.apply(ModuleReaderPool, a); if (p) pools++; return p; };
     const files = JSON.parse(process.argv[3]);
     const r = await checkModules(files, { root: process.argv[2], kernels: [${JSON.stringify(K)}], semantics: process.argv[4] });
     console.log(JSON.stringify({ pools, verdicts: r.verdicts.map((v) => [v.module, v.compatible, v.reasons.map((x) => x.kind + ':' + (x.symbol ?? ''))]) }));`,
  );
  return (semantics: string) => {
    const r = spawnSync(process.execPath, [script, fx.root, JSON.stringify(files), semantics], { encoding: 'utf8', timeout: 120_000 });
    expect(r.error, 'the process did not exit by itself').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { pools: number; verdicts: unknown[] };
  };
}

describe('checking a whole tree', () => {
  for (const [compression, pools] of [
    ['xz', 1],
    ['', 0],
  ] as const) {
    it(`${compression ? '.ko.' + compression : '.ko'} modules: ${pools} set of reader threads, the verdicts of reading in-process`, async () => {
      expect(existsSync('dist/bin/read-worker.js'), 'run npm run build first').toBe(true);
      const fx = treeRoot(compression, 200);
      const files = moduleFiles(fx);
      expect(files).toHaveLength(200);
      // The tree as it is, and with one module's needed symbol gone bad: a verdict that fails.
      for (const semantics of ['depmod', 'loader']) {
        const built = builtCheck(fx, files)(semantics);
        const here = await checkModules(files, { root: fx.root, kernels: [K], semantics: semantics as 'depmod' | 'loader' });
        expect(built.pools).toBe(pools);
        expect(built.verdicts).toEqual(here.verdicts.map((v) => [v.module, v.compatible, v.reasons.map((x) => x.kind + ':' + (x.symbol ?? ''))]));
        expect(here.verdicts.filter((v) => !v.compatible).map((v) => v.reasons)).toEqual([]);
      }
    }, 180_000);
  }

  /** A script run by the built library in a fresh process; what it prints as JSON. */
  function runBuilt(fx: FixtureRoot, name: string, body: string, ...args: string[]): unknown {
    const url = (p: string) => JSON.stringify(new URL(`../../dist/src/${p}`, import.meta.url).href);
    const script = join(fx.root, name);
    writeFileSync(script, body.replace(/URL\(([\w/.-]+)\)/g, (_, p: string) => url(p)));
    const r = spawnSync(process.execPath, [script, fx.root, ...args], { encoding: 'utf8', timeout: 120_000 });
    expect(r.error, 'the process did not exit by itself').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  }

  it('a cache released with reads in flight still gives every module, then and later', () => {
    const fx = treeRoot('xz', 150);
    const files = moduleFiles(fx);
    const out = runBuilt(
      fx,
      'release.mjs',
      `const { ModuleCache } = await import(URL(compat/kernel-model.js));
       const files = JSON.parse(process.argv[3]);
       const c = new ModuleCache();
       c.hold();
       const reads = files.map((f) => c.read(f).then(() => 'ok', (e) => e.constructor.name + ': ' + e.message));
       c.release();
       c.release(); // one too many: nothing to release
       const got = await Promise.all(reads);
       const again = await c.read(files.at(-1)).then(() => 'ok', (e) => e.message);
       console.log(JSON.stringify({ failed: got.filter((g) => g !== 'ok'), again }));`,
      JSON.stringify(files),
    );
    expect(out).toEqual({ failed: [], again: 'ok' });
  }, 180_000);

  it('a check that failed reads nothing more and starts no reader threads', () => {
    const fx = treeRoot('xz', 600);
    const files = [join(fx.root, 'missing.ko.xz'), ...moduleFiles(fx)];
    const out = runBuilt(
      fx,
      'abort.mjs',
      `const { ModuleReaderPool } = await import(URL(module/reader-pool.js));
       const { ModuleCache } = await import(URL(compat/kernel-model.js));
       const { checkModules } = await import(URL(compat/check.js));
       let rejected = false, poolsAfter = 0, readsAfter = 0;
       const create = ModuleReaderPool.create;
       ModuleReaderPool.create = (...a) => { if (rejected) poolsAfter++; return create.apply(ModuleReaderPool, a); };
       const read = ModuleCache.prototype.read;
       ModuleCache.prototype.read = function (h) { if (rejected) readsAfter++; return read.call(this, h); };
       const err = await checkModules(JSON.parse(process.argv[3]), { root: process.argv[2], kernels: [${JSON.stringify(K)}] }).then(() => 'none', (e) => e.message);
       rejected = true;
       process.on('exit', () => console.log(JSON.stringify({ err: err.includes('missing.ko.xz'), poolsAfter, readsAfter })));`,
      JSON.stringify(files),
    );
    expect(out).toEqual({ err: true, poolsAfter: 0, readsAfter: 0 });
  }, 180_000);
});
