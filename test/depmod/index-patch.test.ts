import { describe, expect, it } from 'vitest';
import { IndexBuilder, IndexReader, type IndexLayout, type IndexValue } from '../../src/depmod/index.js';
import { indexTables, patchIndex, type IndexEdit, type IndexTables } from '../../src/depmod/index-patch.js';
import { rng } from '../random.js';

function randomKey(r: () => number): string {
  const alphabet = 'abc_:*-0123456789xyz';
  const prefixes = ['', 'pci:v', 'pci:v0000', 'usb:v', 'symbol:', 'a', 'ab', 'abc'];
  let s = prefixes[Math.floor(r() * prefixes.length)]!;
  const n = Math.floor(r() * 8);
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)]!;
  return s;
}

type Keys = Map<string, IndexValue[]>;

function build(keys: Keys, layout: IndexLayout): Uint8Array {
  const b = new IndexBuilder();
  // Lists are kept in index order: inserting them highest priority first reproduces it.
  for (const [k, list] of keys) for (const v of [...list].reverse()) b.insert(k, v.value, v.priority);
  return b.write(layout);
}

describe('patching a kmod index gives what writing it anew gives', () => {
  for (const layout of ['post-order', 'pre-order'] as IndexLayout[]) {
    it(`random insertions, removals, value changes and renumberings (${layout})`, () => {
      for (let seed = 1; seed <= 60; seed++) {
        const r = rng(seed * 31 + (layout === 'post-order' ? 0 : 7));
        const keys: Keys = new Map();
        const n = Math.floor(r() * (seed % 5 === 0 ? 3 : 400));
        for (let i = 0; i < n; i++) {
          const list = Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({ priority: Math.floor(r() * 50), value: `v${Math.floor(r() * 9)}` }));
          keys.set(randomKey(r), list.sort((a, b) => a.priority - b.priority));
        }
        let bytes = build(keys, layout);
        // Half the sequences move subtrees by the tables of words and priorities, half by walking them.
        let tables: IndexTables | undefined = seed % 2 === 0 ? indexTables(bytes) : undefined;
        for (let step = 0; step < 6; step++) {
          // A renumbering that keeps the order of what it keeps, as when modules come and go.
          let remap: Int32Array | undefined;
          if (r() < 0.4) {
            remap = new Int32Array(200);
            let next = 0;
            for (let p = 0; p < 200; p++) remap[p] = r() < 0.1 ? next : next++;
            for (const [k, list] of keys) keys.set(k, list.map((v) => ({ priority: remap![v.priority]!, value: v.value })));
          }
          const edits: IndexEdit[] = [];
          const m = Math.floor(r() * 12);
          const touched = new Set<string>();
          for (let i = 0; i < m; i++) {
            const existing = [...keys.keys()];
            const key = r() < 0.5 && existing.length > 0 ? existing[Math.floor(r() * existing.length)]! : randomKey(r);
            if (touched.has(key)) continue;
            touched.add(key);
            if (r() < 0.4) keys.delete(key);
            else keys.set(key, Array.from({ length: 1 + Math.floor(r() * 2) }, () => ({ priority: Math.floor(r() * 60), value: `w${Math.floor(r() * 9)}` })).sort((a, b) => a.priority - b.priority));
            edits.push({ key, values: keys.get(key) ?? [] });
          }
          const patched = patchIndex(bytes, layout, edits, remap, tables);
          const fresh = build(keys, layout);
          expect(Buffer.from(patched.data).equals(Buffer.from(fresh)), `seed ${seed}, step ${step}`).toBe(true);
          expect(new IndexReader(patched.data).entries().length).toBe(keys.size);
          if (patched.tables !== undefined) {
            const walked = indexTables(patched.data);
            expect([...patched.tables.words], `seed ${seed}, step ${step}`).toEqual([...walked.words]);
            expect([...patched.tables.prios], `seed ${seed}, step ${step}`).toEqual([...walked.prios]);
          }
          if (tables !== undefined || remap !== undefined) expect(patched.tables).toBeDefined();
          bytes = patched.data;
          tables = patched.tables;
        }
      }
    });
  }
});
