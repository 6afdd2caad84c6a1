import { KabiError } from '../src/errors.js';
import { cliCompress, cliDecompress, cliImplementations, isCliFormat } from './cli-codecs.js';
import { ALL_FORMATS, resolveLimit, resolveTimeout, type Compression, type CompressOptions, type DecompressOptions, type Where } from './common.js';
import { detectCompression } from './detect.js';
import { gunzipAll, gunzipSegment, gunzipSegmentPieces, gzipCompress } from './gzip.js';
import { lz4Compress, lz4DecompressAll, lz4Implementations, lz4Segment } from './lz4-legacy.js';
import { xzCompress, xzDecompressAll, xzImplementations, xzSegment } from './xz.js';
import { xzBatchAvailable, xzDecodeConcatenated } from './xz-batch.js';
import { walkXzFile } from './xz-stream.js';
import { zstdCompress, zstdDecompressAll, zstdImplementations, zstdSegment } from './zstd.js';

/*
 * The compression codecs kabi needs for modules (.ko.gz/.ko.xz/.ko.zst), Module.symvers and
 * initramfs images. Formats are always recognised by magic, never by file name, and every
 * decoder bounds its output (maxOutputBytes) before allocating it.
 */

export type { Compression, CompressOptions, DecompressOptions } from './common.js';
export { detectCompression } from './detect.js';
export { isOutputLimit } from './common.js';
export { xzBatchClock } from './xz-batch.js';

const LEVELS: Record<Compression, readonly [number, number]> = {
  gzip: [0, 9],
  xz: [0, 9],
  zstd: [1, 19], // above 19 the window passes 8 MiB, too big for older kernels' unzstd
  lz4: [1, 12],
  bzip2: [1, 9],
  lzma: [0, 9],
  lzo: [1, 9],
};

function whereOf(opts: DecompressOptions | CompressOptions | undefined): Where {
  const timeoutMs = resolveTimeout(opts && 'timeoutMs' in opts ? opts : undefined);
  return { file: opts?.file, base: 0, timeoutMs, deadline: performance.now() + timeoutMs };
}

/** Whole input = one compressed file. Unknown magic => the input unchanged, format undefined. */
export async function maybeDecompress(
  bytes: Uint8Array,
  opts?: DecompressOptions,
): Promise<{ data: Uint8Array; format: Compression | undefined }> {
  const format = detectCompression(bytes);
  if (format === undefined) return { data: bytes, format: undefined };
  return { data: await decompress(bytes, format, opts), format };
}

export async function decompress(bytes: Uint8Array, format: Compression, opts?: DecompressOptions): Promise<Uint8Array> {
  const limit = resolveLimit(opts);
  const where = whereOf(opts);
  const found = detectCompression(bytes);
  if (found !== format) {
    throw new KabiError('COMPRESSION', `${format} data is corrupt: ${found ? `the data is ${found}, not ${format}` : `no ${format} magic at the start`}`, {
      file: where.file,
    });
  }
  switch (format) {
    case 'gzip':
      return gunzipAll(bytes, limit, where);
    case 'zstd':
      return zstdDecompressAll(bytes, limit, where);
    case 'xz':
      return xzDecompressAll(bytes, limit, where);
    case 'lz4':
      return lz4DecompressAll(bytes, limit, where);
    case 'bzip2':
    case 'lzma':
    case 'lzo':
      return cliDecompress(format, bytes, limit, where);
  }
}

/** Decoded bytes one xz process may produce (all held until it exits 0, then handed out). */
const XZ_BATCH_BYTES = 64 << 20;
/** Below this much output a process (a few ms to start) costs more than its faster decoding saves. */
const XZ_BATCH_MIN = 256 << 10;

export type DecompressResult = { data: Uint8Array; format: Compression | undefined } | { error: unknown };

/**
 * maybeDecompress() for several whole files: `each(i, result)` once per input, as soon as its
 * result is known (not in input order). Valid .xz files are decoded many per xz process where
 * xz(1) is installed (xz-batch.ts); anything else, and every file of a batch that could not be
 * decoded whole, one by one through maybeDecompress(): the same bytes, limit, time budget and
 * errors as a call per file. Besides the inputs, at most one batch's output is held at once.
 */
