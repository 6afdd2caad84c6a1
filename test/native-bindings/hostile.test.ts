import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Lz4BlockError, lz4BlockLength } from '../../native-bindings/lz4-block.js';
import { decompress, decompressSegment, isOutputLimit, maybeDecompress, type Compression } from '../../native-bindings/index.js';
import { expectKabiError, MODES, randomBytes, realisticPayload, tool, u32le, withNative } from './helpers.js';

/*
 * Damaged and malicious input must end in KabiError('COMPRESSION') naming the file, never a
 * RangeError, an out-of-memory or a hang (each test has a short timeout).
 */

const FILE = '/lib/modules/6.1.0/kernel/drivers/x.ko';
const T = { timeout: 15_000 };

const plain = realisticPayload(300_000, 21);
const samples: Record<'gzip' | 'zstd' | 'xz' | 'lz4' | 'bzip2' | 'lzma' | 'lzo', Buffer> = {
  gzip: tool('gzip', ['-n', '-c'], plain),
  zstd: tool('zstd', ['-q', '-c', '-3'], plain),
  xz: tool('xz', ['-c', '-0', '--check=crc32'], plain),
  lz4: tool('lz4', ['-l', '-c', '-q'], plain),
  bzip2: tool('bzip2', ['-c'], plain),
  lzma: tool('xz', ['--format=lzma', '-c', '-0'], plain),
  lzo: tool('lzop', ['-c'], plain),
};
const FAST: Compression[] = ['gzip', 'zstd', 'xz', 'lz4'];

function flip(b: Buffer, at: number, mask = 0x5a): Buffer {
  const c = Buffer.from(b);
  c[at] = (c[at] as number) ^ mask;
  return c;
}

/** A cut must be rejected unless it yields no recognisable data (then it is just not compressed). */
async function expectRejected(p: Promise<unknown>): Promise<void> {
  await expectKabiError(p, 'COMPRESSION', FILE);
}

