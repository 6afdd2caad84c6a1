import { mkdirSync, readFileSync, renameSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDepmod } from '../../src/depmod/index.js';
import { nodeFs, type KabiFs } from '../../src/fs.js';
import { rng } from '../random.js';
import { KVER, mod, type Tree } from './fixture.js';
import { chainTree, expectSameAsFull, otherKernel, sys, update } from './cache-faults.js';

// What the cache vouches for changing behind its back: where a link leads (its directory
// unchanged), a file rewritten in place with its mtime put back, an output whose bytes are
// not what was written. And the cache itself damaged at random: every run still gives what
// a run with no cache gives.

const trees: Tree[] = [];
afterAll(() => {
  for (const t of trees) t.destroy();
});

function writeOther(t: Tree, rel: string, data: Uint8Array): void {
  const p = otherKernel(t, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p + '.new', data);
  renameSync(p + '.new', p);
}

describe('links re-resolved every run', () => {
  for (const verbose of [false, true]) {
    const how = verbose ? ' (the full path with the state: -v)' : '';
    it(`(E) a link's target replaced in another kernel's tree${how}`, async () => {
      const t = chainTree(trees);
      writeOther(t, 'extra/foo.ko', mod('foo', { exports: ['foo_old'], needs: ['k1_fn'], aliases: ['foo-old'] }));
      t.link('weak-updates/a/foo.ko', '/lib/modules/6.1.0-98-amd64/extra/foo.ko');
      await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
      // Upgraded there by rename: weak-updates/a is as it was.
      writeOther(t, 'extra/foo.ko', mod('foo', { exports: ['foo_new'], needs: ['k6_fn'], aliases: ['foo-new'] }));
      t.write('weak-updates/b/bar.ko', mod('bar', { needs: ['foo_new'] }));
      const { r, run } = await update(t, [{ kind: 'added', path: sys('weak-updates/b/bar.ko') }], { verbose });
      expect(r.status).toBe(0);
      await expectSameAsFull(t, run, '', { verbose });
      expect(run.outputs.get('modules.dep')!.toString()).toContain('weak-updates/a/foo.ko: kernel/drivers/k6.ko');
    });

    it(`(F) a link dangling at the last run, its target there now${how}`, async () => {
      const t = chainTree(trees);
      t.link('weak-updates/a/foo.ko', '/lib/modules/6.1.0-98-amd64/extra/foo.ko');
      await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
      writeOther(t, 'extra/foo.ko', mod('foo', { exports: ['foo_fn'], needs: ['k2_fn'], aliases: ['foo-alias'] }));
      t.write('weak-updates/b/bar.ko', mod('bar', { needs: ['foo_fn'] }));
      const { r, run } = await update(t, [{ kind: 'added', path: sys('weak-updates/b/bar.ko') }], { verbose });
      expect(r.status).toBe(0);
      await expectSameAsFull(t, run, '', { verbose });
      expect(run.outputs.get('modules.dep')!.toString()).toContain('weak-updates/a/foo.ko:');
    });
  }

  it('a link now dangling, and one retargeted through a link in the middle of its path', async () => {
    const t = chainTree(trees);
    writeOther(t, 'extra/v1/foo.ko', mod('foo', { exports: ['foo_fn'] }));
    writeOther(t, 'extra/v2/foo.ko', mod('foo', { exports: ['foo_fn', 'foo_two'] }));
    writeOther(t, 'extra/gone.ko', mod('gone', { exports: ['gone_fn'] }));
    const { symlinkSync, rmSync } = await import('node:fs');
    symlinkSync('v1', otherKernel(t, 'extra/cur'));
    t.link('weak-updates/foo.ko', '/lib/modules/6.1.0-98-amd64/extra/cur/foo.ko');
    t.link('weak-updates/gone.ko', '/lib/modules/6.1.0-98-amd64/extra/gone.ko');
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    rmSync(otherKernel(t, 'extra/cur'));
    symlinkSync('v2', otherKernel(t, 'extra/cur'));
    rmSync(otherKernel(t, 'extra/gone.ko'));
    t.write('extra/bar.ko', mod('bar', { needs: ['foo_two'] }));
    const { run } = await update(t, [{ kind: 'added', path: sys('extra/bar.ko') }]);
    await expectSameAsFull(t, run);
  });
});

