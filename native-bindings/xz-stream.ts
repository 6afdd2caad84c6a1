import { KabiError } from '../src/errors.js';
import { corrupt, readU32LE, type Where } from './common.js';
import { crc32 } from './crc32.js';

/*
 * Walks the .xz container (stream header, block headers, LZMA2 chunk headers, index, footer)
 * without running LZMA. That gives the exact end of a stream (an initramfs segment), the exact
 * uncompressed size (checked against the limit before decoding) and a precise message for
 * truncation, which the WASM decoder only reports as "error code 8".
 *
 * Block ends are found from the LZMA2 chunk headers, which carry packed sizes, because
 * single-threaded xz leaves the compressed size out of the block header.
 */

export const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] as const;

const CHECK_SIZES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];
export const CHECK_NAMES: Record<number, string> = { 0: 'none', 1: 'CRC32', 4: 'CRC64', 10: 'SHA-256' };

const FILTER_LZMA2 = 0x21;

export interface XzStream {
  start: number;
  /** Just past the stream footer; stream padding is not included. */
  end: number;
  checkType: number;
  uncompressedSize: number;
  blocks: number;
  /** Each block's bytes (header through check) in `b`, and what it decodes to. */
  blockList: XzBlock[];
}

export interface XzBlock {
  /** Offset of the block header. */
  start: number;
  /** Just past the block's check. */
  end: number;
  /** The index record's two sizes. */
  unpadded: number;
  uncompressed: number;
}

interface Cursor {
  b: Uint8Array;
  p: number;
  where: Where;
}

/** xz's variable-length integer: 7 bits per byte, at most 9 bytes, no redundant trailing zero byte. */
function readVli(c: Cursor, what: string): number {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (c.p >= c.b.length) throw corrupt('xz', `truncated ${what}`, c.where, c.p);
    const byte = c.b[c.p++] as number;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) throw corrupt('xz', `badly encoded ${what}`, c.where, c.p - 1);
      return value;
    }
  }
  throw corrupt('xz', `${what} is too long`, c.where, c.p);
}

function need(c: Cursor, n: number, what: string): void {
  if (c.p + n > c.b.length) throw corrupt('xz', `truncated ${what}`, c.where, c.p);
}

function checkCrc(c: Cursor, from: number, to: number, what: string): void {
  need(c, to + 4 - c.p, what);
  if (crc32(c.b, from, to) !== readU32LE(c.b, to)) throw corrupt('xz', `${what} CRC32 mismatch`, c.where, from);
}

/** Walks LZMA2 chunk headers from c.p to the end marker; returns the unpacked size. */
function walkLzma2(c: Cursor): number {
  let unpacked = 0;
  for (;;) {
    need(c, 1, 'LZMA2 data');
    const ctl = c.b[c.p] as number;
    if (ctl === 0x00) {
      c.p++;
      return unpacked;
    }
    if (ctl === 0x01 || ctl === 0x02) {
      need(c, 3, 'LZMA2 chunk header');
      const size = (((c.b[c.p + 1] as number) << 8) | (c.b[c.p + 2] as number)) + 1;
      c.p += 3;
      need(c, size, 'LZMA2 chunk');
      c.p += size;
      unpacked += size;
    } else if (ctl >= 0x80) {
      need(c, 5, 'LZMA2 chunk header');
      const u = (((ctl & 0x1f) << 16) | ((c.b[c.p + 1] as number) << 8) | (c.b[c.p + 2] as number)) + 1;
      const packed = (((c.b[c.p + 3] as number) << 8) | (c.b[c.p + 4] as number)) + 1;
      // Reset modes 2 and 3 carry a new properties byte.
      const hasProps = ((ctl >>> 5) & 3) >= 2;
      c.p += 5 + (hasProps ? 1 : 0);
      need(c, packed, 'LZMA2 chunk');
      c.p += packed;
      unpacked += u;
    } else {
      throw corrupt('xz', `invalid LZMA2 control byte 0x${ctl.toString(16)}`, c.where, c.p);
    }
  }
}