describe.each(MODES)('hostile input (%s)', (mode) => {
  const run = <T>(fn: () => Promise<T>): Promise<T> => withNative(mode, fn);

  it.each(FAST)('%s truncated at many points', T, async (format) => {
    const full = samples[format];
    const cuts = [5, 9, 13, 17, 40, 1000, full.length >> 1, full.length - 9, full.length - 4, full.length - 1];
    for (const n of cuts) {
      await run(() => expectRejected(decompress(full.subarray(0, n), format, { file: FILE })));
    }
  });

  it.each(['bzip2', 'lzma', 'lzo'] as const)('%s truncated (CLI reports it)', T, async (format) => {
    const full = samples[format];
    await run(() => expectRejected(decompress(full.subarray(0, full.length >> 1), format, { file: FILE })));
  });

  it.each(['gzip', 'zstd', 'xz'] as const)('%s with a flipped byte in the compressed body', T, async (format) => {
    const full = samples[format];
    for (const at of [Math.floor(full.length * 0.3), Math.floor(full.length * 0.7), full.length - 6]) {
      await run(() => expectRejected(decompress(flip(full, at), format, { file: FILE })));
    }
  });

  it.each(['gzip', 'zstd', 'xz'] as const)('%s with damaged headers', T, async (format) => {
    const full = samples[format];
    // Byte 3..12 are flags / frame descriptor / stream flags + CRC in these formats.
    for (const at of [3, 4, 6, 7, 9, 12]) {
      const bad = flip(full, at, 0xff);
      let err: unknown;
      try {
        await run(() => decompress(bad, format, { file: FILE }));
      } catch (e) {
        err = e;
      }
      // Some header bytes (e.g. gzip MTIME) are not checked by anyone; those decode fine.
      if (err !== undefined) expect(err).toMatchObject({ name: 'KabiError', file: FILE });
    }
  });

  it('zstd raw block with a flipped byte is caught by the content checksum', T, async () => {
    const noise = randomBytes(200_000, 3);
    const z = tool('zstd', ['-q', '-c', '-1'], noise); // incompressible => raw blocks
    const e = await run(() => expectKabiError(decompress(flip(z, z.length >> 1), 'zstd', { file: FILE }), 'COMPRESSION', FILE));
    expect(e.message).toMatch(/checksum|corrupt/i);
  });

  it('lz4: chunk size larger than the data, match offset before the block, chunk over 8 MiB', T, async () => {
    const lz = samples.lz4;
    const longer = Buffer.from(lz);
    longer.writeUInt32LE(lz.readUInt32LE(4) + 100, 4);
    await run(() => expectRejected(decompress(longer, 'lz4', { file: FILE })));

    // token: 1 literal + match; offset 2 > 1 byte of output so far.
    const badOffset = Buffer.concat([u32le(0x184c2102), u32le(5), Buffer.from([0x10, 0x41, 0x02, 0x00, 0x00])]);
    await run(() => expectRejected(decompress(badOffset, 'lz4', { file: FILE })));

    // One literal, then a match of ~9 MiB at offset 1, then a final literal: legal LZ4, but a
    // legacy chunk may not produce more than 8 MiB.
    const ext = Math.ceil((9 << 20) / 255);
    const block = Buffer.concat([Buffer.from([0x1f, 0x41, 0x01, 0x00]), Buffer.alloc(ext, 0xff), Buffer.from([0x00, 0x10, 0x42])]);
    const tooBig = Buffer.concat([u32le(0x184c2102), u32le(block.length), block]);
    await run(() => expectRejected(decompress(tooBig, 'lz4', { file: FILE })));
  });

  it('lz4: the end-of-block rules of LZ4_decompress_safe (kernel, lz4 -d): refused here too, and never counted as a chunk a splice could keep', T, async () => {
    const lz4d = (b: Buffer) => spawnSync('lz4', ['-dc'], { input: b }).status;
    // 'a', a match of 8 at offset 1, then an empty last sequence: the match reaches into the
    // block's last bytes, which must be literals.
    const endsInMatch = Buffer.from([0x14, 0x61, 0x01, 0x00, 0x00]);
    // One literal, a match up to 2 bytes short of the 8 MiB a chunk may give, then 2 literals:
    // the match reaches into the last 5 bytes of the output.
    const matchLen = (8 << 20) - 3;
    const ext = matchLen - 4 - 15;
    const tail = Buffer.concat([Buffer.alloc(Math.floor(ext / 255), 0xff), Buffer.from([ext % 255])]);
    const nearCapacity = Buffer.concat([Buffer.from([0x1f, 0x41, 0x01, 0x00]), tail, Buffer.from([0x20, 0x42, 0x43])]);
    for (const block of [endsInMatch, nearCapacity]) {
      const stream = Buffer.concat([u32le(0x184c2102), u32le(block.length), block]);
      expect(lz4d(stream)).not.toBe(0);
      await run(() => expectRejected(decompress(stream, 'lz4', { file: FILE })));
      expect(() => lz4BlockLength(block, 0, block.length)).toThrow(Lz4BlockError);
    }
    // The same content as valid blocks (the last sequence literals only) is accepted by all.
    const valid = Buffer.from([0x14, 0x61, 0x01, 0x00, 0x50, 0x61, 0x61, 0x61, 0x61, 0x61]);
    const ok = Buffer.concat([u32le(0x184c2102), u32le(valid.length), valid]);
    expect(lz4d(ok)).toBe(0);
    expect(Buffer.from(await run(() => decompress(ok, 'lz4', { file: FILE }))).toString()).toBe('a'.repeat(14));
    expect(lz4BlockLength(valid, 0, valid.length)).toBe(14);
  });

  it.each(FAST)('%s followed by junk', T, async (format) => {
    await run(() => expectRejected(decompress(Buffer.concat([samples[format], Buffer.from('junk data here')]), format, { file: FILE })));
  });

  it('zstd frame declaring a huge content size', T, async () => {
    // Single-segment frame, 8-byte Frame_Content_Size = 2^40, one 5-byte raw block.
    const fcs = Buffer.alloc(8);
    fcs.writeBigUInt64LE(1n << 40n);
    const blockHeader = Buffer.from([(5 << 3) | 1, 0, 0]); // raw, last, size 5
    const frame = Buffer.concat([u32le(0xfd2fb528), Buffer.from([0xe0]), fcs, blockHeader, Buffer.from('hello')]);
    await run(() => expectRejected(decompress(frame, 'zstd', { file: FILE })));
    // Declared size fits the blocks but not the limit: refused before decoding.
    const ok = tool('zstd', ['-q', '-c'], Buffer.alloc(3 << 20));
    const e = await run(() => expectKabiError(decompress(ok, 'zstd', { file: FILE, maxOutputBytes: 1 << 20 }), 'COMPRESSION', FILE));
    expect(e.message).toContain('would exceed');
  });

  it('zstd frame with an absurd window and no content size', T, async () => {
    const frame = Buffer.concat([u32le(0xfd2fb528), Buffer.from([0x00, 0xf8]), Buffer.from([(5 << 3) | 1, 0, 0]), Buffer.from('hello')]);
    await run(() => expectRejected(decompress(frame, 'zstd', { file: FILE })));
  });

  describe('decompression bombs stop at maxOutputBytes', () => {
    const zeros = Buffer.alloc(16 << 20);
    const bombs: Array<[string, Compression, () => Buffer]> = [
      ['gzip', 'gzip', () => tool('gzip', ['-n', '-c', '-1'], zeros)],
      ['zstd with content size', 'zstd', () => tool('zstd', ['-q', '-c', '-1'], zeros)],
      ['zstd without content size', 'zstd', () => tool('sh', ['-c', 'cat | zstd -q -c -1 --no-content-size'], zeros)],
      ['xz', 'xz', () => tool('xz', ['-c', '-0', '--check=crc32', '-T1'], zeros)],
      ['lz4', 'lz4', () => tool('lz4', ['-l', '-1', '-c', '-q'], zeros)],
      ['bzip2 (CLI is killed)', 'bzip2', () => tool('bzip2', ['-c', '-1'], zeros)],
    ];
    it.each(bombs)('%s', T, async (_name, format, make) => {
      const bomb = make();
      expect(bomb.length).toBeLessThan(zeros.length / 100);
      const e = await run(() => expectKabiError(decompress(bomb, format, { file: FILE, maxOutputBytes: 4 << 20 }), 'COMPRESSION', FILE));
      expect(e.message).toContain('would exceed');
      expect(isOutputLimit(e)).toBe(true);
      // The same limit applies to a segment.
      const seg = await run(() => expectKabiError(decompressSegment(bomb, 0, { file: FILE, maxOutputBytes: 4 << 20 }), 'COMPRESSION', FILE));
      expect(seg.message).toContain('would exceed');
    });

    it('corrupt data is not taken for the output limit', T, async () => {
      const e = await run(() => expectKabiError(decompress(flip(samples.zstd, 20), 'zstd', { file: FILE }), 'COMPRESSION', FILE));
      expect(isOutputLimit(e)).toBe(false);
    });

    it('output exactly at the limit is fine', T, async () => {
      const z = tool('zstd', ['-q', '-c'], plain);
      const out = await run(() => decompress(z, 'zstd', { maxOutputBytes: plain.length }));
      expect(out.length).toBe(plain.length);
      await run(() => expectKabiError(decompress(z, 'zstd', { maxOutputBytes: plain.length - 1 }), 'COMPRESSION'));
    });
  });

  it('random bytes after a magic never escape as a non-Kabi error', T, async () => {
    const magics: Record<string, number[]> = {
      gzip: [0x1f, 0x8b, 0x08, 0x00],
      zstd: [0x28, 0xb5, 0x2f, 0xfd],
      xz: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
      lz4: [0x02, 0x21, 0x4c, 0x18],
    };
    for (let seed = 1; seed <= 40; seed++) {
      for (const [format, magic] of Object.entries(magics)) {
        const junk = Buffer.concat([Buffer.from(magic), randomBytes(64 + seed * 37, seed)]);
        // Only COMPRESSION/UNSUPPORTED errors are allowed; a lucky decode is fine too.
        await run(async () => {
          try {
            await maybeDecompress(junk, { file: FILE });
          } catch (e) {
            expect(e, `${format} seed ${seed}`).toMatchObject({ name: 'KabiError', file: FILE });
            expect(['COMPRESSION', 'UNSUPPORTED_COMPRESSION']).toContain((e as { code: string }).code);
          }
        });
      }
    }
  });
});

