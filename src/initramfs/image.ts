import { decompressSegment, decompressSegmentPieces, detectCompression, type Compression } from '../../native-bindings/index.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { readRegularFile } from '../fs.js';
import { readCpioArchive, readCpioStream, type CpioEntry, type CpioStream, type StreamOrigin } from './cpio.js';
import { listCpioStream, type KeepBody } from './cpio-listing.js';
import { Budget, resolveLimits, type ImageLimits } from './limits.js';

/*
 * An initramfs image as init/initramfs.c reads it: from the start, an uncompressed newc
 * archive wherever a '0' sits at a 4-byte-aligned offset (dracut's early microcode cpio), NUL
 * padding skipped, and anything else a compressed segment recognised by its magic,
 * decompressed and walked as a stream of archives, the walk going on after the bytes the
 * decompressor used.
 */

export interface ImageSegment {
  readonly index: number;
  /** Offset of the segment in the image. */
  readonly offset: number;
  /** Just after the segment: an archive's trailer and the NULs after it, or the compressed bytes the decompressor used. */
  readonly end: number;
  /** undefined for an uncompressed archive. */
  readonly compression: Compression | undefined;
  readonly stream: CpioStream;
  /** Bytes of cpio data (decompressed size for a compressed segment). */
  readonly decodedSize: number;
  /**
   * A compressed segment's decompressed bytes, when it was read whole (the members' bodies
   * point into them anyway): a rewrite compares against them to keep the xz blocks and lz4
   * chunks whose content did not change.
   */
  readonly decoded?: Uint8Array;
}

export interface InitramfsImage {
  readonly file: string | undefined;
  readonly bytes: Uint8Array;
  readonly segments: readonly ImageSegment[];
  /** Some members were listed without their bodies (ReadImageOptions.keep): the image cannot be rewritten from this. */
  readonly partial?: boolean;
}

/** Milliseconds spent reading images, added up by phase. */
export interface ImageTimings {
  read: number;
  /** Waiting for decompressed data (what the decompressor costs beyond the listing it runs beside). */
  decompress: number;
  /** Walking the cpio members. */
  list: number;
}

export interface ReadImageOptions {
  file?: string | undefined;
  limits?: Partial<ImageLimits> | undefined;
  /**
   * List the image for a decision: compressed segments are listed as they are decompressed
   * and only the bodies `keep` asks for are held, never the whole decompressed image.
   */
  keep?: KeepBody | undefined;
  timings?: ImageTimings | undefined;
  /**
   * Compressed segments whose content is already known, by offset: where the image holds
   * exactly `compressed` there, the segment is `data` and is not decoded again (a rewrite's
   * check of what it wrote, for the blocks it decoded back itself or copied unchanged).
   */
  known?: ReadonlyMap<number, { readonly compressed: Uint8Array; readonly data: Uint8Array }> | undefined;
}

export function segmentLabel(s: Pick<ImageSegment, 'index' | 'offset' | 'compression'>): string {
  return `segment ${s.index} (${s.compression ?? 'uncompressed'} at 0x${s.offset.toString(16)})`;
}

/** Parse a whole image held in memory. Never modifies `bytes`; the result refers into it. */
export async function parseImage(bytes: Uint8Array, opts: ReadImageOptions = {}): Promise<InitramfsImage> {
  const file = opts.file;
  const budget = new Budget(resolveLimits(opts.limits), file);
  const segments: ImageSegment[] = [];
  let partial = false;
  let at = 0;
  while (at < bytes.length) {
    const b = bytes[at];
    if (b === 0) {
      at++;
      continue;
    }
    if (b === 0x30 && (at & 3) === 0) {
      budget.addSegment(at);
      const { archive, end } = readCpioArchive(bytes, at, { file, budget });
      let next = end;
      while (next < bytes.length && bytes[next] === 0) next++;
      const stream: CpioStream = { leadingZeros: 0, archives: [{ ...archive, padding: next - end }] };
      segments.push({ index: segments.length, offset: at, end: next, compression: undefined, stream, decodedSize: next - at });
      at = next;
      continue;
    }
    const format = detectCompression(bytes, at);
    if (format === undefined) {
      const why = b === 0x30 ? 'a cpio archive that does not start on a 4-byte boundary' : 'neither a cpio archive nor a known compression magic';
      throw new KabiError('INITRAMFS_FORMAT', `${why} (byte 0x${b!.toString(16).padStart(2, '0')})`, { file, offset: at });
    }
    budget.addSegment(at);
    const index = segments.length;
    const label = segmentLabel({ index, offset: at, compression: format });
    const limit = budget.segmentLimit(bytes.length - at);
    const origin: StreamOrigin = { file, segmentOffset: at, segmentLabel: label, budget };
    const listed = opts.keep === undefined ? undefined : await listSegment(bytes, at, limit.bytes, opts.keep, origin, opts.timings);
    const seg = listed ?? knownSegment(bytes, at, opts.known) ?? (await readSegment(bytes, at, limit, origin, opts.timings));
    segments.push({ index, offset: at, end: at + seg.consumed, compression: format, stream: seg.stream, decodedSize: seg.decodedSize, ...(seg.decoded ? { decoded: seg.decoded } : {}) });
    partial ||= seg.stream.archives.some((a) => a.entries.some((e) => e.skippedBytes !== undefined));
    at += seg.consumed;
  }
  if (segments.length === 0) throw new KabiError('INITRAMFS_FORMAT', bytes.length === 0 ? 'the image is empty' : 'the image holds only NUL bytes', { file });
  return { file, bytes, segments, ...(partial ? { partial } : {}) };
}

