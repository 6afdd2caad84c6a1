import { KabiError } from '../errors.js';

/**
 * Bounds on what reading one image may cost. An initramfs is untrusted input (it can be
 * handed to `kabi initramfs ls` from anywhere), so a cpio bomb (a tiny compressed segment
 * that inflates to gigabytes, or millions of empty entries) must stop with an error
 * before it exhausts memory, not after; and a path that is not a regular file (a FIFO,
 * /dev/zero) is refused before a byte is read.
 */
export interface ImageLimits {
  /** Size of the image file itself. The largest real images (every driver and firmware) stay under 300 MiB. */
  maxImageBytes: number;
  /** Decompressed bytes over all segments. Real images stay far below it. */
  maxTotalBytes: number;
  /**
   * Decompressed bytes per compressed byte, counted from the segment's offset to the end of
   * the file (the segment cannot be longer). Real images inflate 2-8 times; a stream of zeros
   * thousands of times.
   */
  maxExpansion: number;
  /** Decompressed bytes always allowed for one segment, whatever its expansion. */
  expansionFloor: number;
  /** cpio entries over all archives. A full dracut image holds a few thousand. */
  maxEntries: number;
  /** Uncompressed archives plus compressed segments. */
  maxSegments: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = {
  maxImageBytes: 1024 ** 3,
  maxTotalBytes: 1024 ** 3,
  maxExpansion: 100,
  expansionFloor: 64 * 1024 ** 2,
  maxEntries: 500_000,
  maxSegments: 256,
};

/** The kernel's PATH_MAX: longer names or link targets are skipped by init/initramfs.c. */
export const PATH_MAX = 4096;

export function resolveLimits(partial: Partial<ImageLimits> | undefined): ImageLimits {
  const out = { ...DEFAULT_IMAGE_LIMITS, ...(partial ?? {}) };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v < 0) throw new KabiError('USAGE', `image limit ${k} must be a non-negative integer, got ${String(v)}`);
  }
  return out;
}

/** Counts entries and decoded bytes across every archive of one image. */
export class Budget {
  entries = 0;
  bytes = 0;
  segments = 0;

  constructor(
    readonly limits: ImageLimits,
    readonly file: string | undefined,
  ) {}

  addEntry(offset: number): void {
    if (++this.entries > this.limits.maxEntries) {
      throw new KabiError('LIMIT', `more than ${this.limits.maxEntries} cpio entries (a cpio bomb?)`, { file: this.file, offset });
    }
  }

  addSegment(offset: number): void {
    if (++this.segments > this.limits.maxSegments) {
      throw new KabiError('LIMIT', `more than ${this.limits.maxSegments} segments`, { file: this.file, offset });
    }
  }

  /** Decoded bytes still allowed over the whole image. */
  get remainingBytes(): number {
    return Math.max(0, this.limits.maxTotalBytes - this.bytes);
  }

  /**
   * The output limit for a compressed segment that starts `compressedAvailable` bytes before
   * the end of the image, and which of the two bounds it is.
   */
  segmentLimit(compressedAvailable: number): { bytes: number; bound: string } {
    const expansion = Math.max(this.limits.expansionFloor, this.limits.maxExpansion * compressedAvailable);
    if (expansion < this.remainingBytes) {
      return { bytes: expansion, bound: `${expansion}-byte limit (${this.limits.maxExpansion} times the ${compressedAvailable} compressed bytes left in the file)` };
    }
    return { bytes: this.remainingBytes, bound: `${this.limits.maxTotalBytes}-byte limit on decompressed contents` };
  }

  addBytes(n: number, offset: number): void {
    this.bytes += n;
    if (this.bytes > this.limits.maxTotalBytes) {
      throw new KabiError('LIMIT', `decompressed contents exceed ${this.limits.maxTotalBytes} bytes (a cpio bomb?)`, { file: this.file, offset });
    }
  }
}
