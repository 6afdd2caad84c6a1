import { KabiError } from '../errors.js';

/**
 * Budgets for reading a package. A package comes from a mirror, a CI artefact store or a
 * user's download folder: it is input like any other, so every size that drives an allocation
 * or a loop is capped before it is trusted, and a whole read has a deadline. The defaults are
 * far above any real kernel package (Debian's largest, linux-image-*-amd64 6.1, unpacks to
 * 411 MB in 4,600 entries; RHEL's kernel-modules-extra is smaller).
 */
export interface PackageLimits {
  /** Bytes of the package file itself. */
  readonly maxPackageBytes: number;
  /** Bytes of the decompressed payload (data.tar, the RPM cpio). */
  readonly maxPayloadBytes: number;
  /** Entries (files, directories, links) in one payload. */
  readonly maxEntries: number;
  /** Bytes of one path or link target. */
  readonly maxPathBytes: number;
  /** Bytes of one metadata block: an RPM header, a pax header, control.tar. */
  readonly maxMetadataBytes: number;
  /** Bytes of file contents kept in memory per package (the rest is read again when asked for). */
  readonly retainBytes: number;
  /** Milliseconds one pass over a payload may take. */
  readonly timeoutMs: number;
}

/** The budgets a package is read within unless told otherwise (see PackageLimits). */
export const DEFAULT_PACKAGE_LIMITS: PackageLimits = {
  maxPackageBytes: 8 * 1024 ** 3,
  maxPayloadBytes: 16 * 1024 ** 3,
  maxEntries: 1_000_000,
  maxPathBytes: 4096,
  maxMetadataBytes: 256 * 1024 ** 2,
  retainBytes: 256 * 1024 ** 2,
  timeoutMs: 10 * 60_000,
};

export function resolveLimits(partial: Partial<PackageLimits> | undefined): PackageLimits {
  const out = { ...DEFAULT_PACKAGE_LIMITS, ...partial };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v < 0) throw new KabiError('USAGE', `package limit ${k} must be a non-negative integer, got ${String(v)}`);
  }
  return out;
}

/** A point in time after which a pass is abandoned with an error naming the package. */
export class Deadline {
  private readonly end: number;
  constructor(
    private readonly ms: number,
    private readonly file: string,
  ) {
    this.end = Date.now() + ms;
  }
  get remainingMs(): number {
    return Math.max(0, this.end - Date.now());
  }
  check(offset?: number): void {
    if (Date.now() > this.end) throw this.error(offset);
  }
  error(offset?: number): KabiError {
    return new KabiError('PACKAGE_FORMAT', `reading the package took longer than ${Math.round(this.ms / 1000)} s; gave up`, { file: this.file, offset });
  }
}