describe('a file rewritten in place, its size and mtime put back', () => {
  for (const how of ['a full run with the cache', 'an incremental run told of it']) {
    it(how, async () => {
      const t = chainTree(trees);
      const rel = 'kernel/drivers/k3.ko';
      // A whole second, which utimes() can put back exactly.
      utimesSync(t.path(rel), 1_700_000_000, 1_700_000_000);
      await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
      const before = statSync(t.path(rel));
      const bytes = Buffer.from(readFileSync(t.path(rel)));
      // Same length: the export k3_fn renamed k3_fx, as a rebuilt module might differ.
      const at = bytes.indexOf('k3_fn');
      for (let k = bytes.indexOf('k3_fn'); k >= 0; k = bytes.indexOf('k3_fn', k + 1)) bytes.write('k3_fx', k, 'latin1');
      expect(at).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 20));
      writeFileSync(t.path(rel), bytes);
      utimesSync(t.path(rel), 1_700_000_000, 1_700_000_000);
      expect(statSync(t.path(rel)).mtimeMs).toBe(before.mtimeMs);
      expect(statSync(t.path(rel)).ino).toBe(before.ino);
      const { r, run } = await update(t, how.startsWith('a full') ? undefined : [{ kind: 'changed', path: sys(rel) }]);
      expect(r.stats.parsed).toBeGreaterThanOrEqual(1);
      await expectSameAsFull(t, run);
      expect(run.outputs.get('modules.symbols')!.toString()).toContain('k3_fx');
    });
  }
});

describe('a directory changed behind the cache, its mtime put back', () => {
  it('an unreported module in a directory whose mtime was restored is still found', async () => {
    const t = chainTree(trees);
    t.write('extra/a.ko', mod('a', { exports: ['a_fn'] }));
    utimesSync(t.path('extra'), 1_700_000_000, 1_700_000_000);
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    const before = statSync(t.path('extra'));
    // A second module of the same name length: the directory keeps its size too.
    t.write('extra/b.ko', mod('b', { exports: ['b_fn'], needs: ['k2_fn'] }));
    utimesSync(t.path('extra'), 1_700_000_000, 1_700_000_000);
    expect(statSync(t.path('extra')).mtimeMs).toBe(before.mtimeMs);
    const { r, run } = await update(t, [{ kind: 'added', path: sys('weak-updates/none.ko') }]);
    expect(r.status).toBe(0);
    await expectSameAsFull(t, run);
    expect(run.outputs.get('modules.dep')!.toString()).toContain('extra/b.ko:');
  });
});

describe('outputs whose bytes are not what was written', () => {
  // A crash after the rename but before the data reached the disk: same size, mtime, inode
  // (which no test can make on a real file: writing changes its ctime), only zeros in it.
  for (const name of ['modules.dep', 'modules.dep.bin', 'modules.alias.bin', 'modules.symbols']) {
    it(`${name} read back as zeros`, async () => {
      const t = chainTree(trees);
      await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
      const zeroed = t.path(name);
      const readFile = (async (p: string, ...rest: unknown[]) => {
        const b = await (nodeFs.readFile as (...a: unknown[]) => Promise<Buffer>)(p, ...rest);
        return String(p) === zeroed ? Buffer.alloc(b.length) : b;
      }) as KabiFs['readFile'];
      const fs: KabiFs = { ...nodeFs, readFile };
      t.write('extra/e.ko', mod('e', { exports: ['e_fn'], needs: ['k3_fn'], aliases: ['e-alias'] }));
      const { r, run } = await update(t, [{ kind: 'added', path: sys('extra/e.ko') }], { fs });
      expect(r.status).toBe(0);
      await expectSameAsFull(t, run);
    });
  }
});

describe('a cache damaged at random', () => {
  it('flipped, zeroed and cut bytes: never a throw, a hang or other outputs', { timeout: 120_000 }, async () => {
    const base = chainTree(trees);
    await runDepmod({ root: base.root, release: KVER, configRoot: '/' });
    base.write('extra/e.ko', mod('e', { exports: ['e_fn'], needs: ['k3_fn'], aliases: ['e-alias'] }));
    await runDepmod({ root: base.root, release: KVER, configRoot: '/', changes: [{ kind: 'added', path: sys('extra/e.ko') }] });
    const good = readFileSync(base.cachePath());
    const r = rng(20261123);
    const t = base.clone();
    trees.push(t);
    for (let round = 0; round < 60; round++) {
      const b = Buffer.from(good);
      const kind = Math.floor(r() * 3);
      const at = Math.floor(r() * b.length);
      const n = 1 + Math.floor(r() * 64);
      if (kind === 0) for (let k = 0; k < n; k++) b[Math.floor(r() * b.length)]! ^= 1 << Math.floor(r() * 8);
      else if (kind === 1) b.fill(0, at, at + n * 16);
      writeFileSync(t.cachePath(), b);
      if (kind === 2) truncateSync(t.cachePath(), at);
      const where = `round ${round}: ${['flipped', 'zeroed', 'cut'][kind]} at ${at}`;
      // Alternately a link added and taken away, so that each round is an update.
      const add = round % 2 === 0;
      if (add) t.link('weak-updates/k9.ko', '../extra/e.ko');
      else t.remove('weak-updates/k9.ko');
      const res = await update(t, [{ kind: add ? 'added' : 'removed', path: sys('weak-updates/k9.ko') }]);
      expect(res.r.status, where).toBe(0);
      await expectSameAsFull(t, res.run, where);
    }
  });
});