/** Walks the one stream starting at `at` (absolute in `b`). */
export function walkXzStream(b: Uint8Array, at: number, where: Where): XzStream {
  const c: Cursor = { b, p: at, where };
  need(c, 12, 'stream header');
  for (let i = 0; i < XZ_MAGIC.length; i++) {
    if (b[at + i] !== XZ_MAGIC[i]) throw corrupt('xz', 'bad stream magic', where, at);
  }
  if (b[at + 6] !== 0 || ((b[at + 7] as number) & 0xf0) !== 0) {
    throw new KabiError('UNSUPPORTED_COMPRESSION', 'xz stream uses unknown stream flags', { file: where.file, offset: where.base + at + 6 });
  }
  c.p = at + 8;
  checkCrc(c, at + 6, at + 8, 'stream header');
  const checkType = (b[at + 7] as number) & 0x0f;
  const checkSize = CHECK_SIZES[checkType] as number;
  c.p = at + 12;

  const records: XzBlock[] = [];
  let total = 0;
  for (;;) {
    need(c, 1, 'block header');
    const blockStart = c.p;
    const sizeByte = b[blockStart] as number;
    if (sizeByte === 0) break; // index indicator
    const headerSize = (sizeByte + 1) * 4;
    need(c, headerSize, 'block header');
    const headerEnd = blockStart + headerSize - 4;
    if (crc32(b, blockStart, headerEnd) !== readU32LE(b, headerEnd)) throw corrupt('xz', 'block header CRC32 mismatch', where, blockStart);
    const flags = b[blockStart + 1] as number;
    if (flags & 0x3c) throw corrupt('xz', 'reserved block flags set', where, blockStart + 1);
    c.p = blockStart + 2;
    const declaredPacked = flags & 0x40 ? readVli(c, 'block compressed size') : undefined;
    const declaredUnpacked = flags & 0x80 ? readVli(c, 'block uncompressed size') : undefined;
    let lastFilter = -1;
    for (let i = 0; i <= (flags & 3); i++) {
      lastFilter = readVli(c, 'filter ID');
      const propsSize = readVli(c, 'filter properties size');
      c.p += propsSize;
    }
    if (c.p > headerEnd) throw corrupt('xz', 'block header overflows its size', where, blockStart);
    for (let i = c.p; i < headerEnd; i++) if (b[i] !== 0) throw corrupt('xz', 'non-zero block header padding', where, i);

    const dataStart = blockStart + headerSize;
    c.p = dataStart;
    let unpacked: number;
    if (lastFilter === FILTER_LZMA2) {
      // BCJ and delta filters in front of LZMA2 keep the size, so LZMA2's count is the block's.
      unpacked = walkLzma2(c);
      if (declaredPacked !== undefined && c.p - dataStart !== declaredPacked) {
        throw corrupt('xz', 'block compressed size does not match its header', where, blockStart);
      }
      if (declaredUnpacked !== undefined && unpacked !== declaredUnpacked) {
        throw corrupt('xz', 'block uncompressed size does not match its header', where, blockStart);
      }
    } else if (declaredPacked !== undefined && declaredUnpacked !== undefined) {
      need(c, declaredPacked, 'block data');
      c.p += declaredPacked;
      unpacked = declaredUnpacked;
    } else {
      throw new KabiError('UNSUPPORTED_COMPRESSION', `xz block uses filter 0x${lastFilter.toString(16)} without sizes in its header`, {
        file: where.file,
        offset: where.base + blockStart,
      });
    }
    const packedSize = c.p - dataStart;
    while ((c.p - blockStart) % 4 !== 0) {
      need(c, 1, 'block padding');
      if (b[c.p] !== 0) throw corrupt('xz', 'non-zero block padding', where, c.p);
      c.p++;
    }
    need(c, checkSize, 'block check');
    c.p += checkSize;
    records.push({ start: blockStart, end: c.p, unpadded: headerSize + packedSize + checkSize, uncompressed: unpacked });
    total += unpacked;
  }

  const indexStart = c.p;
  c.p++;
  const count = readVli(c, 'index record count');
  if (count !== records.length) throw corrupt('xz', `index lists ${count} blocks, the stream has ${records.length}`, where, indexStart);
  for (const r of records) {
    const unpadded = readVli(c, 'index record');
    const uncompressed = readVli(c, 'index record');
    if (unpadded !== r.unpadded || uncompressed !== r.uncompressed) throw corrupt('xz', 'index does not match the blocks', where, indexStart);
  }
  while ((c.p - indexStart) % 4 !== 0) {
    need(c, 1, 'index padding');
    if (b[c.p] !== 0) throw corrupt('xz', 'non-zero index padding', where, c.p);
    c.p++;
  }
  checkCrc(c, indexStart, c.p, 'index');
  const indexSize = c.p + 4 - indexStart;
  c.p += 4;

  const footer = c.p;
  need(c, 12, 'stream footer');
  if (b[footer + 10] !== 0x59 || b[footer + 11] !== 0x5a) throw corrupt('xz', 'bad stream footer magic', where, footer);
  if (crc32(b, footer + 4, footer + 10) !== readU32LE(b, footer)) throw corrupt('xz', 'stream footer CRC32 mismatch', where, footer);
  if ((readU32LE(b, footer + 4) + 1) * 4 !== indexSize) throw corrupt('xz', 'stream footer backward size does not match the index', where, footer);
  if (b[footer + 8] !== b[at + 6] || b[footer + 9] !== b[at + 7]) throw corrupt('xz', 'stream footer flags differ from the header', where, footer);

  return { start: at, end: footer + 12, checkType, uncompressedSize: total, blocks: records.length, blockList: records };
}

/** Every stream of a whole .xz file, with the 4-byte-multiple zero padding xz allows between and after them. */
export function walkXzFile(b: Uint8Array, where: Where): XzStream[] {
  const streams: XzStream[] = [];
  let p = 0;
  for (;;) {
    const s = walkXzStream(b, p, where);
    streams.push(s);
    p = s.end;
    const padStart = p;
    while (p < b.length && b[p] === 0) p++;
    if ((p - padStart) % 4 !== 0) throw corrupt('xz', 'stream padding is not a multiple of 4 bytes', where, padStart);
    if (p === b.length) return streams;
    if (b[p] !== XZ_MAGIC[0]) throw corrupt('xz', `${b.length - p} bytes of unexpected data after the last stream`, where, p);
  }
}
