import { constants as bufferConstants } from 'node:buffer';
import { availableParallelism } from 'node:os';
import * as zlib from 'node:zlib';
import { KabiError } from '../src/errors.js';
import { crc32, crc32Update } from './crc32.js';
import { checkDeadline, corrupt, errorText, isAllZero, OutputSink, readU32LE, tooLarge, type Where } from './common.js';

/*
 * gzip is decoded member by member with raw inflate so we learn exactly where each member's
 * deflate data ends (node's gunzip cannot tell us). The kernel's gunzip (lib/decompress_inflate.c)
 * reports "end of deflate + 8" as the bytes it used; we do the same, and additionally check the
 * CRC32/ISIZE trailer, which the kernel skips but gzip(1) does not.
 */

const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const FRESERVED = 0xe0;

interface InflateInfo {
  buffer: Buffer;
  engine: { bytesWritten: number };
}

/** Offset (absolute in `b`) of the deflate data of the member whose header starts at `at`. */
function parseHeader(b: Uint8Array, at: number, where: Where): number {
  if (at + 10 > b.length) throw corrupt('gzip', 'truncated member header', where, at);
  if (b[at] !== 0x1f || b[at + 1] !== 0x8b) throw corrupt('gzip', 'bad member magic', where, at);
  if (b[at + 2] !== 8) throw corrupt('gzip', `unknown compression method ${String(b[at + 2])}`, where, at + 2);
  const flags = b[at + 3] as number;
  if (flags & FRESERVED) throw corrupt('gzip', `reserved header flags set (0x${flags.toString(16)})`, where, at + 3);
  let p = at + 10;
  if (flags & FEXTRA) {
    if (p + 2 > b.length) throw corrupt('gzip', 'truncated extra field', where, p);
    p += 2 + ((b[p] as number) | ((b[p + 1] as number) << 8));
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (flags & flag) {
      while (p < b.length && b[p] !== 0) p++;
      p++; // the NUL
    }
  }
  if (flags & FHCRC) {
    if (p + 2 <= b.length) {
      const want = (b[p] as number) | ((b[p + 1] as number) << 8);
      if ((crc32(b, at, p) & 0xffff) !== want) throw corrupt('gzip', 'header CRC mismatch', where, p);
    }
    p += 2;
  }
  if (p > b.length) throw corrupt('gzip', 'truncated member header', where, at);
  return p;
}

/** Inflates one member starting at `at`; returns the offset just past its 8-byte trailer. */
function inflateMember(b: Uint8Array, at: number, sink: OutputSink, where: Where): number {
  const dataStart = parseHeader(b, at, where);
  const room = Math.min(sink.remaining, bufferConstants.MAX_LENGTH);
  let res: InflateInfo;
  try {
    res = zlib.inflateRawSync(b.subarray(dataStart), {
      info: true,
      // zlib itself stops once the output passes this, so a bomb never gets allocated.
      maxOutputLength: Math.max(1, room),
    }) as unknown as InflateInfo;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw sink.exceeded();
    throw corrupt('gzip', deflateWhy(e), where, at, e);
  }
  const out = res.buffer;
  const deflateEnd = dataStart + res.engine.bytesWritten;
  if (deflateEnd + 8 > b.length) throw corrupt('gzip', 'truncated member trailer', where, deflateEnd);
  const wantCrc = readU32LE(b, deflateEnd);
  const wantSize = readU32LE(b, deflateEnd + 4);
  if (crc32(out) !== wantCrc) throw corrupt('gzip', 'CRC32 mismatch', where, deflateEnd);
  if (out.length % 0x1_0000_0000 !== wantSize) throw corrupt('gzip', 'uncompressed size mismatch', where, deflateEnd + 4);
  sink.push(out);
  return deflateEnd + 8;
}

function deflateWhy(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'Z_BUF_ERROR') return 'truncated deflate data';
  return errorText(e);
}

/**
 * A whole .gz file: one or more members. Zero padding after the last member is accepted (gzip(1)
 * does); anything else after it is an error, since a module file with junk appended is more
 * likely damaged than deliberate.
 */
export function gunzipAll(bytes: Uint8Array, limit: number, where: Where): Uint8Array {
  const sink = new OutputSink('gzip', limit, where);
  let at = 0;
  do {
    at = inflateMember(bytes, at, sink, where);
  } while (at < bytes.length && bytes[at] === 0x1f && bytes[at + 1] === 0x8b);
  if (at < bytes.length && !isAllZero(bytes, at)) {
    throw corrupt('gzip', `${bytes.length - at} bytes of unexpected data after the last member`, where, at);
  }
  return sink.result();
}

