import { crc32 } from '../../native-bindings/crc32.js';
import type { ByteSource } from './byte-source.js';

/*
 * Random access into a multi-block .xz payload. Threaded xz (which dpkg-deb uses for every
 * .deb Debian builds) cuts the stream into independent blocks of about 24 MB and lists them
 * in the stream index: from the index alone we know where each block's compressed bytes are
 * and which range of the output it holds. A file inside the payload can then be read back by
 * decoding only the blocks it spans, each wrapped as a one-block stream of its own (which
 * keeps the block's integrity check).
 *
 * Anything unexpected in the index makes the payload non-seekable (undefined), never an
 * error: the sequential pass that reads the whole payload checks it properly anyway.
 */

export interface XzBlock {
  /** Offset of the block (header onwards) in the package file. */
  readonly offset: number;
  /** Header + compressed data + check, without the padding to 4. */
  readonly unpadded: number;
  readonly uncompressed: number;
  /** Offset of the block's first byte in the decompressed payload. */
  readonly outOffset: number;
  /** The stream flags (second byte: the check type) of the stream the block is in. */
  readonly flags: Uint8Array;
}

const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const FOOTER_MAGIC = [0x59, 0x5a];
/** An index this large belongs to a hostile file, not to a package (4,000 blocks would be 100 GB). */
const MAX_INDEX = 1 << 20;
/**
 * A block is decoded into memory whole when a file in it is read: blocks larger than this
 * (threaded xz makes 3 × the dictionary, 24 MiB at -6, 192 MiB at -9e) are read by a pass instead.
 */
const MAX_BLOCK = 256 * 1024 * 1024;

function u32le(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function vli(b: Uint8Array, at: { p: number }): number | undefined {
  let v = 0;
  for (let i = 0; i < 9; i++) {
    const x = b[at.p++];
    if (x === undefined) return undefined;
    v += (x & 0x7f) * 2 ** (7 * i);
    if ((x & 0x80) === 0) return Number.isSafeInteger(v) ? v : undefined;
  }
  return undefined;
}

/** The blocks of the .xz data at [start, start+length) of the file, or undefined when it is not worth seeking. */
export async function readXzBlocks(src: ByteSource, start: number, length: number): Promise<XzBlock[] | undefined> {
  const streams: XzBlock[][] = [];
  let end = start + length;
  while (end > start) {
    // Stream padding: zero bytes in multiples of four.
    const tail = await src.read(end - 4, 4, 'xz stream padding');
    if (u32le(tail, 0) === 0) {
      end -= 4;
      continue;
    }
    if (end - start < 24) return undefined;
    const footer = await src.read(end - 12, 12, 'xz stream footer');
    if (footer[10] !== FOOTER_MAGIC[0] || footer[11] !== FOOTER_MAGIC[1]) return undefined;
    if (crc32(footer, 4, 10) !== u32le(footer, 0)) return undefined;
    const indexSize = (u32le(footer, 4) + 1) * 4;
    if (indexSize > MAX_INDEX || end - 12 - indexSize < start + 12) return undefined;
    const indexAt = end - 12 - indexSize;
    const index = await src.read(indexAt, indexSize, 'xz index');
    if (index[0] !== 0 || crc32(index, 0, indexSize - 4) !== u32le(index, indexSize - 4)) return undefined;
    const at = { p: 1 };
    const count = vli(index, at);
    if (count === undefined || count > indexSize) return undefined;
    const records: { unpadded: number; uncompressed: number }[] = [];
    for (let i = 0; i < count; i++) {
      const unpadded = vli(index, at);
      const uncompressed = vli(index, at);
      if (unpadded === undefined || uncompressed === undefined || unpadded < 5 || uncompressed > MAX_BLOCK) return undefined;
      records.push({ unpadded, uncompressed });
    }
    const blocksBytes = records.reduce((n, r) => n + roundUp4(r.unpadded), 0);
    const streamStart = indexAt - blocksBytes - 12;
    if (streamStart < start) return undefined;
    const header = await src.read(streamStart, 12, 'xz stream header');
    if (!MAGIC.every((m, i) => header[i] === m)) return undefined;
    if (header[6] !== footer[8] || header[7] !== footer[9]) return undefined;
    const flags = header.slice(6, 8);
    let off = streamStart + 12;
    const blocks: XzBlock[] = [];
    for (const r of records) {
      blocks.push({ offset: off, unpadded: r.unpadded, uncompressed: r.uncompressed, outOffset: 0, flags });
      off += roundUp4(r.unpadded);
    }
    streams.unshift(blocks);
    end = streamStart;
  }
  const all = streams.flat();
  // One block means one pass reads everything anyway: seeking gains nothing.
  if (all.length < 2) return undefined;
  let out = 0;
  return all.map((b) => {
    const r = { ...b, outOffset: out };
    out += b.uncompressed;
    return r;
  });
}

function roundUp4(n: number): number {
  return (n + 3) & ~3;
}

function encodeVli(v: number): number[] {
  const out: number[] = [];
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return out;
}

/** One block as a complete .xz stream of its own: header, the block as stored, an index of one record, footer. */
export async function standaloneBlock(src: ByteSource, b: XzBlock): Promise<Uint8Array> {
  const body = await src.read(b.offset, roundUp4(b.unpadded), 'xz block');
  const header = new Uint8Array(12);
  header.set(MAGIC);
  header.set(b.flags, 6);
  const hc = crc32(header, 6, 8);
  header.set([hc & 0xff, (hc >>> 8) & 0xff, (hc >>> 16) & 0xff, hc >>> 24], 8);
  const rec = [0x00, ...encodeVli(1), ...encodeVli(b.unpadded), ...encodeVli(b.uncompressed)];
  while (rec.length % 4 !== 0) rec.push(0);
  const index = new Uint8Array(rec.length + 4);
  index.set(rec);
  const ic = crc32(index, 0, rec.length);
  index.set([ic & 0xff, (ic >>> 8) & 0xff, (ic >>> 16) & 0xff, ic >>> 24], rec.length);
  const footer = new Uint8Array(12);
  const backward = index.length / 4 - 1;
  footer.set([backward & 0xff, (backward >>> 8) & 0xff, (backward >>> 16) & 0xff, backward >>> 24], 4);
  footer.set(b.flags, 8);
  footer.set(FOOTER_MAGIC, 10);
  const fc = crc32(footer, 4, 10);
  footer.set([fc & 0xff, (fc >>> 8) & 0xff, (fc >>> 16) & 0xff, fc >>> 24], 0);
  return Buffer.concat([header, body, index, footer]);
}
