import { availableParallelism } from 'node:os';
import { KabiError } from '../src/errors.js';
import { findTool, runTool } from './cli.js';
import { checkDeadline, concat, corrupt, errorText, OutputSink, readU32LE, type Where } from './common.js';
import { nativeStatus, zstdNapi, type ZstdBinding } from './native.js';
import { xxh64Low32 } from './xxhash64.js';
import { walkZstdFrame, walkZstdFrames, type ZstdFrame } from './zstd-frames.js';

/*
 * zstd: zstd-napi (libzstd) when its binary loads, otherwise fzstd (pure JS) for decoding and
 * the zstd CLI for encoding. Every input is walked frame by frame first (zstd-frames.ts), so
 * both decoders only ever see whole, bounded frames.
 */

/** libzstd's default windowLogMax for streaming (27); zstd(1) refuses more without --long. */
const MAX_WINDOW = 2 ** 27;
const STREAM_CHUNK = 1 << 20;

type Fzstd = typeof import('fzstd');
let fzstdModule: Promise<Fzstd> | undefined;
function loadFzstd(): Promise<Fzstd> {
  return (fzstdModule ??= import('fzstd'));
}

export async function zstdDecompressAll(bytes: Uint8Array, limit: number, where: Where): Promise<Uint8Array> {
  const frames = walkZstdFrames(bytes, where);
  return decodeFrames(bytes, frames, limit, where);
}

/**
 * One initramfs segment = one zstd frame. The kernel's unzstd (lib/decompress_unzstd.c, the
 * flush() path init/initramfs.c uses) stops as soon as ZSTD_decompressStream reports the frame
 * complete and returns the input it used; a following frame, even a skippable one, is the next
 * segment for the caller's loop (which then rejects a skippable magic as it would).
 */
export async function zstdSegment(
  image: Uint8Array,
  offset: number,
  limit: number,
  where: Where,
): Promise<{ data: Uint8Array; consumed: number }> {
  const frame = walkZstdFrame(image, offset, where);
  const data = await decodeFrames(image, [frame], limit, where);
  return { data, consumed: frame.end - offset };
}

async function decodeFrames(b: Uint8Array, frames: readonly ZstdFrame[], limit: number, where: Where): Promise<Uint8Array> {
  const sink = new OutputSink('zstd', limit, where, frames[0]?.start);
  const native = zstdNapi();
  for (const f of frames) {
    if (f.skippable) continue;
    if (f.dictionaryId !== 0) {
      throw new KabiError('UNSUPPORTED_COMPRESSION', `zstd frame needs dictionary ${f.dictionaryId}, which kabi does not have`, {
        file: where.file,
        offset: where.base + f.start,
      });
    }
    // A declared size is a promise we can check before allocating anything.
    if (f.contentSize !== undefined) sink.reserve(f.contentSize);
    const src = b.subarray(f.start, f.end);
    if (native) decodeNative(native, src, f, sink, where);
    else decodeJs(await loadFzstd(), src, f, sink, where);
  }
  return sink.result();
}

function decodeNative(z: ZstdBinding, src: Uint8Array, f: ZstdFrame, sink: OutputSink, where: Where): void {
  const dctx = new z.DCtx();
  if (f.contentSize !== undefined) {
    const out = Buffer.allocUnsafe(f.contentSize);
    let n: number;
    try {
      n = dctx.decompress(out, src);
    } catch (e) {
      throw corrupt('zstd', errorText(e), where, f.start, e);
    }
    if (n !== f.contentSize) throw corrupt('zstd', `frame produced ${n} bytes, header says ${f.contentSize}`, where, f.start);
    sink.push(out);
    return;
  }
  // Unknown size: stream in fixed chunks so the limit is enforced as output appears.
  let pos = 0;
  for (;;) {
    const out = Buffer.allocUnsafe(Math.min(STREAM_CHUNK, Math.max(1, f.maxOutput)));
    let ret: number, produced: number, consumed: number;
    try {
      [ret, produced, consumed] = dctx.decompressStream(out, src.subarray(pos));
    } catch (e) {
      throw corrupt('zstd', errorText(e), where, f.start, e);
    }
    pos += consumed;
    if (produced > 0) sink.push(produced === out.length ? out : out.subarray(0, produced));
    checkDeadline('zstd', where);
    if (ret === 0) break;
    if (produced === 0 && consumed === 0) throw corrupt('zstd', 'frame ends early', where, f.start);
  }
}