export async function maybeDecompressEach(
  inputs: readonly { bytes: Uint8Array; file?: string | undefined }[],
  opts: Omit<DecompressOptions, 'file'> & {
    /** The data given to `each` is used up before it returns: a batch's memory may serve the next. */
    borrowed?: boolean;
  },
  each: (index: number, result: DecompressResult) => void,
): Promise<void> {
  if (inputs.length === 0) return;
  const limit = resolveLimit(opts);
  const where = whereOf(opts);
  const one = async (i: number) => {
    const { bytes, file } = inputs[i]!;
    let result: DecompressResult;
    try {
      result = await maybeDecompress(bytes, { maxOutputBytes: limit, timeoutMs: where.timeoutMs, ...(file !== undefined ? { file } : {}) });
    } catch (error) {
      result = { error };
    }
    each(i, result);
  };
  // Asked only once an xz file is met: the check looks on PATH, and a tree of plain .ko
  // files read in batches would pay for it per batch.
  let batching: boolean | undefined;
  let group: { i: number; size: number }[] = [];
  let groupBytes = 0;
  const flush = async () => {
    const g = group;
    const bytes = groupBytes;
    group = [];
    groupBytes = 0;
    if (g.length > 1 && bytes >= XZ_BATCH_MIN) {
      try {
        const data = await xzDecodeConcatenated(
          g.map((x) => inputs[x.i]!.bytes),
          g.map((x) => x.size),
          { ...where, deadline: performance.now() + (where.timeoutMs ?? 0) },
          opts.borrowed === true,
        );
        g.forEach((x, k) => each(x.i, { data: data[k]!, format: 'xz' }));
        return;
      } catch {
        // Decoded file by file below: whichever file is at fault gets its own error.
      }
    }
    for (const x of g) await one(x.i);
  };
  for (let i = 0; i < inputs.length; i++) {
    const bytes = inputs[i]!.bytes;
    let size: number | undefined;
    if (detectCompression(bytes) === 'xz' && (batching ??= xzBatchAvailable())) {
      try {
        size = walkXzFile(bytes, where).reduce((n, s) => n + s.uncompressedSize, 0);
      } catch {
        // Not a well-formed .xz file: its own decoding says why.
      }
    }
    if (size === undefined || size > limit || size > XZ_BATCH_BYTES) {
      await one(i);
      continue;
    }
    if (groupBytes + size > XZ_BATCH_BYTES) await flush();
    group.push({ i, size });
    groupBytes += size;
  }
  await flush();
}

/**
 * Decompresses the one compressed segment at `offset` of an initramfs image and reports how
 * many input bytes it used, as the kernel's decompressors report to init/initramfs.c:
 * gzip = one member (through its 8-byte trailer), zstd = one frame, xz = one stream (through
 * its footer), lz4 = up to the end of the image or the first thing that cannot be a chunk,
 * bzip2/lzma/lzo = the rest of the image. Zero padding after a segment is not consumed.
 * Error offsets are absolute in `image`.
 */
export async function decompressSegment(
  image: Uint8Array,
  offset: number,
  opts?: DecompressOptions,
): Promise<{ data: Uint8Array; format: Compression; consumed: number }> {
  const limit = resolveLimit(opts);
  const where = whereOf(opts);
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > image.length) {
    throw new KabiError('USAGE', `segment offset ${String(offset)} is outside the ${image.length}-byte image`, { file: where.file });
  }
  const format = detectCompression(image, offset);
  if (format === undefined) {
    throw new KabiError('UNSUPPORTED_COMPRESSION', 'no known compression magic at the start of this segment', { file: where.file, offset });
  }
  let r: { data: Uint8Array; consumed: number };
  switch (format) {
    case 'gzip':
      r = gunzipSegment(image, offset, limit, where);
      break;
    case 'zstd':
      r = await zstdSegment(image, offset, limit, where);
      break;
    case 'xz':
      r = await xzSegment(image, offset, limit, where);
      break;
    case 'lz4':
      r = lz4Segment(image, offset, limit, where);
      break;
    case 'bzip2':
    case 'lzma':
    case 'lzo': {
      const rest = image.subarray(offset);
      r = { data: await cliDecompress(format, rest, limit, { ...where, base: offset }, true), consumed: rest.length };
      break;
    }
  }
  return { data: r.data, format, consumed: r.consumed };
}