/** One member, like the kernel's gunzip for an initramfs segment. */
export function gunzipSegment(image: Uint8Array, offset: number, limit: number, where: Where): { data: Uint8Array; consumed: number } {
  const sink = new OutputSink('gzip', limit, where, offset);
  const end = inflateMember(image, offset, sink, where);
  return { data: sink.result(), consumed: end - offset };
}

/**
 * Output pieces of a streamed segment, and how much zlib may inflate ahead of the reader: it
 * goes on while the reader is busy instead of waiting for each piece to be taken (a wake-up
 * of each thread per piece, costly on a loaded machine).
 */
const PIECE_BYTES = 1024 * 1024;
const AHEAD_BYTES = 16 * 1024 * 1024;

/**
 * One member like gunzipSegment, its output handed over piece by piece as zlib inflates it on
 * the threadpool (the caller reads the pieces meanwhile) and never held whole. The output
 * limit, the deadline, the CRC32 and size in the trailer are checked as for gunzipSegment;
 * `done` gets the bytes used (through the trailer) once the member has been checked.
 */
export async function* gunzipSegmentPieces(image: Uint8Array, offset: number, limit: number, where: Where, done: (consumed: number) => void): AsyncGenerator<Uint8Array> {
  const dataStart = parseHeader(image, offset, where);
  // The options reach the stream too (node's zlib passes them to its Transform), though typed as zlib's only.
  const inflater = zlib.createInflateRaw({ chunkSize: PIECE_BYTES, readableHighWaterMark: AHEAD_BYTES } as zlib.ZlibOptions);
  let total = 0;
  let crc = 0;
  try {
    inflater.end(image.subarray(dataStart));
    for await (const piece of inflater as AsyncIterable<Buffer>) {
      total += piece.length;
      if (total > limit) throw tooLarge('gzip', limit, where, offset);
      checkDeadline('gzip', where);
      crc = crc32Update(piece, crc);
      yield piece;
    }
  } catch (e) {
    if (e instanceof KabiError) throw e;
    throw corrupt('gzip', deflateWhy(e), where, offset, e);
  } finally {
    inflater.destroy();
  }
  const deflateEnd = dataStart + inflater.bytesWritten;
  if (deflateEnd + 8 > image.length) throw corrupt('gzip', 'truncated member trailer', where, deflateEnd);
  if (crc !== readU32LE(image, deflateEnd)) throw corrupt('gzip', 'CRC32 mismatch', where, deflateEnd);
  if (total % 0x1_0000_0000 !== readU32LE(image, deflateEnd + 4)) throw corrupt('gzip', 'uncompressed size mismatch', where, deflateEnd + 4);
  done(deflateEnd + 8 - offset);
}

/**
 * Same header as `gzip -n`: no file name, MTIME 0, OS=3, XFL per level (node's zlib writes
 * exactly that), which the kernel's gunzip accepts. Large inputs are deflated in pieces side by
 * side on the threadpool, the way pigz does: each piece primed with the 32 KiB before it as
 * its dictionary and ended with a sync flush, the last one with the final block, so the
 * pieces join into one ordinary deflate stream of one member (on an 18.6 MiB initramfs cpio
 * at -6, 0.08 % smaller than one pass, measured).
 */
export async function gzipCompress(data: Uint8Array, level: number | undefined): Promise<Uint8Array> {
  const lvl = level ?? 6;
  if (data.length < PARALLEL_MIN || availableParallelism() < 2) return zlib.gzipSync(data, { level: lvl });
  const starts: number[] = [];
  for (let at = 0; at < data.length; at += PIECE) starts.push(at);
  const pieces = await Promise.all(
    starts.map(
      (at, i) =>
        new Promise<Buffer>((resolve, reject) => {
          const last = i === starts.length - 1;
          const opts: zlib.ZlibOptions = { level: lvl, finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH };
          if (at > 0) opts.dictionary = data.subarray(Math.max(0, at - WINDOW), at);
          zlib.deflateRaw(data.subarray(at, Math.min(data.length, at + PIECE)), opts, (e, out) => (e ? reject(e) : resolve(out)));
        }),
    ),
  );
  const header = Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, lvl === 9 ? 2 : lvl < 2 ? 4 : 0, 3);
  const trailer = new Uint8Array(8);
  const view = new DataView(trailer.buffer);
  view.setUint32(0, crc32(data), true);
  view.setUint32(4, data.length % 0x1_0000_0000, true);
  return Buffer.concat([header, ...pieces, trailer]);
}

const PARALLEL_MIN = 4 << 20;
const PIECE = 1 << 20;
const WINDOW = 32 * 1024;
