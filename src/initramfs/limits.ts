import { KabiError } from '../errors.js';

/**
 * Bounds on what reading one image may cost. An initramfs is untrusted input (it can be
 * handed to `kabi initramfs ls` from anywhere), so a cpio bomb (a tiny compressed segment
 * that inflates to gigabytes, or millions of empty entries) must stop with an error
 * before it exhausts memory, not after.
 */
export interface ImageLimits {
  /** Decompressed bytes over all segments. Real images stay far below 1 GiB. */
  maxTotalBytes: number;
  /** cpio entries over all archives. A full dracut image holds a few thousand. */
  maxEntries: number;
  /** Uncompressed archives plus compressed segments. */
  maxSegments: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = {
  maxTotalBytes: 2 * 1024 ** 3,
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
      throw new KabiError('INITRAMFS_FORMAT', `more than ${this.limits.maxEntries} cpio entries (a cpio bomb?)`, { file: this.file, offset });
    }
  }

  addSegment(offset: number): void {
    if (++this.segments > this.limits.maxSegments) {
      throw new KabiError('INITRAMFS_FORMAT', `more than ${this.limits.maxSegments} segments`, { file: this.file, offset });
    }
  }

  /** Decoded bytes still allowed; passed to the decompressor as its output limit. */
  get remainingBytes(): number {
    return Math.max(0, this.limits.maxTotalBytes - this.bytes);
  }

  addBytes(n: number, offset: number): void {
    this.bytes += n;
    if (this.bytes > this.limits.maxTotalBytes) {
      throw new KabiError('INITRAMFS_FORMAT', `decompressed contents exceed ${this.limits.maxTotalBytes} bytes (a cpio bomb?)`, { file: this.file, offset });
    }
  }
}
