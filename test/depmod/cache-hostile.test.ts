import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCacheFrames, writeTail } from '../../src/depmod/cache-file.js';
import { CACHE_DIR, runDepmod } from '../../src/depmod/index.js';
import { nodeFs } from '../../src/fs.js';
import { rng } from '../random.js';
import { KVER, mod, type Tree } from './fixture.js';
import { cacheParts, chainTree, expectSameAsFull, sections, sys, update, writeCache } from './cache-faults.js';

// A cache whose checksums are right but whose contents are not what kabi writes (a bug, an
// older layout, someone's tampering), or whose frame heads claim absurd lengths: a run must
// neither throw, hang nor give other outputs than a run with no cache.

const trees: Tree[] = [];
afterAll(() => {
  for (const t of trees) t.destroy();
});

/** A tree with a cache from a full run and one from an incremental run after it. */
async function built(): Promise<Tree> {
  const t = chainTree(trees);
  await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
  return t;
}

async function expectFallback(t: Tree, what: string): Promise<void> {
  t.write('extra/e.ko', mod('e', { exports: ['e_fn'], needs: ['k3_fn'], aliases: ['e-alias'] }));
  const { r, run } = await update(t, [{ kind: 'added', path: sys('extra/e.ko') }]);
  expect(r.status, what).toBe(0);
  await expectSameAsFull(t, run, what);
  // And the full run wrote a sound cache: the next update is patched again.
  t.remove('extra/e.ko');
  const next = await update(t, [{ kind: 'removed', path: sys('extra/e.ko') }]);
  expect(next.r.stats.patched, what).toBe(true);
  await expectSameAsFull(t, next.run, what);
}

// Section numbers of summary-store.ts.
const STRING_ENDS = 3;
const HOST_ENDS = 5;
const EXP_OFF = 7;
const EXP_NAME = 8;
const DEP_NAME = 11;
const STRING_TABLE = 21;

describe('a cache with right checksums but wrong contents', () => {
  const edits: [string, (payload: Buffer, at: number, len: number) => void, number][] = [
    ['string ends zeroed', (b, at, len) => b.fill(0, at, at + len), STRING_ENDS],
    ['host ends zeroed', (b, at, len) => b.fill(0, at, at + len), HOST_ENDS],
    ['export offsets zeroed', (b, at, len) => b.fill(0, at, at + len), EXP_OFF],
    ['export offsets falling', (b, at, len) => b.fill(0xff, at + 4, at + 8 < at + len ? at + 8 : at + len), EXP_OFF],
    ['export names out of range', (b, at, len) => b.fill(0xff, at, at + len), EXP_NAME],
    ['needed names out of range', (b, at, len) => b.fill(0x7f, at, at + len), DEP_NAME],
    ['string table full of ones', (b, at, len) => {
      for (let k = at; k < at + len; k += 4) b.writeUInt32LE(1, k);
    }, STRING_TABLE],
    ['string table pointing past the strings', (b, at, len) => b.fill(0xee, at, at + len), STRING_TABLE],
  ];
  for (const [what, edit, section] of edits) {
    it(what, { timeout: 20_000 }, async () => {
      const t = await built();
      const { summaries, state } = cacheParts(t);
      const [at, len] = sections(summaries).get(section)!;
      edit(summaries, at, len);
      writeCache(t, summaries, state);
      await expectFallback(t, what);
    });
  }

  it('a state naming records and items that are not there', { timeout: 20_000 }, async () => {
    const r = rng(7);
    for (let round = 0; round < 12; round++) {
      const t = await built();
      const { summaries, state } = cacheParts(t);
      const s = sections(state!);
      // The state's typed sections (not its JSON): module items, records, closures, the tree.
      // item, rec, closureOff, closure, losers, depOff, deps: numbers that index something.
      const names = [2, 3, 6, 7, 8, 9, 10];
      const [at, len] = s.get(names[Math.floor(r() * names.length)]!)!;
      for (let k = at; k + 4 <= at + len; k += 4) if (r() < 0.5) state!.writeUInt32LE(0xfffffff0 + Math.floor(r() * 15), k);
      writeCache(t, summaries, state);
      await expectFallback(t, `round ${round}`);
    }
  });
});

