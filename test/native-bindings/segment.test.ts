import { describe, expect, it } from 'vitest';
import { decompressSegment, detectCompression, type Compression } from '../../native-bindings/index.js';
import { expectKabiError, expectSame, MODES, realisticPayload, tool, u32le, withNative } from './helpers.js';

/*
 * An initramfs is walked like init/initramfs.c does: decode the segment at the cursor, advance
 * by `consumed`, skip NULs, repeat. Each test builds an image from real-tool segments whose
 * lengths are known, so `consumed` is checked against the truth.
 */

interface Piece {
  format: Compression;
  bytes: Buffer;
  plain: Buffer;
}

function pad4(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4 + 4);
}

/** Lays pieces out with NUL padding between them; returns the image and each piece's offset. */
function image(pieces: Piece[], padding = true): { img: Buffer; offsets: number[] } {
  const parts: Buffer[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const p of pieces) {
    offsets.push(at);
    parts.push(p.bytes);
    at += p.bytes.length;
    if (padding) {
      const pad = pad4(at);
      parts.push(pad);
      at += pad.length;
    }
  }
  return { img: Buffer.concat(parts), offsets };
}

/** The caller's loop: returns what each step saw. */
async function walk(img: Uint8Array): Promise<Array<{ offset: number; format: Compression; consumed: number; data: Uint8Array }>> {
  const seen = [];
  let at = 0;
  while (at < img.length) {
    if (img[at] === 0) {
      at++;
      continue;
    }
    const r = await decompressSegment(img, at, { file: 'initrd.img' });
    seen.push({ offset: at, ...r });
    expect(r.consumed).toBeGreaterThan(0);
    at += r.consumed;
  }
  return seen;
}

const a = realisticPayload(400_000, 11);
const b = realisticPayload(250_000, 12);
const c = realisticPayload(120_000, 13);

const gz = (d: Buffer, lvl = '-6'): Piece => ({ format: 'gzip', bytes: tool('gzip', ['-n', '-c', lvl], d), plain: d });
const zst = (d: Buffer, lvl = '-3'): Piece => ({ format: 'zstd', bytes: tool('zstd', ['-q', '-c', lvl], d), plain: d });
const xz = (d: Buffer, args = ['--check=crc32', '--lzma2=dict=1MiB']): Piece => ({ format: 'xz', bytes: tool('xz', ['-c', ...args], d), plain: d });
const lz4 = (d: Buffer): Piece => ({ format: 'lz4', bytes: tool('lz4', ['-l', '-9', '-c', '-q'], d), plain: d });

