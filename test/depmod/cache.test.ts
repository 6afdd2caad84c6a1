import { appendFileSync, mkdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheImage, readCacheFrames, tailFrames, writeTail } from '../../src/depmod/cache-file.js';
import { runDepmod, type DepmodChange } from '../../src/depmod/index.js';
import { nodeFs } from '../../src/fs.js';
import { KVER, mod, outputDiff, type Run, type Tree } from './fixture.js';
import { chainTree, fullRun, sys, update } from './cache-faults.js';

// modules.kabi-cache holds the summaries and the state an incremental run builds on. Whatever
// happened to it (cut short, damaged, left by another version, made stale by another depmod
// or another configuration), a run must give exactly what a full run gives, falling back to
// one when it cannot vouch for what it would build on.

const trees: Tree[] = [];
afterAll(() => {
  for (const t of trees) t.destroy();
});

async function expectSameAsFull(t: Tree, run: Run, opts: { errsyms?: boolean; symvers?: { text: string } } = {}, where = '') {
  const f = await fullRun(t, opts);
  expect(outputDiff(f, run), where).toEqual([]);
  expect(run.stderr, where).toBe(f.stderr);
}

describe('an incremental run builds only on a cache it can vouch for', () => {
  it('uses the cache after a full run, and patches the outputs', async () => {
    const t = chainTree(trees);
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    t.write('extra/e.ko', mod('e', { exports: ['e_fn'], needs: ['k3_fn'], aliases: ['e-alias'] }));
    const { r, run } = await update(t, [{ kind: 'added', path: sys('extra/e.ko') }]);
    expect(r.stats.patched).toBe(true);
    expect(r.stats.parsed).toBe(1);
    await expectSameAsFull(t, run);
  });

  // Every way the file can end up cut short or damaged: at each frame boundary and inside each frame.
  it('falls back to a full run over a cut or damaged cache, with the same outputs', async () => {
    const base = chainTree(trees);
    await runDepmod({ root: base.root, release: KVER, configRoot: '/' });
    base.write('extra/e.ko', mod('e', { exports: ['e_fn'], needs: ['k3_fn'], aliases: ['e-alias'] }));
    await runDepmod({ root: base.root, release: KVER, configRoot: '/', changes: [{ kind: 'added', path: sys('extra/e.ko') }] });
    const good = readFileSync(base.cachePath());
    const damages: [string, (path: string) => void][] = [];
    for (const cut of [8, 16, 1000, good.length >> 1, good.length - 100, good.length - 1]) damages.push([`cut to ${cut} bytes`, (p) => truncateSync(p, cut)]);
    for (const at of [20, good.length >> 1, good.length - 50]) {
      damages.push([
        `byte ${at} flipped`,
        (p) => {
          const b = Buffer.from(good);
          b[at]! ^= 0xff;
          writeFileSync(p, b);
        },
      ]);
    }
    // A crash after the file grew but before its blocks were written leaves zeros.
    for (const from of [good.length >> 1, Math.floor(good.length * 0.8), good.length - 200]) {
      damages.push([
        `zeros from byte ${from} on`,
        (p) => {
          const b = Buffer.from(good);
          b.fill(0, from);
          writeFileSync(p, b);
        },
      ]);
    }
    damages.push(['garbage appended', (p) => appendFileSync(p, Buffer.from('not a frame at all, but long enough to look like one'))]);
    damages.push(['another file entirely', (p) => writeFileSync(p, 'depmod cache? no.\n')]);
    damages.push(['empty', (p) => writeFileSync(p, '')]);
    for (const [what, damage] of damages) {
      const t = base.clone();
      trees.push(t);
      damage(t.cachePath());
      t.link('weak-updates/k9.ko', '../extra/e.ko');
      const { r, run } = await update(t, [{ kind: 'added', path: sys('weak-updates/k9.ko') }]);
      expect(r.status, what).toBe(0);
      await expectSameAsFull(t, run, {}, what);
      // Whatever was left, the next update builds on a sound cache again.
      t.remove('weak-updates/k9.ko');
      const next = await update(t, [{ kind: 'removed', path: sys('weak-updates/k9.ko') }]);
      expect(next.r.stats.patched, what).toBe(true);
      await expectSameAsFull(t, next.run, {}, what);
    }
  });

  it('a different configuration makes the run a full one', async () => {
    const t = chainTree(trees);
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    t.write('updates/k2.ko', mod('k2', { exports: ['k2_fn', 'k2_extra'] }));
    const conf = t.path('../x.conf');
    writeFileSync(conf, 'search built-in updates\n');
    const r = await runDepmod({ root: t.root, release: KVER, configRoot: '/', configPaths: [conf], changes: [{ kind: 'added', path: sys('updates/k2.ko') }] });
    expect(r.stats.incremental).toBe(false);
    const f = await runDepmod({ root: t.root, release: KVER, configRoot: '/', configPaths: [conf], cache: false, write: false });
    expect(r.files.map((x) => Buffer.from(x.data).toString('latin1'))).toEqual(f.files.map((x) => Buffer.from(x.data).toString('latin1')));
  });

  it('a changed modules.order makes the run a full one', async () => {
    const t = chainTree(trees);
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    const order = readFileSync(t.path('modules.order'), 'latin1').split('\n').filter((l) => l);
    t.write('modules.order', [...order].reverse().join('\n') + '\n');
    t.write('extra/e.ko', mod('e', { needs: ['k3_fn'] }));
    const { r, run } = await update(t, [{ kind: 'added', path: sys('extra/e.ko') }]);
    expect(r.stats.patched).toBe(false);
    await expectSameAsFull(t, run);
  });
});

