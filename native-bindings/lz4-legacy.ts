import { findTool, runTool } from './cli.js';
import { checkDeadline, corrupt, isAllZero, readU32LE, tooLarge, u32le, type Where } from './common.js';
import { decodeLz4Block, lz4BlockLength, Lz4BlockError } from './lz4-block.js';
import { lz4Napi, type Lz4Napi } from './native.js';

/*
 * The lz4 "legacy" format, the only lz4 the kernel reads (lib/decompress_unlz4.c): the magic
 * 0x184C2102, then chunks of [LE u32 compressed size][one LZ4 block of at most 8 MiB output].
 * There is no end marker and no checksum. The kernel skips a repeated magic (so concatenated
 * streams are one stream) and, since 5.14, stops at a zero size or when fewer than 4 bytes
 * are left, so that the zero padding GRUB puts between initrds works.
 */

export const LEGACY_MAGIC = 0x184c2102;
const CHUNK_OUT_MAX = 8 << 20;
/** LZ4_COMPRESSBOUND(8 MiB): no valid chunk is bigger. */
const CHUNK_IN_MAX = CHUNK_OUT_MAX + Math.floor(CHUNK_OUT_MAX / 255) + 16;

export interface Chunk {
  /** The block's first byte (its size word is the 4 bytes before). */
  start: number;
  size: number;
}

export interface LegacyWalk {
  chunks: Chunk[];
  /** Just past the last byte that belongs to the stream. */
  end: number;
}

export function walkLegacy(b: Uint8Array, at: number, where: Where): LegacyWalk {
  if (at + 4 > b.length || readU32LE(b, at) !== LEGACY_MAGIC) throw corrupt('lz4', 'missing legacy lz4 magic', where, at);
  let p = at + 4;
  const chunks: Chunk[] = [];
  while (b.length - p >= 4) {
    const size = readU32LE(b, p);
    if (size === LEGACY_MAGIC) {
      p += 4;
      continue;
    }
    // Zero padding, or something that cannot be a chunk (the next thing in an initramfs).
    if (size === 0 || size > CHUNK_IN_MAX) break;
    if (size > b.length - p - 4) throw corrupt('lz4', `chunk of ${size} bytes is cut short`, where, p);
    chunks.push({ start: p + 4, size });
    p += 4 + size;
  }
  return { chunks, end: p };
}

/*
 * lz4-napi can decode single legacy streams, but measured on initramfs-like data this decoder
 * is about twice as fast (~400 vs ~200 MB/s; lz4-napi wins only on extremely repetitive text),
 * and it lets every chunk be checked the same way. So lz4-napi is used for compression only.
 */
function decodeChunks(b: Uint8Array, walk: LegacyWalk, limit: number, where: Where): Uint8Array {
  // Sized exactly from the sequence headers first: a guessed buffer grown by doubling, then
  // cut to size, touched two or three times the output's worth of new memory, which costs
  // more than decoding on a machine where first-touched pages are slow.
  const lengths: number[] = [];
  let total = 0;
  for (const c of walk.chunks) {
    const n = chunkError(where, () => lz4BlockLength(b, c.start, c.start + c.size, CHUNK_OUT_MAX));
    if (total + n > limit) throw tooLarge('lz4', limit, where, c.start - 4);
    lengths.push(n);
    total += n;
  }
  checkDeadline('lz4', where);
  const out = new Uint8Array(total);
  let op = 0;
  walk.chunks.forEach((c, i) => {
    const end = op + lengths[i]!;
    op = chunkError(where, () => decodeLz4Block(b, c.start, c.start + c.size, out, op, end, CHUNK_OUT_MAX));
    checkDeadline('lz4', where);
  });
  return out;
}

/** A chunk's decoding error as the format error it is. */
function chunkError<T>(where: Where, run: () => T): T {
  try {
    return run();
  } catch (e) {
    if (!(e instanceof Lz4BlockError)) throw e;
    throw corrupt('lz4', e.overflow ? 'chunk decodes to more than 8 MiB' : e.message, where, e.at);
  }
}

/** A whole legacy .lz4 file; only zero padding may follow the last chunk. */
export function lz4DecompressAll(bytes: Uint8Array, limit: number, where: Where): Uint8Array {
  const walk = walkLegacy(bytes, 0, where);
  if (!isAllZero(bytes, walk.end)) {
    throw corrupt('lz4', `${bytes.length - walk.end} bytes of unexpected data after the last chunk`, where, walk.end);
  }
  return decodeChunks(bytes, walk, limit, where);
}

/**
 * An lz4 initramfs segment runs to the end of the image or to the first thing that cannot be
 * a chunk (zero padding, a size over the 8 MiB bound, fewer than 4 bytes), as in the kernel.
 */
export function lz4Segment(image: Uint8Array, offset: number, limit: number, where: Where): { data: Uint8Array; consumed: number } {
  const walk = walkLegacy(image, offset, where);
  return { data: decodeChunks(image, walk, limit, where), consumed: walk.end - offset };
}

/**
 * `lz4 -l -9` is what dracut and initramfs-tools run. Without the program, lz4-napi's blocks are
 * wrapped in legacy framing (one block per 8 MiB): valid for the kernel, about 25% larger.
 */
export async function lz4Compress(data: Uint8Array, level: number | undefined, where: Where): Promise<Uint8Array> {
  const napi = findTool('lz4') ? undefined : lz4Napi();
  if (napi) return legacyFromNapi(napi, data);
  // Also the path when neither exists: the spawn failure becomes UNSUPPORTED_COMPRESSION.
  return runTool('lz4', ['-l', `-${level ?? 9}`, '-c', '-q'], data, { format: 'lz4', mode: 'compress', where });
}

function legacyFromNapi(napi: Lz4Napi, data: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [u32le(LEGACY_MAGIC)];
  for (let at = 0; at < data.length; at += CHUNK_OUT_MAX) {
    const block = napiBlock(napi, data.subarray(at, Math.min(data.length, at + CHUNK_OUT_MAX)));
    parts.push(u32le(block.length), block);
  }
  return Buffer.concat(parts);
}

/**
 * One raw LZ4 block of `data` (at most a chunk's 8 MiB) from lz4-napi, at its only level (it
 * has no setting for one). compressSync puts the decoded size before the block; legacy
 * framing wants the block alone.
 */
export function napiBlock(napi: Lz4Napi, data: Uint8Array): Uint8Array {
  return napi.compressSync(Buffer.from(data.buffer, data.byteOffset, data.length)).subarray(4);
}

export function lz4Implementations(): { decompress: string; compress: string } {
  const cli = findTool('lz4');
  const napi = cli ? undefined : lz4Napi();
  return {
    decompress: 'built-in legacy decoder (pure TS)',
    compress: cli ? `lz4 CLI -l (${cli})` : napi ? 'lz4-napi blocks in legacy framing' : 'unavailable (no lz4 program, lz4-napi not loaded)',
  };
}
