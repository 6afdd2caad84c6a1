import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexBuilder, IndexReader, kmodFlavor, type IndexLayout } from '../../src/depmod/index.js';
import { rng } from '../random.js';
import { both, kabiDepmod, KVER, mod, Tree } from './fixture.js';

const trees: Tree[] = [];
afterAll(() => {
  for (const t of trees) t.destroy();
});

function randomKey(r: () => number): string {
  const alphabet = 'abc_:*-[]?0123456789xyz';
  const prefixes = ['', 'pci:v', 'usb:v', 'symbol:', 'a', 'ab', 'abc'];
  let s = prefixes[Math.floor(r() * prefixes.length)]!;
  const n = Math.floor(r() * 12);
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)]!;
  return s;
}

describe('kmod index writer and reader', () => {
  for (const layout of ['post-order', 'pre-order'] as IndexLayout[]) {
    it(`round-trips random keys, shared prefixes, empty keys and repeated values (${layout})`, () => {
      const seed = 0x5eed0000 + (layout === 'post-order' ? 1 : 2);
      const r = rng(seed);
      const b = new IndexBuilder();
      const expected = new Map<string, { priority: number; value: string; seq: number }[]>();
      for (let i = 0; i < 3000; i++) {
        const key = randomKey(r);
        const value = `v${Math.floor(r() * 50)}`;
        const priority = Math.floor(r() * 20);
        b.insert(key, value, priority);
        const list = expected.get(key) ?? [];
        list.push({ priority, value, seq: i });
        expected.set(key, list);
      }
      const bytes = b.write(layout);
      const reader = new IndexReader(bytes);
      const got = new Map(reader.entries());
      expect([...got.keys()].sort(), `seed ${seed}`).toEqual([...expected.keys()].sort());
      for (const [key, list] of expected) {
        // kmod's order: ascending priority, the newest first among equal priorities.
        const want = [...list].sort((x, y) => x.priority - y.priority || y.seq - x.seq).map(({ priority, value }) => ({ priority, value }));
        expect(got.get(key), `key ${JSON.stringify(key)} (seed ${seed})`).toEqual(want);
        expect(reader.get(key)).toEqual(want);
      }
      expect(reader.get('no such key at all')).toEqual([]);
    });
  }

  it('both layouts hold the same trie, only the node order differs', () => {
    const b = new IndexBuilder();
    for (const k of ['ask', 'ate', 'on', 'once', 'one', '', 'o']) b.insert(k, k.toUpperCase(), 0);
    const post = b.write('post-order');
    const pre = b.write('pre-order');
    expect(post.length).toBe(pre.length);
    expect(new IndexReader(post).entries()).toEqual(new IndexReader(pre).entries());
    // Pre-order puts the root right after the header; post-order writes it last.
    expect(Buffer.from(pre).readUInt32BE(8) & 0x0fffffff).toBe(12);
    expect(Buffer.from(post).readUInt32BE(8) & 0x0fffffff).toBeGreaterThan(12);
  });

  it('refuses keys kmod cannot store', () => {
    const b = new IndexBuilder();
    b.insert('caf\u00e9', 'x', 0);
    expect(() => b.write('post-order')).toThrow(/7-bit ASCII/);
  });

  it('an empty index is what kmod writes for an empty modules.builtin', async () => {
    const t = new Tree().write('kernel/a.ko', mod('a')).write('modules.builtin', '');
    trees.push(t);
    const { kmod } = await both(t);
    expect(Buffer.from(new IndexBuilder().write('post-order')).equals(kmod.outputs.get('modules.builtin.bin')!)).toBe(true);
  });
});

describe("kmod's modprobe reads what kabi writes", () => {
  const tree = () => {
    const t = new Tree()
      .write('kernel/a.ko', mod('a', { exports: ['a_fn'], aliases: ['pci:v00001234d*sv*sd*bc*sc*i*', 'dev-a'] }))
      .write('kernel/b.ko', mod('b', { exports: ['b_fn'], needs: ['a_fn'], aliases: ['usb:v1234p*d*dc*dsc*dp*ic*isc*ip*in*'] }))
      .write('extra/c-d.ko', mod('c_d', { needs: ['b_fn', 'a_fn'], aliases: ['acpi*:ABC0001:*'] }))
      .write('modules.order', 'kernel/a.ko\nkernel/b.ko\n')
      .write('modules.builtin', 'kernel/builtin/bi.ko\n');
    trees.push(t);
    return t;
  };
  const modprobe = (t: Tree, args: string[]) => {
    const r = spawnSync('modprobe', ['-d', t.root, '-S', KVER, ...args], { encoding: 'utf8' });
    return { status: r.status, out: r.stdout.split(t.root).join('<root>'), err: r.stderr.split(t.root).join('<root>') };
  };

  for (const version of [30, 34]) {
    it(`resolves dependencies, aliases and symbols from kmod ${version}'s layout`, async () => {
      const t = tree();
      const { kmod } = await both(t);
      expect(kmod.status).toBe(0);
      const queries = [['--show-depends', 'c_d'], ['--show-depends', 'c-d'], ['--show-depends', 'b'], ['-R', 'pci:v00001234d00005678sv0sd0bc0sc0i0'], ['-R', 'dev_a'], ['-R', 'symbol:b_fn'], ['-R', 'usb:v1234p0001d0000dc00dsc00dp00ic00isc00ip00in00'], ['--show-depends', 'bi']];
      // The answers from kmod's own files first, then from kabi's only.
      for (const f of kmod.outputs.keys()) rmSync(t.path(f), { force: true });
      for (const [name, data] of kmod.outputs) if (data) writeFileSync(t.path(name), data);
      const fromKmod = queries.map((q) => modprobe(t, q));
      for (const f of kmod.outputs.keys()) rmSync(t.path(f), { force: true });
      const kabi = await kabiDepmod(t, { kmod: kmodFlavor(version), cache: false });
      expect(kabi.status).toBe(0);
      const layoutOfDepBin = Buffer.from(readFileSync(t.path('modules.dep.bin'))).readUInt32BE(8) & 0x0fffffff;
      expect(layoutOfDepBin === 12).toBe(version >= 34);
      const fromKabi = queries.map((q) => modprobe(t, q));
      expect(fromKabi).toEqual(fromKmod);
      // The queries are answerable at all (kmod's own files resolve them).
      expect(fromKmod[0]!.out).toContain('kernel/a.ko');
      expect(fromKmod[3]!.out.trim()).toBe('a');
      expect(fromKmod[5]!.out.trim()).toBe('b');
      expect(fromKmod[6]!.out.trim()).toBe('b');
    });
  }
});
