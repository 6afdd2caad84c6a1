import { decompressSegment, detectCompression, type Compression } from '../../native-bindings/index.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { readRegularFile } from '../fs.js';
import { readCpioArchive, readCpioStream, type CpioEntry, type CpioStream } from './cpio.js';
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
}

export interface InitramfsImage {
  readonly file: string | undefined;
  readonly bytes: Uint8Array;
  readonly segments: readonly ImageSegment[];
}

export interface ReadImageOptions {
  file?: string | undefined;
  limits?: Partial<ImageLimits> | undefined;
}

export function segmentLabel(s: Pick<ImageSegment, 'index' | 'offset' | 'compression'>): string {
  return `segment ${s.index} (${s.compression ?? 'uncompressed'} at 0x${s.offset.toString(16)})`;
}

/** Parse a whole image held in memory. Never modifies `bytes`; the result refers into it. */
export async function parseImage(bytes: Uint8Array, opts: ReadImageOptions = {}): Promise<InitramfsImage> {
  const file = opts.file;
  const budget = new Budget(resolveLimits(opts.limits), file);
  const segments: ImageSegment[] = [];
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
    let seg: { data: Uint8Array; consumed: number };
    const limit = budget.segmentLimit(bytes.length - at);
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
    if (seg.consumed <= 0) throw new KabiError('INITRAMFS_FORMAT', `${label}: the decompressor consumed no input`, { file, offset: at });
    budget.addBytes(seg.data.length, at);
    const stream = readCpioStream(seg.data, { file, segmentOffset: at, segmentLabel: label, budget });
    if (stream.archives.length === 0) throw new KabiError('INITRAMFS_FORMAT', `${label} holds no cpio archive`, { file, offset: at });
    segments.push({ index, offset: at, end: at + seg.consumed, compression: format, stream, decodedSize: seg.data.length });
    at += seg.consumed;
  }
  if (segments.length === 0) throw new KabiError('INITRAMFS_FORMAT', bytes.length === 0 ? 'the image is empty' : 'the image holds only NUL bytes', { file });
  return { file, bytes, segments };
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
  try {
    bytes = await readRegularFile(fs, path, { what: 'boot image', maxBytes: limits.maxImageBytes });
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