/** A segment's output as it is decompressed, and the input bytes it used once the last piece is read. */
export interface SegmentPieces {
  readonly format: Compression;
  readonly pieces: AsyncIterable<Uint8Array>;
  /** Input bytes the segment used; known once `pieces` has been read to the end. */
  consumed(): number;
}

/**
 * decompressSegment with the output handed over in pieces, never held whole: gzip streams
 * (inflated on the threadpool while the caller reads the pieces); the other formats are
 * decompressed whole and handed over as one piece.
 */
export function decompressSegmentPieces(image: Uint8Array, offset: number, opts?: DecompressOptions): SegmentPieces {
  const format = detectCompression(image, offset);
  if (format === undefined) {
    throw new KabiError('UNSUPPORTED_COMPRESSION', 'no known compression magic at the start of this segment', { file: opts?.file, offset });
  }
  let consumed: number | undefined;
  const done = (n: number) => {
    consumed = n;
  };
  const pieces =
    format === 'gzip'
      ? gunzipSegmentPieces(image, offset, resolveLimit(opts), whereOf(opts), done)
      : (async function* () {
          const r = await decompressSegment(image, offset, opts);
          done(r.consumed);
          yield r.data;
        })();
  return {
    format,
    pieces,
    consumed: () => {
      if (consumed === undefined) throw new KabiError('USAGE', 'the segment has not been read to its end');
      return consumed;
    },
  };
}

/**
 * Output the kernel's decompressors accept: gzip like `gzip -n`, xz with a CRC32 check and a
 * 1 MiB dictionary, lz4 in the legacy format, zstd with at most an 8 MiB window. Without a
 * level each tool's own default is used (lz4: -9, as dracut and initramfs-tools do).
 */
export async function compress(data: Uint8Array, format: Compression, opts?: CompressOptions): Promise<Uint8Array> {
  const where = whereOf(opts);
  const level = opts?.level;
  checkLevel(format, level, opts);
  switch (format) {
    case 'gzip':
      return gzipCompress(data, level);
    case 'zstd':
      return zstdCompress(data, level, where);
    case 'xz':
      return xzCompress(data, level, where);
    case 'lz4':
      return lz4Compress(data, level, where);
    case 'bzip2':
    case 'lzma':
    case 'lzo':
      return cliCompress(format, data, level, where);
  }
}

/** A level `format` has, or none; anything else is a usage error. */
export function checkLevel(format: Compression, level: number | undefined, opts?: { file?: string | undefined }): void {
  if (level === undefined) return;
  const [lo, hi] = LEVELS[format];
  if (!Number.isInteger(level) || level < lo || level > hi) {
    throw new KabiError('USAGE', `${format} compression level must be an integer from ${lo} to ${hi}, got ${String(level)}`, { file: opts?.file });
  }
}

/** Which implementation each format uses right now (native packages are loaded to find out). */
export async function codecReport(): Promise<Record<Compression, { decompress: string; compress: string }>> {
  const report = {} as Record<Compression, { decompress: string; compress: string }>;
  for (const f of ALL_FORMATS) {
    if (f === 'gzip') report[f] = { decompress: 'node:zlib', compress: 'node:zlib' };
    else if (f === 'zstd') report[f] = zstdImplementations();
    else if (f === 'xz') report[f] = xzImplementations();
    else if (f === 'lz4') report[f] = lz4Implementations();
    else if (isCliFormat(f)) report[f] = cliImplementations(f);
  }
  return Promise.resolve(report);
}
