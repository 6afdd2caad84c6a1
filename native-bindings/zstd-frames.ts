import { corrupt, readU32LE, type Where } from './common.js';

/*
 * Walks zstd frames by their headers (RFC 8878 §3.1) without decoding: this finds where a frame
 * ends (for initramfs segments), rejects truncation before any decoder sees the data, and
 * bounds the output of a frame before a single byte is allocated for it.
 */

export const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const MAX_BLOCK = 128 * 1024;

export interface ZstdFrame {
  /** Offset of the frame's first byte in the walked buffer. */
  start: number;
  end: number;
  skippable: boolean;
  /** Frame_Content_Size when the header declares it. */
  contentSize: number | undefined;
  /** Most bytes the frame can produce: contentSize if declared, else the sum of block limits. */
  maxOutput: number;
  hasChecksum: boolean;
  dictionaryId: number;
  /** Single_Segment_flag: the window is the whole content (windowSize = contentSize). */
  singleSegment: boolean;
  windowSize: number;
}

/** Parses the frame at `at` (absolute in `b`). Throws COMPRESSION for anything malformed or cut short. */
export function walkZstdFrame(b: Uint8Array, at: number, where: Where): ZstdFrame {
  if (at + 4 > b.length) throw corrupt('zstd', 'truncated frame magic', where, at);
  const magic = readU32LE(b, at);
  if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
    if (at + 8 > b.length) throw corrupt('zstd', 'truncated skippable frame header', where, at);
    const end = at + 8 + readU32LE(b, at + 4);
    if (end > b.length) throw corrupt('zstd', 'truncated skippable frame', where, at);
    return { start: at, end, skippable: true, contentSize: 0, maxOutput: 0, hasChecksum: false, dictionaryId: 0, singleSegment: false, windowSize: 0 };
  }
  if (magic !== ZSTD_MAGIC) throw corrupt('zstd', `bad frame magic 0x${magic.toString(16)}`, where, at);

  let p = at + 4;
  if (p >= b.length) throw corrupt('zstd', 'truncated frame header', where, at);
  const fhd = b[p++] as number;
  const fcsFlag = fhd >>> 6;
  const singleSegment = (fhd & 0x20) !== 0;
  if (fhd & 0x08) throw corrupt('zstd', 'reserved bit set in frame header', where, p - 1);
  const hasChecksum = (fhd & 0x04) !== 0;
  const didSize = [0, 1, 2, 4][fhd & 3] as number;
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
  const headerLen = (singleSegment ? 0 : 1) + didSize + fcsSize;
  if (p + headerLen > b.length) throw corrupt('zstd', 'truncated frame header', where, at);

  let windowSize = 0;
  if (!singleSegment) {
    const wd = b[p++] as number;
    const windowLog = 10 + (wd >>> 3);
    const base = 2 ** windowLog;
    windowSize = base + (base / 8) * (wd & 7);
  }
  let dictionaryId = 0;
  for (let i = 0; i < didSize; i++) dictionaryId += (b[p + i] as number) * 2 ** (8 * i);
  p += didSize;
  let contentSize: number | undefined;
  if (fcsSize > 0) {
    let v = 0;
    for (let i = 0; i < fcsSize; i++) v += (b[p + i] as number) * 2 ** (8 * i);
    if (fcsSize === 2) v += 256;
    // Above 2^53 the value is no longer exact, but any such size is over every limit anyway.
    contentSize = v;
    p += fcsSize;
  }
  if (singleSegment) windowSize = contentSize ?? 0;
  const blockMax = Math.min(MAX_BLOCK, Math.max(windowSize, 1));

  let bound = 0;
  for (;;) {
    if (p + 3 > b.length) throw corrupt('zstd', 'truncated block header', where, p);
    const bh = (b[p] as number) | ((b[p + 1] as number) << 8) | ((b[p + 2] as number) << 16);
    const last = (bh & 1) !== 0;
    const type = (bh >>> 1) & 3;
    const size = bh >>> 3;
    p += 3;
    if (type === 3) throw corrupt('zstd', 'reserved block type', where, p - 3);
    if (size > blockMax) throw corrupt('zstd', `block of ${size} bytes exceeds the ${blockMax}-byte block limit`, where, p - 3);
    const stored = type === 1 ? 1 : size; // RLE blocks store one byte
    if (p + stored > b.length) throw corrupt('zstd', 'truncated block', where, p - 3);
    p += stored;
    bound += type === 2 ? blockMax : size;
    if (last) break;
  }
  if (hasChecksum) {
    if (p + 4 > b.length) throw corrupt('zstd', 'truncated content checksum', where, p);
    p += 4;
  }
  if (contentSize !== undefined && contentSize > bound) {
    throw corrupt('zstd', `frame declares ${contentSize} bytes but its blocks can hold at most ${bound}`, where, at);
  }
  return {
    start: at,
    end: p,
    skippable: false,
    contentSize,
    maxOutput: contentSize ?? bound,
    hasChecksum,
    dictionaryId,
    singleSegment,
    windowSize,
  };
}

/** All frames of a whole .zst file. Nothing but frames may follow (zstd(1) rejects trailing junk too). */
export function walkZstdFrames(b: Uint8Array, where: Where): ZstdFrame[] {
  const frames: ZstdFrame[] = [];
  let at = 0;
  while (at < b.length) {
    const f = walkZstdFrame(b, at, where);
    frames.push(f);
    at = f.end;
  }
  if (frames.length === 0) throw corrupt('zstd', 'no frames', where, 0);
  return frames;
}