describe('frame heads with absurd lengths', () => {
  const heads: [string, (b: Buffer) => Buffer][] = [
    ['a summaries length of 2^31', (b) => (b.writeUInt32LE(0x80000000, 4), b)],
    ['a summaries length of 2^32 - 16', (b) => (b.writeUInt32LE(0xfffffff0, 4), b)],
    ['an appended frame of length 2^32 - 16', (b) => Buffer.concat([b, head(2, 0xfffffff0)])],
    ['an appended frame of length 2^31', (b) => Buffer.concat([b, head(3, 0x80000000), Buffer.alloc(64)])],
  ];
  for (const [what, change] of heads) {
    it(what, { timeout: 20_000 }, async () => {
      const t = await built();
      writeFileSync(t.cachePath(), change(readFileSync(t.cachePath())));
      await expectFallback(t, what);
    });
  }
});

function head(kind: number, len: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(kind, 0);
  h.writeUInt32LE(len, 4);
  return h;
}

describe('the cache file is written only where kabi put it', () => {
  it('a link in its place is not written through', { timeout: 20_000 }, async () => {
    const t = await built();
    const elsewhere = t.path('../precious');
    writeFileSync(elsewhere, readFileSync(t.cachePath()));
    const before = readFileSync(elsewhere);
    rmSync(t.cachePath());
    // Relative, so that it names the precious file whether links are followed on the host or in the root.
    symlinkSync(relative(dirname(t.cachePath()), elsewhere), t.cachePath());
    await expectFallback(t, 'cache is a link');
    expect(readFileSync(elsewhere).equals(before)).toBe(true);
  });

  for (const linked of ['/var/cache/kabi/depmod', '/var/cache/kabi']) {
    it(`a link in place of ${linked} is not written through, nor its target's files touched; the outputs are what they would be`, async () => {
      const t = chainTree(trees);
      const rootOf = (sysPath: string) => join(t.root, sysPath);
      mkdirSync(rootOf('/srv/important'), { recursive: true });
      writeFileSync(rootOf(`/srv/important/${KVER}`), 'named like the kernel');
      mkdirSync(dirname(rootOf(linked)), { recursive: true });
      rmSync(rootOf(linked), { recursive: true, force: true });
      symlinkSync('/srv/important', rootOf(linked));
      const r = await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
      expect(r.status).toBe(0);
      expect(readdirSync(rootOf('/srv/important'))).toEqual([KVER]);
      expect(readFileSync(rootOf(`/srv/important/${KVER}`), 'utf8')).toBe('named like the kernel');
      const outputs = t.outputs();
      // The same run where kabi's directories are its own writes the cache, and the same files.
      rmSync(rootOf(linked));
      const again = await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
      expect(again.status).toBe(0);
      expect(readdirSync(rootOf(CACHE_DIR))).toEqual([KVER]);
      for (const [name, data] of t.outputs()) expect(data !== undefined && outputs.get(name)?.equals(data), name).toBe(true);
    });
  }

  it('a file put in its place after it was read is not written at the old offset', async () => {
    const t = await built();
    const frames = await readCacheFrames(nodeFs, t.cache());
    frames.close();
    expect(frames.tail).toBeDefined();
    // Another run replaced it (rename: another inode), shorter than the tail offset.
    const other = Buffer.from('another run wrote this');
    writeFileSync(t.path('cache.new'), other);
    const { renameSync } = await import('node:fs');
    renameSync(t.path('cache.new'), t.cachePath());
    await expect(writeTail(nodeFs, t.cache(), frames.tail!, Buffer.alloc(32, 1), frames.file!)).rejects.toThrow();
    expect(readFileSync(t.cachePath()).equals(other)).toBe(true);
  });

  it('a cache cut short to nothing after being read is not grown back from a stale offset', async () => {
    const t = await built();
    const frames = await readCacheFrames(nodeFs, t.cache());
    frames.close();
    truncateSync(t.cachePath(), 0);
    await expect(writeTail(nodeFs, t.cache(), frames.tail!, Buffer.alloc(32, 1), frames.file!)).rejects.toThrow();
    expect(readFileSync(t.cachePath()).length).toBe(0);
  });
});