function decodeJs(fz: Fzstd, src: Uint8Array, f: ZstdFrame, sink: OutputSink, where: Where): void {
  // fzstd allocates the whole window up front; a single-segment window is the declared
  // content size, which the caller has already checked against the limit.
  if (!f.singleSegment && f.windowSize > MAX_WINDOW) {
    throw corrupt('zstd', `window of ${f.windowSize} bytes is larger than the ${MAX_WINDOW} zstd accepts by default`, where, f.start);
  }
  // fzstd's one-shot decoder returns a buffer of the declared size even when the blocks
  // produce less, so the streaming decoder is used: it hands over each block, which lets us
  // count exactly and stop a bomb after one block.
  const parts: Uint8Array[] = [];
  let produced = 0;
  const dec = new fz.Decompress((chunk) => {
    if (produced + chunk.length > sink.remaining) throw sink.exceeded();
    checkDeadline('zstd', where);
    produced += chunk.length;
    if (chunk.length > 0) parts.push(chunk);
  });
  try {
    dec.push(src, true);
  } catch (e) {
    if (e instanceof KabiError) throw e;
    throw corrupt('zstd', fzstdWhy(e), where, f.start, e);
  }
  const data = concat(parts, produced);
  if (f.contentSize !== undefined && data.length !== f.contentSize) {
    throw corrupt('zstd', `frame produced ${data.length} bytes, header says ${f.contentSize}`, where, f.start);
  }
  if (f.hasChecksum) {
    if (xxh64Low32(data) !== readU32LE(src, src.length - 4)) throw corrupt('zstd', 'content checksum mismatch', where, f.end - 4);
  }
  sink.push(data);
}

function fzstdWhy(e: unknown): string {
  const names = ['invalid data', 'window size too large', 'invalid block type', 'FSE accuracy too high', 'match distance too far back', 'unexpected end of data'];
  const code = (e as { code?: unknown }).code;
  return typeof code === 'number' && names[code] !== undefined ? names[code] : errorText(e);
}

/*
 * Levels stop at 19: above it zstd switches to windows larger than 8 MiB, which older kernels'
 * unzstd refuse. The content checksum is on, as zstd(1) has it by default.
 */
export async function zstdCompress(data: Uint8Array, level: number | undefined, where: Where): Promise<Uint8Array> {
  const lvl = Math.min(19, Math.max(1, level ?? 3));
  const z = zstdNapi();
  if (z) {
    const cctx = new z.CCtx();
    cctx.setParameter(z.CParameter.compressionLevel, lvl);
    cctx.setParameter(z.CParameter.checksumFlag, 1);
    // Multi-threading only pays off on large inputs; the output is still one frame.
    if (data.length >= 4 << 20) cctx.setParameter(z.CParameter.nbWorkers, Math.min(4, availableParallelism()));
    const out = Buffer.allocUnsafe(z.compressBound(data.length));
    const n = cctx.compress2(out, data);
    return out.subarray(0, n);
  }
  return runTool('zstd', ['-q', '-c', `-${lvl}`, '-T0', '--no-progress'], data, { format: 'zstd', mode: 'compress', where });
}

export function zstdImplementations(): { decompress: string; compress: string } {
  const z = zstdNapi();
  if (z) {
    const v = `zstd-napi (libzstd ${z.versionString()})`;
    return { decompress: v, compress: v };
  }
  const cli = findTool('zstd');
  const why = `zstd-napi ${nativeStatus('zstd-napi') ?? 'not loaded'}`;
  return { decompress: `fzstd (pure JS; ${why})`, compress: cli ? `zstd CLI (${cli}; ${why})` : `unavailable (${why}, no zstd program)` };
}