describe('the cache file’s frames', () => {
  it('a state written in place is only taken back whole: any byte of it changed, it is not', async () => {
    const t = chainTree(trees);
    const summaries = Buffer.from('summaries, written by atomic replacement');
    const state = Buffer.from('the state of the run: any bytes will do here, some more of them');
    const path = t.cachePath();
    mkdirSync(t.cache().dir, { recursive: true });
    writeFileSync(path, cacheImage(summaries, undefined));
    const first = await readCacheFrames(nodeFs, t.cache());
    first.close();
    const tail = first.tail!;
    await writeTail(nodeFs, t.cache(), tail, tailFrames(Buffer.from('additions'), state), first.file!);
    const good = readFileSync(path);
    const read = await readCacheFrames(nodeFs, t.cache());
    expect(Buffer.from(read.state!).equals(state)).toBe(true);
    expect(read.additions.map((a) => Buffer.from(a).toString())).toEqual(['additions']);
    for (let at = tail; at < good.length; at++) {
      const b = Buffer.from(good);
      b[at]! ^= 0x5a;
      writeFileSync(path, b);
      const r = await readCacheFrames(nodeFs, t.cache());
      // Damage in the additions loses them; in the state, the state.
      expect(r.state === undefined || r.additions.length === 0, `byte ${at}`).toBe(true);
      expect(r.state === undefined || Buffer.from(r.state).equals(state), `byte ${at}`).toBe(true);
      expect(r.tail, `byte ${at}`).toBeUndefined();
    }
  });
});

describe('incremental runs equal full runs where the module array is renumbered', () => {
  it('modules of modules.order taken away and put back return to their place, also when listed twice', async () => {
    const t = chainTree(trees);
    const order = readFileSync(t.path('modules.order'), 'latin1');
    // k5 listed again at the end: the last line counts.
    t.write('modules.order', order + 'kernel/drivers/k5.ko\n');
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    for (const k of [5, 2, 0, 7]) {
      const rel = `kernel/drivers/k${k}.ko`;
      // Moved out of the tree and back: the same file, whose summary the cache still has.
      renameSync(t.path(rel), t.path('../aside.ko'));
      const gone = await update(t, [{ kind: 'removed', path: sys(rel) }]);
      expect(gone.r.stats.patched, `k${k} removed`).toBe(true);
      await expectSameAsFull(t, gone.run, {}, `k${k} removed`);
      renameSync(t.path('../aside.ko'), t.path(rel));
      const back = await update(t, [{ kind: 'added', path: sys(rel) }]);
      expect(back.r.stats.patched, `k${k} back`).toBe(true);
      // The rename back changed its ctime: it is read again, as any file that may have been rewritten.
      expect(back.r.stats.parsed, `k${k} back`).toBeLessThanOrEqual(1);
      await expectSameAsFull(t, back.run, {}, `k${k} back`);
    }
  });

  it('with -e and Module.symvers: unknown symbols and CRC mismatches reported as a full run reports them', async () => {
    const t = chainTree(trees);
    const symvers = { text: '0x00000001\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n0x00000002\tkernel_fn\tvmlinux\tEXPORT_SYMBOL\t\n' };
    const opts = { errsyms: true, symvers };
    await runDepmod({ root: t.root, release: KVER, configRoot: '/', ...opts });
    const steps: [string, () => DepmodChange[]][] = [
      ['a module needing unknown and kernel symbols', () => (t.write('extra/u.ko', mod('u', { needs: ['nowhere_fn', 'kernel_fn', 'k4_fn'] })), [{ kind: 'added', path: sys('extra/u.ko') }])],
      ['a module whose CRC disagrees', () => (t.write('extra/c.ko', mod('c', { needs: ['kernel_fn'], crcs: { kernel_fn: 7 } })), [{ kind: 'added', path: sys('extra/c.ko') }])],
      ['the provider of the unknown symbol', () => (t.write('extra/p.ko', mod('p', { exports: ['nowhere_fn'] })), [{ kind: 'added', path: sys('extra/p.ko') }])],
      ['an override of an in-tree module', () => (t.write('updates/k1.ko', mod('k1', { exports: ['k1_fn'], needs: ['nowhere_fn'] })), [{ kind: 'added', path: sys('updates/k1.ko') }])],
      ['the provider gone', () => (t.remove('extra/p.ko'), [{ kind: 'removed', path: sys('extra/p.ko') }])],
    ];
    for (const [what, step] of steps) {
      const { r, run } = await update(t, step(), opts);
      expect(r.stats.patched, what).toBe(true);
      await expectSameAsFull(t, run, opts, what);
      if (what === steps[0]![0]) expect(run.stderr).toContain('needs unknown symbol nowhere_fn');
      if (what === steps[1]![0]) expect(run.stderr).toContain('disagrees about version of symbol kernel_fn');
    }
  });

  it('a summary parsed by an incremental run is kept for the next one', async () => {
    const t = chainTree(trees);
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    t.write('extra/e.ko', mod('e', { exports: ['e_fn'], needs: ['k6_fn'] }));
    expect((await update(t, [{ kind: 'added', path: sys('extra/e.ko') }])).r.stats.parsed).toBe(1);
    const size = statSync(t.cachePath()).size;
    for (let i = 0; i < 3; i++) {
      t.link(`weak-updates/w${i}.ko`, '../extra/e.ko');
      const { r, run } = await update(t, [{ kind: 'added', path: sys(`weak-updates/w${i}.ko`) }]);
      expect(r.stats.parsed).toBe(0);
      await expectSameAsFull(t, run);
    }
    // The state is written over the previous one: the file grows only by what was parsed.
    expect(statSync(t.cachePath()).size).toBeLessThan(size + 4096);
  });
});
