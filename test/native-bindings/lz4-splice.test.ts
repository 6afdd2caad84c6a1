// Keeping the chunks of a legacy lz4 stream that an edit did not touch; lz4(1) is the oracle
// for what the spliced stream decodes to.

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { lz4BlockLength } from '../../native-bindings/lz4-block.js';
import { lz4DecompressAll, walkLegacy } from '../../native-bindings/lz4-legacy.js';
import { spliceLz4Legacy } from '../../native-bindings/lz4-splice.js';

const where = { file: 'test.lz4', base: 0 };
const MiB = 1 << 20;

function content(bytes: number, seed = 1): Uint8Array {
  const out = Buffer.alloc(bytes);
  let at = 0;
  for (let i = 0; at < bytes; i++) at += out.write(`usr/lib/modules/6.1.0-${seed}-amd64/kernel/drivers/x${(i * 2654435761) % 100003}.ko ${i}\n`, at);
  return new Uint8Array(out);
}

/** Words in a seeded random order: text whose sequences reach back a short way. */
function words(bytes: number): Uint8Array {
  const vocabulary = 'the quick brown fox jumps over lazy dog module kernel firmware init lib usr bin sbin etc driver net block'.split(' ');
  let seed = 99;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  const out = Buffer.alloc(bytes);
  for (let at = 0; at < bytes; ) at += out.write(vocabulary[Math.floor(next() * vocabulary.length)]! + (next() < 0.1 ? '\n' : ' '), at);
  return new Uint8Array(out);
}

const lz4 = (data: Uint8Array) => new Uint8Array(execFileSync('lz4', ['-l', '-1', '-c', '-q'], { input: data, maxBuffer: 1 << 28 }));
const unlz4 = (data: Uint8Array) => execFileSync('lz4', ['-dc', '-q'], { input: data, maxBuffer: 1 << 28 });
const chunkHex = (b: Uint8Array) => walkLegacy(b, 0, where).chunks.map((c) => Buffer.from(b.subarray(c.start - 4, c.start + c.size)).toString('hex'));

// Three chunks, as lz4 -l writes them: 8 MiB, 8 MiB, the rest.
const old = content(16 * MiB + 300_000);
const oldLz4 = lz4(old);

