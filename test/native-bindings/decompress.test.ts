import { beforeAll, describe, expect, it } from 'vitest';
import { decompress, maybeDecompress, type Compression } from '../../native-bindings/index.js';
import { expectSame, MODES, realisticPayload, tool, u32le, withNative } from './helpers.js';

// Real-tool output is the oracle: every case is made by the program distributions use.
const payload = realisticPayload(1_500_000);
const second = realisticPayload(300_000, 7);

interface Case {
  name: string;
  format: Compression;
  make: () => Buffer;
  expected: () => Buffer;
}

const cases: Case[] = [
  { name: 'gzip -n', format: 'gzip', make: () => tool('gzip', ['-n', '-c'], payload), expected: () => payload },
  {
    name: 'gzip with name, comment-free header (no -n)',
    format: 'gzip',
    make: () => tool('gzip', ['-c', '-9'], payload),
    expected: () => payload,
  },
  {
    name: 'gzip, two members',
    format: 'gzip',
    make: () => Buffer.concat([tool('gzip', ['-n', '-c'], payload), tool('gzip', ['-n', '-c', '-1'], second)]),
    expected: () => Buffer.concat([payload, second]),
  },
  {
    name: 'xz --check=crc32 --lzma2=dict=1MiB (kbuild)',
    format: 'xz',
    make: () => tool('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c'], payload),
    expected: () => payload,
  },
  { name: 'xz default (CRC64)', format: 'xz', make: () => tool('xz', ['-c', '-1'], payload), expected: () => payload },
  {
    name: 'xz -T2 multi-block (sizes in block headers)',
    format: 'xz',
    make: () => tool('xz', ['-c', '-0', '-T2', '--block-size=300KiB', '--check=crc32'], payload),
    expected: () => payload,
  },
  { name: 'xz --check=none', format: 'xz', make: () => tool('xz', ['-c', '-0', '--check=none'], second), expected: () => second },
  { name: 'xz --check=sha256 (xz CLI path)', format: 'xz', make: () => tool('xz', ['-c', '-0', '--check=sha256'], second), expected: () => second },
  { name: 'xz with x86 BCJ filter', format: 'xz', make: () => tool('xz', ['-c', '--x86', '--lzma2=preset=0'], second), expected: () => second },
  {
    name: 'xz, two streams with stream padding',
    format: 'xz',
    make: () => Buffer.concat([tool('xz', ['-c', '-0'], payload), Buffer.alloc(8), tool('xz', ['-c', '-0', '--check=crc32'], second)]),
    expected: () => Buffer.concat([payload, second]),
  },
  { name: 'zstd -19', format: 'zstd', make: () => tool('zstd', ['-19', '-q', '-c'], payload), expected: () => payload },
  { name: 'zstd --no-check', format: 'zstd', make: () => tool('zstd', ['-3', '-q', '-c', '--no-check'], payload), expected: () => payload },
  {
    name: 'zstd without content size (streamed input)',
    format: 'zstd',
    make: () => tool('sh', ['-c', 'cat | zstd -q -c -3 --no-content-size'], payload),
    expected: () => payload,
  },
  {
    name: 'zstd, two frames (cat of two files)',
    format: 'zstd',
    make: () => Buffer.concat([tool('zstd', ['-q', '-c', '-3'], payload), tool('zstd', ['-q', '-c', '-19'], second)]),
    expected: () => Buffer.concat([payload, second]),
  },
  {
    name: 'zstd with a skippable frame between frames',
    format: 'zstd',
    make: () =>
      Buffer.concat([
        tool('zstd', ['-q', '-c'], second),
        u32le(0x184d2a53),
        u32le(5),
        Buffer.from('hello'),
        tool('zstd', ['-q', '-c'], second),
      ]),
    expected: () => Buffer.concat([second, second]),
  },
  { name: 'lz4 -l -9', format: 'lz4', make: () => tool('lz4', ['-l', '-9', '-c', '-q'], payload), expected: () => payload },
  {
    name: 'lz4 -l, two concatenated legacy streams (kernel accepts)',
    format: 'lz4',
    make: () => Buffer.concat([tool('lz4', ['-l', '-c', '-q'], payload), tool('lz4', ['-l', '-9', '-c', '-q'], second)]),
    expected: () => Buffer.concat([payload, second]),
  },
  { name: 'lz4 -l, empty input', format: 'lz4', make: () => tool('lz4', ['-l', '-c', '-q'], Buffer.alloc(0)), expected: () => Buffer.alloc(0) },
  { name: 'bzip2', format: 'bzip2', make: () => tool('bzip2', ['-c'], second), expected: () => second },
  { name: 'lzma', format: 'lzma', make: () => tool('lzma', ['-c', '-1'], second), expected: () => second },
  { name: 'lzop', format: 'lzo', make: () => tool('lzop', ['-c'], second), expected: () => second },
];

const compressed = new Map<string, Buffer>();
beforeAll(() => {
  for (const c of cases) compressed.set(c.name, c.make());
});

describe.each(MODES)('decompress (%s)', (mode) => {
  it.each(cases)('$name', async (c) => {
    const input = compressed.get(c.name) as Buffer;
    await withNative(mode, async () => {
      expectSame(await decompress(input, c.format, { file: 'x' }), c.expected());
      if (mode === 'native') {
        const m = await maybeDecompress(input);
        expect(m.format).toBe(c.format);
        expectSame(m.data, c.expected());
      }
    });
  });

  it('lz4 -l over 8 MiB (several chunks)', async () => {
    const big = Buffer.concat([realisticPayload(6_000_000, 3), Buffer.alloc(3_000_000, 0x41)]);
    const lz = tool('lz4', ['-l', '-1', '-c', '-q'], big);
    // The second chunk's size field follows the first chunk.
    expect(lz.readUInt32LE(4) + 8).toBeLessThan(lz.length);
    await withNative(mode, async () => expectSame(await decompress(lz, 'lz4'), big));
  });
});

describe('maybeDecompress', () => {
  it('returns unknown data unchanged', async () => {
    const elf = Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01'), Buffer.alloc(100)]);
    const r = await maybeDecompress(elf);
    expect(r.format).toBeUndefined();
    expect(r.data).toBe(elf);
  });

  it('refuses to decode data as a format it does not have', async () => {
    const gz = tool('gzip', ['-n', '-c'], second);
    await expect(decompress(gz, 'zstd', { file: 'a.ko.zst' })).rejects.toMatchObject({ code: 'COMPRESSION' });
  });
});