describe('the time budget of a decompression (timeoutMs)', () => {
  const zeros = Buffer.alloc(64 << 20);
  const streamed = tool('sh', ['-c', 'cat | zstd -q -c -1 --no-content-size'], zeros);
  const bz = tool('bzip2', ['-c', '-1'], zeros);

  it.each(MODES)('an in-process decoder is stopped between blocks (%s)', T, async (mode) => {
    const e = await withNative(mode, () => expectKabiError(decompress(streamed, 'zstd', { file: FILE, timeoutMs: 0.001 }), 'LIMIT', FILE));
    expect(e.detail).toBe('zstd decompression took longer than its 0.000001 s limit');
    expect((await withNative(mode, () => decompress(streamed, 'zstd', { file: FILE }))).length).toBe(zeros.length);
  });

  it('a decoder program is killed', T, async () => {
    const t0 = performance.now();
    const e = await expectKabiError(decompress(bz, 'bzip2', { file: FILE, timeoutMs: 5 }), 'LIMIT', FILE);
    expect(e.detail).toMatch(/bzip2 decompression took longer than its 0.005 s limit/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('a budget that is not a positive number is a usage error', async () => {
    await expectKabiError(decompress(streamed, 'zstd', { timeoutMs: 0 }), 'USAGE');
  });
});
