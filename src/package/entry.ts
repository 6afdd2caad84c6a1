import { KabiError } from '../errors.js';

/** What a payload entry is; devices, fifos and sockets are listed but have no contents. */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

/** One member of a package payload (a data.tar entry, an RPM cpio member), as installed. */
export interface PayloadEntry {
  /** System path as the package would install it: "/usr/lib/modules/K/kernel/…" ("/" for the top). */
  readonly path: string;
  readonly type: EntryType;
  /** st_mode: permission and file type bits. */
  readonly mode: number;
  /** Bytes of contents (regular files; 0 for everything else). */
  readonly size: number;
  /** Seconds since the epoch. */
  readonly mtime: number;
  /** A symlink's target as stored; a hard link's target as a system path. */
  readonly linkTarget?: string;
  /** Offset of the contents in the decompressed payload. */
  readonly dataOffset: number;
}

/** Receives entries as a parser meets them; returns a consumer when it wants the contents. */
export interface EntryVisitor {
  entry(e: PayloadEntry): ((chunk: Uint8Array) => void) | undefined;
}

/** Where parse errors are attributed: the package file, its payload, and that payload's offset in the file. */
export interface PayloadWhere {
  readonly file: string;
  /** e.g. "data.tar.xz" or "RPM payload (xz cpio)". */
  readonly label: string;
  /** Offset of the (compressed) payload in the package file. */
  readonly base: number;
}

export function payloadError(where: PayloadWhere, at: number, detail: string): KabiError {
  return new KabiError('PACKAGE_FORMAT', `${where.label}, decompressed offset 0x${at.toString(16)}: ${detail}`, { file: where.file, offset: where.base });
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

/**
 * A member name as an absolute system path: "./usr/lib/x", "usr/lib/x" and "/usr/lib/x" all
 * name /usr/lib/x. A name that climbs out with ".." is refused, as dpkg and rpm refuse it:
 * no package may write outside the root it is installed into.
 */
export function normaliseMemberPath(name: string, where: PayloadWhere, at: number): string {
  if (name.includes('\0')) throw payloadError(where, at, `member name contains a NUL byte`);
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw payloadError(where, at, `member name "${name}" leads outside the root`);
    out.push(c);
  }
  return '/' + out.join('/');
}

/**
 * The rest of the member being read in an archive stream: its contents, then the padding to
 * the format's alignment. Shared by the tar and cpio readers, which differ only in headers.
 */
export class MemberBody {
  private remaining = 0;
  private padding = 0;

  start(contents: number, padding: number): void {
    this.remaining = contents;
    this.padding = padding;
  }

  get done(): boolean {
    return this.remaining === 0 && this.padding === 0;
  }

  /** Takes what it can of the member from chunk[p...], handing contents to `onData`; returns the new p. */
  take(chunk: Uint8Array, p: number, onData: (piece: Uint8Array) => void): number {
    if (this.remaining > 0) {
      const n = Math.min(this.remaining, chunk.length - p);
      onData(chunk.subarray(p, p + n));
      this.remaining -= n;
      p += n;
      if (this.remaining > 0) return p;
    }
    const n = Math.min(this.padding, chunk.length - p);
    this.padding -= n;
    return p + n;
  }
}

const MODULE_NAME = /\.ko(\.(xz|gz|zst))?$/;

/** A kernel module file name (what kmod scans for). */
export function isModulePath(path: string): boolean {
  return MODULE_NAME.test(path);
}