describe.each(MODES)('decompressSegment (%s)', (mode) => {
  it('walks [gzip][pad][zstd][pad][xz][pad][lz4] with exact consumed lengths', async () => {
    const pieces = [gz(a), zst(b), xz(c), lz4(a)];
    const { img, offsets } = image(pieces, true);
    const seen = await withNative(mode, () => walk(img));
    expect(seen.map((s) => s.format)).toEqual(['gzip', 'zstd', 'xz', 'lz4']);
    pieces.forEach((p, i) => {
      const s = seen[i]!;
      expect(s.offset).toBe(offsets[i]);
      expect(s.consumed).toBe(p.bytes.length);
      expectSame(s.data, p.plain);
    });
  });

  it('splits back-to-back segments of one format without padding, as the kernel does', async () => {
    // gzip members, zstd frames and xz streams each end a segment on their own.
    for (const make of [gz, zst, (d: Buffer) => xz(d)]) {
      const p1 = make(b);
      const p2 = make(c);
      const { img } = image([p1, p2], false);
      const seen = await withNative(mode, () => walk(img));
      expect(seen.map((s) => s.consumed)).toEqual([p1.bytes.length, p2.bytes.length]);
      expectSame(seen[1]!.data, c);
    }
  });

  it('xz segment stops at the stream footer, leaving stream padding to the caller', async () => {
    const p = xz(b, ['-0']); // CRC64, as plain `xz` writes
    const img = Buffer.concat([p.bytes, Buffer.alloc(12), gz(c).bytes]);
    const r = await withNative(mode, () => decompressSegment(img, 0));
    expect(r.consumed).toBe(p.bytes.length);
    const next = img.indexOf(0x1f, r.consumed);
    expect(next).toBe(p.bytes.length + 12);
    expectSame((await decompressSegment(img, next)).data, c);
  });

  it('multi-block xz (xz -T2) segment', async () => {
    const p = xz(a, ['-0', '-T2', '--block-size=100KiB', '--check=crc32']);
    const { img } = image([p, gz(c)]);
    const seen = await withNative(mode, () => walk(img));
    expect(seen[0]!.consumed).toBe(p.bytes.length);
    expectSame(seen[0]!.data, a);
  });

  it('zstd segment at a non-zero offset after an uncompressed prefix', async () => {
    const prefix = Buffer.alloc(15_872, 0x30); // stands in for dracut's early cpio
    const p = zst(a, '-19');
    const img = Buffer.concat([prefix, p.bytes, Buffer.alloc(100)]);
    expect(detectCompression(img, prefix.length)).toBe('zstd');
    const r = await withNative(mode, () => decompressSegment(img, prefix.length));
    expect(r.consumed).toBe(p.bytes.length);
    expectSame(r.data, a);
  });

  it('a big lz4 segment with a short chunk in the middle decodes as lz4(1) decodes it, and a corrupt chunk names the file', async () => {
    // [8 MiB][1 MiB] chunks, a repeated magic, then [2 MiB]: a short chunk in the middle, as a spliced image has.
    const one = realisticPayload(9 << 20, 21);
    const two = realisticPayload(2 << 20, 22);
    const bytes = Buffer.concat([lz4(one).bytes, lz4(two).bytes]);
    const { img } = image([{ format: 'lz4', bytes, plain: Buffer.concat([one, two]) }, gz(c)]);
    const seen = await withNative(mode, () => walk(img));
    expect(seen.map((x) => x.format)).toEqual(['lz4', 'gzip']);
    expect(seen[0]!.consumed).toBe(bytes.length);
    expectSame(seen[0]!.data, tool('lz4', ['-dc'], bytes));
    const bad = Buffer.from(img);
    // The first chunk's block starts with a match 65535 bytes before its output's start.
    bad.set([0x01, 0xff, 0xff], 8);
    await expectKabiError(decompressSegment(bad, 0, { file: 'initrd.img' }), 'COMPRESSION', 'initrd.img');
  });

  it('lz4 runs to the end of the image', async () => {
    const p = lz4(b);
    const img = Buffer.concat([gz(c).bytes, p.bytes]);
    const r = await withNative(mode, () => decompressSegment(img, img.length - p.bytes.length));
    expect(r.consumed).toBe(p.bytes.length);
    expectSame(r.data, b);
  });

  it('lz4 stops at zero padding (kernel >= 5.14), so a later segment is still reached', async () => {
    const p = lz4(b);
    const q = gz(c);
    const img = Buffer.concat([p.bytes, Buffer.alloc(4 + ((4 - (p.bytes.length % 4)) % 4)), q.bytes]);
    const seen = await withNative(mode, () => walk(img));
    expect(seen.map((s) => [s.format, s.consumed])).toEqual([
      ['lz4', p.bytes.length],
      ['gzip', q.bytes.length],
    ]);
  });

  it('two lz4 streams back to back are one segment (the repeated magic is skipped)', async () => {
    const p1 = lz4(b);
    const p2 = lz4(c);
    const img = Buffer.concat([p1.bytes, p2.bytes, Buffer.alloc(16)]);
    const r = await withNative(mode, () => decompressSegment(img, 0));
    expect(r.consumed).toBe(p1.bytes.length + p2.bytes.length);
    expectSame(r.data, Buffer.concat([b, c]));
  });

  it.each([
    ['bzip2', ['bzip2', '-c']],
    ['lzma', ['xz', '--format=lzma', '-c', '-0']],
    ['lzo', ['lzop', '-c']],
  ] as const)('%s segment is the rest of the image, zero padding included', async (format, [cmd, ...args]) => {
    const p = tool(cmd, [...args], b);
    const lead = gz(c);
    const img = Buffer.concat([lead.bytes, Buffer.alloc(4), p, Buffer.alloc(512)]);
    const seen = await withNative(mode, () => walk(img));
    expect(seen.map((s) => s.format)).toEqual(['gzip', format]);
    expect(seen[1]!.consumed).toBe(p.length + 512);
    expectSame(seen[1]!.data, b);
  });
});

describe('decompressSegment errors', () => {
  it('no magic at the offset', async () => {
    const img = Buffer.concat([Buffer.alloc(8), Buffer.from('070701')]);
    await expect(decompressSegment(img, 8, { file: 'initrd.img' })).rejects.toMatchObject({
      code: 'UNSUPPORTED_COMPRESSION',
      file: 'initrd.img',
      offset: 8,
    });
  });

  it('reports corruption at the absolute offset of the segment', async () => {
    const p = zst(b);
    const img = Buffer.concat([Buffer.alloc(64), p.bytes.subarray(0, 40)]);
    await expect(decompressSegment(img, 64, { file: 'initrd.img' })).rejects.toMatchObject({ code: 'COMPRESSION', file: 'initrd.img' });
    const err = await decompressSegment(img, 64).catch((e: unknown) => e);
    expect((err as { offset: number }).offset).toBeGreaterThanOrEqual(64);
  });

  it('rejects an offset outside the image', async () => {
    await expect(decompressSegment(Buffer.alloc(10), 11)).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('lz4 legacy chunk marker of 0x184C2102 in the middle is skipped, not decoded', async () => {
    const p = lz4(c);
    const img = Buffer.concat([p.bytes, u32le(0x184c2102), u32le(0x184c2102)]);
    const r = await decompressSegment(img, 0);
    expect(r.consumed).toBe(img.length);
    expectSame(r.data, c);
  });
});
