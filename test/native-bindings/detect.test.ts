import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32ForTest } from '../../native-bindings/crc32.js';
import { detectCompression, type Compression } from '../../native-bindings/index.js';
import { xxh64, xxh64Low32 } from '../../native-bindings/xxhash64.js';
import { randomBytes, realisticPayload, tool } from './helpers.js';

const sample = realisticPayload(50_000, 2);

describe('detectCompression', () => {
  const made: Array<[Compression, string, string[]]> = [
    ['gzip', 'gzip', ['-n', '-c']],
    ['xz', 'xz', ['-c', '-0']],
    ['zstd', 'zstd', ['-q', '-c']],
    ['lz4', 'lz4', ['-l', '-c', '-q']],
    ['bzip2', 'bzip2', ['-c']],
    ['lzma', 'lzma', ['-c', '-1']],
    ['lzo', 'lzop', ['-c']],
  ];

  it.each(made)('recognises %s output of %s', (format, cmd, args) => {
    const out = tool(cmd, args, sample);
    expect(detectCompression(out)).toBe(format);
    // ... at an offset too, as an initramfs walker asks.
    const shifted = Buffer.concat([Buffer.alloc(512), out]);
    expect(detectCompression(shifted, 512)).toBe(format);
    expect(detectCompression(shifted, 511)).toBeUndefined();
  });

  it('lzma of a stream (unknown size) is recognised', () => {
    expect(detectCompression(tool('sh', ['-c', 'cat | lzma -c -9'], sample))).toBe('lzma');
  });

  it('does not recognise uncompressed things kabi reads', () => {
    expect(detectCompression(Buffer.from('\x7fELF\x02\x01\x01\x00'))).toBeUndefined();
    expect(detectCompression(Buffer.from('070701000000000000'))).toBeUndefined();
    expect(detectCompression(Buffer.from('0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n'))).toBeUndefined();
    expect(detectCompression(Buffer.alloc(64))).toBeUndefined();
    expect(detectCompression(Buffer.alloc(0))).toBeUndefined();
  });

  it('needs the whole magic, not the kernel\'s two-byte prefix', () => {
    expect(detectCompression(Buffer.from([0x1f, 0x8b]))).toBeUndefined(); // no method byte
    expect(detectCompression(Buffer.from([0x1f, 0x8b, 0x07, 0]))).toBeUndefined(); // not deflate
    expect(detectCompression(Buffer.from([0x02, 0x21, 0x4c, 0x19]))).toBeUndefined();
    expect(detectCompression(Buffer.from('BZh0'))).toBeUndefined();
    expect(detectCompression(Buffer.from([0x5d, 0x00, 0x00, 0x00]))).toBeUndefined(); // lzma header cut short
    // lz4 frame format (not legacy): the kernel cannot read it, so neither "is" it lz4 here.
    expect(detectCompression(Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7]))).toBeUndefined();
  });

  it('rarely matches random data', () => {
    let hits = 0;
    const r = randomBytes(200_000, 77);
    for (let i = 0; i < r.length; i++) if (detectCompression(r, i) !== undefined) hits++;
    expect(hits).toBeLessThan(3);
  });

  it('ignores offsets outside the buffer', () => {
    const gz = tool('gzip', ['-n', '-c'], sample);
    expect(detectCompression(gz, gz.length)).toBeUndefined();
    expect(detectCompression(gz, -1)).toBeUndefined();
    expect(detectCompression(gz, 0.5)).toBeUndefined();
  });
});

describe('checksums', () => {
  it('xxh64 matches the reference vectors', () => {
    expect(xxh64(new Uint8Array(0))).toEqual([0xef46db37, 0x51d8e999]);
    expect(xxh64(Buffer.from('abc'))).toEqual([0x44bc2cf5, 0xad770999]);
  });

  it('xxh64 low 32 bits match what zstd stores, for every tail length', () => {
    for (const n of [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 100, 1000, 65_537]) {
      const data = randomBytes(n, n + 1);
      const z = tool('zstd', ['-q', '-c', '--check'], data);
      expect(xxh64Low32(data), `length ${n}`).toBe(z.readUInt32LE(z.length - 4));
    }
  });

  it('crc32 (native and table) matches gzip trailers', () => {
    for (const n of [0, 1, 1000, 100_000]) {
      const data = randomBytes(n, n + 9);
      const gz = tool('gzip', ['-n', '-c'], data);
      const want = gz.readUInt32LE(gz.length - 8);
      expect(crc32(data)).toBe(want);
      expect(crc32ForTest(data)).toBe(want);
      if (typeof (zlib as { crc32?: unknown }).crc32 === 'function') expect(crc32(data, 0, n)).toBe(want);
    }
  });
});