interface ReadSegment {
  readonly stream: CpioStream;
  readonly consumed: number;
  readonly decodedSize: number;
  readonly decoded?: Uint8Array;
}

function knownSegment(bytes: Uint8Array, at: number, known: ReadImageOptions['known']): ReadSegment | undefined {
  const k = known?.get(at);
  if (k === undefined || at + k.compressed.length > bytes.length) return undefined;
  if (Buffer.compare(bytes.subarray(at, at + k.compressed.length), k.compressed) !== 0) return undefined;
  return { stream: readCpioStream(k.data), consumed: k.compressed.length, decodedSize: k.data.length, decoded: k.data };
}

/** A compressed segment decompressed whole, then walked. */
async function readSegment(bytes: Uint8Array, at: number, limit: { bytes: number; bound: string }, origin: StreamOrigin, timings: ImageTimings | undefined): Promise<ReadSegment> {
  const { file, budget } = origin;
  const label = origin.segmentLabel!;
  let seg: { data: Uint8Array; consumed: number };
  const t0 = performance.now();
  try {
    seg = await decompressSegment(bytes, at, { file, maxOutputBytes: limit.bytes });
  } catch (e) {
    if (e instanceof KabiError && e.code === 'COMPRESSION' && e.detail.includes('exceed')) {
      throw new KabiError('LIMIT', `${label}: decompressed contents exceed the ${limit.bound} (a cpio bomb?)`, {
        file,
        offset: at,
        cause: e,
      });
    }
    throw e;
  }
  const t1 = performance.now();
  if (seg.consumed <= 0) throw new KabiError('INITRAMFS_FORMAT', `${label}: the decompressor consumed no input`, { file, offset: at });
  budget!.addBytes(seg.data.length, at);
  const stream = readCpioStream(seg.data, origin);
  if (stream.archives.length === 0) throw new KabiError('INITRAMFS_FORMAT', `${label} holds no cpio archive`, { file, offset: at });
  if (timings) {
    timings.decompress += t1 - t0;
    timings.list += performance.now() - t1;
  }
  return { stream, consumed: seg.consumed, decodedSize: seg.data.length, decoded: seg.data };
}

/**
 * A compressed segment listed while it is decompressed, keeping only the bodies `keep` asks
 * for; undefined when anything is amiss (the budget is then as it was, and the segment is
 * read whole, which says what is wrong).
 */
async function listSegment(bytes: Uint8Array, at: number, limit: number, keep: KeepBody, origin: StreamOrigin, timings: ImageTimings | undefined): Promise<ReadSegment | undefined> {
  const budget = origin.budget!;
  const before = { entries: budget.entries, bytes: budget.bytes };
  let decodedSize = 0;
  let waited = 0;
  const t0 = performance.now();
  try {
    const src = decompressSegmentPieces(bytes, at, { file: origin.file, maxOutputBytes: limit });
    const counted = (async function* () {
      const it = src.pieces[Symbol.asyncIterator]();
      try {
        for (;;) {
          const w = performance.now();
          const r = await it.next();
          waited += performance.now() - w;
          if (r.done) return;
          decodedSize += r.value.length;
          yield r.value;
        }
      } finally {
        await it.return?.();
      }
    })();
    const stream = await listCpioStream(counted, keep, origin);
    const consumed = src.consumed();
    if (consumed <= 0) return undefined;
    budget.addBytes(decodedSize, at);
    if (timings) {
      timings.decompress += waited;
      timings.list += performance.now() - t0 - waited;
    }
    return { stream, consumed, decodedSize };
  } catch (e) {
    // Past the image's member limit: reading it whole again would only get there slower.
    if (e instanceof KabiError && e.code === 'LIMIT') throw e;
    budget.entries = before.entries;
    budget.bytes = before.bytes;
    return undefined;
  }
}

/**
 * Read and parse an image file through `fs` (which may be a fault-injecting test double).
 * Only a regular file is read, and only up to the size limit: a FIFO, a device such as
 * /dev/zero or a directory is refused before any byte is read (NOT_A_FILE; opened
 * non-blocking, so a FIFO without a writer cannot hang the open), a larger file too (LIMIT).
 */
export async function readImageFile(fs: KabiFs, path: string, opts: Omit<ReadImageOptions, 'file'> = {}): Promise<InitramfsImage> {
  const limits = resolveLimits(opts.limits);
  let bytes: Uint8Array;
  const t0 = performance.now();
  try {
    bytes = await readRegularFile(fs, path, { what: 'boot image', maxBytes: limits.maxImageBytes });
    if (opts.timings) opts.timings.read += performance.now() - t0;
  } catch (e) {
    if (e instanceof KabiError) throw e;
    throw new KabiError('IO', `cannot read the image: ${(e as Error).message}`, { file: path, cause: e });
  }
  return parseImage(bytes, { ...opts, file: path });
}

export interface LocatedEntry {
  readonly segment: number;
  readonly archive: number;
  readonly entry: CpioEntry;
}

/** Every member in the order the kernel unpacks them. */
export function* allEntries(image: Pick<InitramfsImage, 'segments'>): Generator<LocatedEntry> {
  for (const s of image.segments) {
    for (let a = 0; a < s.stream.archives.length; a++) {
      for (const entry of s.stream.archives[a]!.entries) yield { segment: s.index, archive: a, entry };
    }
  }
}

export function entryCount(s: ImageSegment): number {
  return s.stream.archives.reduce((n, a) => n + a.entries.length, 0);
}