describe('spliceLz4Legacy', () => {
  it('lz4 -l writes 8 MiB chunks; their decoded lengths are read from the sequence headers', () => {
    const lengths = walkLegacy(oldLz4, 0, where).chunks.map((c) => lz4BlockLength(oldLz4, c.start, c.start + c.size));
    expect(lengths).toEqual([8 * MiB, 8 * MiB, 300_000]);
  });

  it('an edit in the first chunk: the chunks after it are kept although they moved, and the first is mostly made of its old sequences', async () => {
    const next = Buffer.concat([old.subarray(0, 1000), content(5000, 7), old.subarray(1100)]);
    const r = (await spliceLz4Legacy(oldLz4, old, next, [0, 4900], undefined, where))!;
    expect(unlz4(r.bytes).equals(next)).toBe(true);
    expect(Buffer.from(lz4DecompressAll(r.bytes, next.length, where)).equals(next)).toBe(true);
    expect(r.kept).toBe(2);
    // 8 MiB and 4900 bytes, cut where lz4 -l cuts: two new chunks.
    expect(r.encoded).toBe(2);
    const lengths = walkLegacy(r.bytes, 0, where).chunks.map((c) => lz4BlockLength(r.bytes, c.start, c.start + c.size));
    expect(lengths).toEqual([8 * MiB, 4900, 8 * MiB, 300_000]);
    // What went through the compressor: the new 5000 bytes, and the start of the second new
    // chunk until old sequences stop reaching back before it (a copy reaches 64 KiB at most),
    // not the 8 MiB the chunk holds.
    expect(r.encodedBytes).toBeGreaterThanOrEqual(4000);
    expect(r.encodedBytes).toBeLessThan(5000 + 2 * 65536);
    // Made of lz4 -1's own sequences, the stream is about the size lz4 -1 makes of the new content.
    expect(r.bytes.length).toBeLessThan(lz4(next).length * 1.002);
    const before = chunkHex(oldLz4);
    const after = chunkHex(r.bytes);
    expect(after.slice(-2)).toEqual(before.slice(-2));
  });

  it('with no chunk kept whole, the old sequences still carry what only moved', async () => {
    const small = content(2 * MiB, 3);
    const smallLz4 = lz4(small);
    expect(walkLegacy(smallLz4, 0, where).chunks).toHaveLength(1);
    const next = Buffer.concat([small.subarray(0, MiB), content(3000, 9), small.subarray(MiB + 1000)]);
    const r = (await spliceLz4Legacy(smallLz4, small, next, [0, 2000], undefined, where))!;
    expect(unlz4(r.bytes).equals(next)).toBe(true);
    expect(Buffer.from(lz4DecompressAll(r.bytes, next.length, where)).equals(next)).toBe(true);
    expect(r).toMatchObject({ kept: 0, encoded: 1 });
    expect(r.encodedBytes).toBeLessThan(3000 + 65536);
  });

  it('an edit at the very end: copies that would end in the last literals are left out', async () => {
    // One long run of copies to the end; the new content stops 3 bytes short of it, or runs 1 past.
    const runs = new Uint8Array(3 * MiB).fill(0x41);
    for (let i = 0; i < runs.length; i += 4093) runs[i] = 0x42;
    const runsLz4 = lz4(runs);
    for (const next of [runs.subarray(0, runs.length - 3), Buffer.concat([runs, Buffer.from('C')])]) {
      const r = (await spliceLz4Legacy(runsLz4, runs, next, [0], undefined, where))!;
      expect(unlz4(r.bytes).equals(Buffer.from(next))).toBe(true);
      expect(Buffer.from(lz4DecompressAll(r.bytes, next.length, where)).equals(next)).toBe(true);
    }
  });

  it('when every chunk changed, the stream is encoded anew and still decodes', async () => {
    const next = content(old.length, 2);
    const r = (await spliceLz4Legacy(oldLz4, old, next, [0], undefined, where))!;
    expect(r.kept).toBe(0);
    expect(unlz4(r.bytes).equals(next)).toBe(true);
  });

  it('many candidate moves (many members moved by different amounts) cost bounded time, and the result still decodes', async () => {
    // A 2-byte insertion every 16 KiB: 256 different moves, and 744 that hold nowhere. Each
    // place the search tries is taken nearest first over all moves, and every byte compared is
    // charged to one budget: before, this took over 20 s.
    const text = words(4 * MiB);
    const textLz4 = lz4(text);
    const parts: Uint8Array[] = [];
    const moves = [0];
    for (let at = 0; at < text.length; at += 16384) {
      parts.push(text.subarray(at, at + 16384), Buffer.from([0xaa, 0x55]));
      moves.push(moves.at(-1)! + 2);
    }
    for (let i = 0; moves.length < 1000; i++) moves.push(-((i * 7919) % text.length));
    const next = Buffer.concat(parts);
    const r = (await spliceLz4Legacy(textLz4, text, next, moves, undefined, where))!;
    expect(unlz4(r.bytes).equals(next)).toBe(true);
    expect(Buffer.from(lz4DecompressAll(r.bytes, next.length, where)).equals(next)).toBe(true);
  }, 10_000);

  it('moves are read once (a generator is as good as an array) and only whole numbers count', async () => {
    const next = Buffer.concat([old.subarray(0, 1000), content(5000, 7), old.subarray(1100)]);
    const fromArray = (await spliceLz4Legacy(oldLz4, old, next, [0, 4900], undefined, where))!;
    const fromGenerator = (await spliceLz4Legacy(oldLz4, old, next, (function* () { yield 0; yield 4900; yield 0.5; yield Number.NaN; })(), undefined, where))!;
    expect(fromGenerator.encodedBytes).toBe(fromArray.encodedBytes);
    expect(Buffer.from(fromGenerator.bytes).equals(Buffer.from(fromArray.bytes))).toBe(true);
  });

  it('a stream that is not one legacy stream up to its end is not spliced', async () => {
    const padded = Buffer.concat([oldLz4, Buffer.alloc(8)]);
    expect(await spliceLz4Legacy(padded, old, old, [0], undefined, where)).toBeUndefined();
  });
});
