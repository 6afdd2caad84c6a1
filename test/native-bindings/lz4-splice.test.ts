// Keeping the chunks of a legacy lz4 stream that an edit did not touch; lz4(1) is the oracle
// for what the spliced stream decodes to.

import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { lz4BlockLength } from '../../native-bindings/lz4-block.js';
import { walkLegacy } from '../../native-bindings/lz4-legacy.js';
import { spliceLz4Legacy } from '../../native-bindings/lz4-splice.js';

const where = { file: 'test.lz4', base: 0 };
const MiB = 1 << 20;

function content(bytes: number, seed = 1): Uint8Array {
  const out = Buffer.alloc(bytes);
  let at = 0;
  for (let i = 0; at < bytes; i++) at += out.write(`usr/lib/modules/6.1.0-${seed}-amd64/kernel/drivers/x${(i * 2654435761) % 100003}.ko ${i}\n`, at);
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

  it('an edit in the first chunk: the chunks after it are kept although they moved', async () => {
    const next = Buffer.concat([old.subarray(0, 1000), content(5000, 7), old.subarray(1100)]);
    const r = (await spliceLz4Legacy(oldLz4, old, next, [0, 4900], undefined, where))!;
    expect(unlz4(r.bytes).equals(next)).toBe(true);
    expect(r.kept).toBe(2);
    expect(r.encodedBytes).toBe(8 * MiB + 4900);
    // The 8 MiB (and a bit) re-encoded in one piece per core (at most 4), each one chunk of
    // under 8 MiB, of at least 1 MiB: over 8 MiB, so never fewer than two.
    const cores = Math.max(1, Math.min(availableParallelism(), 4));
    const piece = Math.min(8 * MiB, Math.max(MiB, Math.ceil((8 * MiB + 4900) / cores)));
    expect(r.encoded).toBe(Math.ceil((8 * MiB + 4900) / piece));
    expect(r.encoded).toBeGreaterThanOrEqual(2);
    const before = chunkHex(oldLz4);
    const after = chunkHex(r.bytes);
    expect(after.slice(-2)).toEqual(before.slice(-2));
  });

  it('nothing kept when every chunk changed', async () => {
    const next = content(old.length, 2);
    expect(await spliceLz4Legacy(oldLz4, old, next, [0], undefined, where)).toBeUndefined();
  });

  it('a stream that is not one legacy stream up to its end is not spliced', async () => {
    const padded = Buffer.concat([oldLz4, Buffer.alloc(8)]);
    expect(await spliceLz4Legacy(padded, old, old, [0], undefined, where)).toBeUndefined();
  });
});
