// Keeping the blocks of an xz stream that an edit did not touch; xz(1) is the oracle for what
// the spliced stream decodes to and for its integrity.

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { spliceXzStream } from '../../native-bindings/xz-splice.js';
import { walkXzStream } from '../../native-bindings/xz-stream.js';
import { mapPool } from '../../src/util/pool.js';

const where = { file: 'test.xz', base: 0 };

/** Text-like content that compresses, different in every 64-byte line. */
function content(bytes: number, seed = 1): Uint8Array {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const l = `usr/lib/modules/6.1.0-${seed}-amd64/kernel/drivers/x${(i * 2654435761) % 100003}.ko ${i}\n`;
    lines.push(l);
    n += l.length;
  }
  return new Uint8Array(Buffer.from(lines.join('')).subarray(0, bytes));
}

function xz(data: Uint8Array, ...args: string[]): Uint8Array {
  return new Uint8Array(execFileSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-T1', '-c', ...args], { input: data, maxBuffer: 1 << 28 }));
}

function unxz(data: Uint8Array): Buffer {
  return execFileSync('xz', ['-dc'], { input: data, maxBuffer: 1 << 28 });
}

function splice(before: Uint8Array, after: Uint8Array): Uint8Array {
  return Buffer.concat([before, after]);
}

const BLOCK = 64 * 1024;
const old = content(6 * BLOCK + 1000);
const oldXz = xz(old, `--block-size=${BLOCK}`);

describe('spliceXzStream', () => {
  it('an edit inside one block re-encodes from that block to the next kept one; the others are copied byte for byte', async () => {
    // 300 bytes replaced by 5000 inside block 2: blocks 3.. move by 4700.
    const at = 2 * BLOCK + 500;
    const next = splice(splice(old.subarray(0, at), content(5000, 7)), old.subarray(at + 300));
    const r = (await spliceXzStream(oldXz, old, next, [0, 4700], undefined, where))!;
    expect(r).toBeDefined();
    expect(unxz(r.bytes).equals(Buffer.from(next))).toBe(true);
    execFileSync('xz', ['-t'], { input: r.bytes });
    // Blocks 0, 1 and 3..6 kept; block 2's content went through the encoder.
    expect(r.kept).toBe(6);
    expect(r.encodedBytes).toBe(BLOCK - 300 + 5000);
    const oldBlocks = walkXzStream(oldXz, 0, where).blockList.map((b) => Buffer.from(oldXz.subarray(b.start, b.end)).toString('hex'));
    const newBlocks = walkXzStream(r.bytes, 0, where).blockList.map((b) => Buffer.from(r.bytes.subarray(b.start, b.end)).toString('hex'));
    for (const i of [0, 1, 3, 4, 5, 6]) expect(newBlocks).toContain(oldBlocks[i]);
  });

  it('nothing changed: the same stream, byte for byte', async () => {
    const r = (await spliceXzStream(oldXz, old, old, [0], undefined, where))!;
    expect(r.encoded).toBe(0);
    expect(Buffer.from(r.bytes).equals(Buffer.from(oldXz))).toBe(true);
  });

  it('content removed from the middle and appended at the end; a block is matched only where its bytes are', async () => {
    const next = splice(splice(old.subarray(0, BLOCK), old.subarray(2 * BLOCK)), content(3000, 9));
    // A wrong candidate move first: it must not be taken for a match.
    const r = (await spliceXzStream(oldXz, old, next, [17, -BLOCK, 0], 1, where))!;
    expect(unxz(r.bytes).equals(Buffer.from(next))).toBe(true);
    // Block 0 at 0, blocks 2..5 moved back by one block; block 6 (the short last one) is followed by new bytes but kept.
    expect(r.kept).toBe(6);
    expect(r.encodedBytes).toBe(3000);
  });

  it('no candidate move matches any block: undefined, and the caller compresses the whole', async () => {
    const next = content(old.length, 3);
    expect(await spliceXzStream(oldXz, old, next, [0], undefined, where)).toBeUndefined();
  });

  it('a stream with a check the kernel cannot verify (SHA-256) is not spliced', async () => {
    const sha = new Uint8Array(execFileSync('xz', ['--check=sha256', `--block-size=${BLOCK}`, '-T1', '-c'], { input: old }));
    expect(await spliceXzStream(sha, old, old, [0], undefined, where)).toBeUndefined();
  });

  it('a CRC64 stream keeps its check type in the new blocks', async () => {
    const c64 = new Uint8Array(execFileSync('xz', ['--check=crc64', `--block-size=${BLOCK}`, '-T1', '-c'], { input: old }));
    const next = splice(content(100, 5), old);
    const r = (await spliceXzStream(c64, old, next, [100], undefined, where))!;
    expect(walkXzStream(r.bytes, 0, where).checkType).toBe(4);
    expect(unxz(r.bytes).equals(Buffer.from(next))).toBe(true);
    expect(r.encodedBytes).toBe(100);
  });
});

describe('mapPool, which runs the encoders of a splice', () => {
  it('runs at most `limit` at once and keeps the order of the results', async () => {
    let running = 0;
    let most = 0;
    const out = await mapPool([...Array(50).keys()], 2, async (i: number) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, i % 3));
      running--;
      return i * 2;
    });
    expect(most).toBe(2);
    expect(out).toEqual([...Array(50).keys()].map((i) => i * 2));
  });

  it('starts nothing more once one has failed', async () => {
    const started: number[] = [];
    const failing = mapPool([0, 1, 2, 3, 4, 5], 2, async (i: number) => {
      started.push(i);
      await new Promise((r) => setTimeout(r, 5));
      if (i === 1) throw new Error('encoder failed');
      return i;
    });
    await expect(failing).rejects.toThrow('encoder failed');
    await new Promise((r) => setTimeout(r, 50));
    // 0 and 1 ran side by side; 2 started as 0 ended (before 1 failed); nothing after.
    expect(started).toEqual([0, 1, 2]);
  });
});
