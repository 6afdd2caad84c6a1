import { KabiError } from '../errors.js';
import { normaliseName, type ImagePath } from './archive-path.js';
import { PATH_MAX, type Budget } from './limits.js';

/*
 * cpio "newc" (070701) and "crc" (070702) archives, the only formats the kernel unpacks as an
 * initramfs. Layout of one member: a 110-byte ASCII header (magic + 13 eight-digit hex
 * fields), the NUL-terminated name padded so that header+name is a multiple of 4, then the
 * body (file contents or symlink target) padded to 4. An archive ends with a member named
 * TRAILER!!!; tools then pad with NULs (GNU cpio to a 512-byte block).
 */

export const NEWC_MAGIC = '070701';
export const CRC_MAGIC = '070702';
export type CpioMagic = typeof NEWC_MAGIC | typeof CRC_MAGIC;
export const HEADER_SIZE = 110;
export const TRAILER_NAME = 'TRAILER!!!';

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export type EntryKind = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket' | 'unknown';

export function kindOf(mode: number): EntryKind {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'char';
    case S_IFBLK:
      return 'block';
    case S_IFIFO:
      return 'fifo';
    case S_IFSOCK:
      return 'socket';
    default:
      return 'unknown';
  }
}

/** The numeric header fields, in header order after the magic (filesize and namesize are derived). */
export interface CpioFields {
  readonly ino: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly mtime: number;
  readonly devmajor: number;
  readonly devminor: number;
  readonly rdevmajor: number;
  readonly rdevminor: number;
  /** 070702: sum of the body bytes; 070701: whatever the writer put there (0 from every real tool). */
  readonly check: number;
}

export interface CpioEntry extends CpioFields {
  readonly magic: CpioMagic;
  /** The name as stored (UTF-8 decoded), without the terminating NUL. */
  readonly name: string;
  /** The stored name bytes, kept so an unchanged member is written back byte for byte. */
  readonly rawName?: Uint8Array;
  /** Normalised path (see archive-path.ts); '' for the root directory '.'. */
  readonly path: ImagePath;
  /** Regular file contents or symlink target; empty for other kinds. */
  readonly data: Uint8Array;
  /**
   * The body was not kept (a listing for a decision reads only what it needs): `data` is
   * empty and the member has this many bytes. Such a member is never written back.
   */
  readonly skippedBytes?: number;
  /** Offset of the header in the stream it was read from. */
  readonly offset?: number;
}

export interface CpioArchive {
  readonly entries: readonly CpioEntry[];
  /** The TRAILER!!! member as stored (GNU cpio gives it nlink 1, others 0). */
  readonly trailer: CpioEntry;
  /** NUL bytes after the trailer, up to the next archive or the end of the stream. */
  readonly padding: number;
}

/** Archives as they follow one another in one decompressed segment. */
export interface CpioStream {
  /** NUL bytes before the first archive. */
  readonly leadingZeros: number;
  readonly archives: readonly CpioArchive[];
}

/** Where bytes being parsed came from, for error messages. */
export interface StreamOrigin {
  file?: string | undefined;
  /** Set for decompressed data: offset of the compressed segment in the image. */
  segmentOffset?: number | undefined;
  /** Short description of the segment, e.g. "xz segment". */
  segmentLabel?: string | undefined;
  budget?: Budget | undefined;
}

const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

export function fail(code: 'CPIO_FORMAT' | 'INITRAMFS_FORMAT', detail: string, at: number, origin: StreamOrigin): KabiError {
  if (origin.segmentOffset !== undefined) {
    return new KabiError(code, `${origin.segmentLabel ?? 'compressed segment'}, decompressed offset 0x${at.toString(16)}: ${detail}`, {
      file: origin.file,
      offset: origin.segmentOffset,
    });
  }
  return new KabiError(code, detail, { file: origin.file, offset: at });
}

function hexField(b: Uint8Array, at: number, what: string, origin: StreamOrigin, headerAt: number): number {
  let v = 0;
  for (let i = 0; i < 8; i++) {
    const c = b[at + i] as number;
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
    else throw fail('CPIO_FORMAT', `cpio header field ${what} is not 8 hex digits`, headerAt, origin);
    v = v * 16 + d;
  }
  return v;
}

const FIELD_NAMES = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize', 'check'] as const;

export function align4(n: number): number {
  return (n + 3) & ~3;
}

function magicAt(b: Uint8Array, at: number): string {
  let s = '';
  for (let i = 0; i < 6 && at + i < b.length; i++) s += String.fromCharCode(b[at + i] as number);
  return s;
}

/** A member's header and name, read from its header onwards; its body starts at `dataStart`. */
export interface MemberHeader extends CpioFields {
  readonly magic: CpioMagic;
  readonly name: string;
  readonly rawName: Uint8Array;
  readonly filesize: number;
  /** Offset in the bytes read of the member's body (header and name padded to 4). */
  readonly dataStart: number;
}

/**
 * The header and name of the member at `at` of `bytes`. Members start 4-aligned from their
 * archive's start, so the padding after the name is counted from the header.
 */
export function readMemberHeader(bytes: Uint8Array, at: number, origin: StreamOrigin): MemberHeader {
  if (at + HEADER_SIZE > bytes.length) {
    throw fail('CPIO_FORMAT', at >= bytes.length ? 'archive ends without a TRAILER!!! member (truncated?)' : 'truncated cpio header', at, origin);
  }
  const magic = magicAt(bytes, at);
  if (magic !== NEWC_MAGIC && magic !== CRC_MAGIC) {
    const why = magic === '070707' ? 'old binary/odc cpio (070707); the kernel needs newc' : 'no cpio newc magic (070701/070702)';
    throw fail('CPIO_FORMAT', why, at, origin);
  }
  const f: number[] = [];
  for (let i = 0; i < 13; i++) f.push(hexField(bytes, at + 6 + i * 8, FIELD_NAMES[i] as string, origin, at));
  const [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check] = f as [
    number, number, number, number, number, number, number, number, number, number, number, number, number,
  ];
  if (namesize < 1 || namesize > PATH_MAX) throw fail('CPIO_FORMAT', `member name size ${namesize} is outside 1..${PATH_MAX}`, at, origin);
  const nameStart = at + HEADER_SIZE;
  const nameEnd = nameStart + namesize - 1;
  if (nameEnd + 1 > bytes.length) throw fail('CPIO_FORMAT', 'member name runs past the end of the data (truncated?)', at, origin);
  if (bytes[nameEnd] !== 0) throw fail('CPIO_FORMAT', 'member name is not NUL-terminated', at, origin);
  const rawName = bytes.subarray(nameStart, nameEnd);
  if (rawName.includes(0)) throw fail('CPIO_FORMAT', 'member name contains a NUL byte', at, origin);
  const name = utf8.decode(rawName);
  const dataStart = at + align4(HEADER_SIZE + namesize);
  return { magic, ino, mode, uid, gid, nlink, mtime, devmajor, devminor, rdevmajor, rdevminor, check, name, rawName, filesize, dataStart };
}

/** The checks a member that is not the trailer passes before its body is used; its normalised path. */
export function admitMember(h: MemberHeader, at: number, origin: StreamOrigin): ImagePath {
  origin.budget?.addEntry(origin.segmentOffset ?? at);
  if (kindOf(h.mode) === 'symlink' && (h.filesize < 1 || h.filesize > PATH_MAX)) {
    throw fail('CPIO_FORMAT', `symlink "${h.name}" has a ${h.filesize}-byte target (must be 1..${PATH_MAX})`, at, origin);
  }
  try {
    return normaliseName(h.name, { file: origin.file, offset: origin.segmentOffset ?? at });
  } catch (e) {
    if (e instanceof KabiError && origin.segmentOffset !== undefined) {
      throw new KabiError(e.code, `${origin.segmentLabel ?? 'compressed segment'}, decompressed offset 0x${at.toString(16)}: ${e.detail}`, {
        file: origin.file,
        offset: origin.segmentOffset,
      });
    }
    throw e;
  }
}

/**
 * A member read, as an entry. Spelled out, not spread from the header: every entry then has
 * one compact shape, where objects spread with this many fields took several times the
 * memory, and an image can hold hundreds of thousands of members (500,000 empty ones listed:
 * 1.6 s and 290 MiB, against 5.8 s and 850 MiB spread).
 */
export function memberEntry(h: MemberHeader, rawName: Uint8Array, path: ImagePath | '', data: Uint8Array, offset: number, skippedBytes?: number): CpioEntry {
  const e: { -readonly [K in keyof CpioEntry]: CpioEntry[K] } = {
    magic: h.magic,
    ino: h.ino,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    nlink: h.nlink,
    mtime: h.mtime,
    devmajor: h.devmajor,
    devminor: h.devminor,
    rdevmajor: h.rdevmajor,
    rdevminor: h.rdevminor,
    check: h.check,
    name: h.name,
    rawName,
    path: path as ImagePath,
    data,
    offset,
  };
  if (skippedBytes !== undefined) e.skippedBytes = skippedBytes;
  return e;
}

/**
 * One archive starting at `start` (which must be 4-aligned within `bytes`), through its
 * TRAILER!!! member. Returns the archive (padding 0: the caller counts the NULs that follow)
 * and the offset just after the trailer.
 */
export function readCpioArchive(bytes: Uint8Array, start: number, origin: StreamOrigin = {}): { archive: CpioArchive; end: number } {
  const entries: CpioEntry[] = [];
  let at = start;
  for (;;) {
    const h = readMemberHeader(bytes, at, origin);
    const { name, rawName, filesize, dataStart } = h;
    if (dataStart > bytes.length || filesize > bytes.length - dataStart) {
      throw fail('CPIO_FORMAT', `member "${name}" claims ${filesize} bytes of data but only ${Math.max(0, bytes.length - dataStart)} remain (truncated?)`, at, origin);
    }
    const data = bytes.subarray(dataStart, dataStart + filesize);
    const next = dataStart + align4(filesize);
    if (name === TRAILER_NAME) {
      const trailer = memberEntry(h, rawName, '', data, at);
      return { archive: { entries, trailer, padding: 0 }, end: Math.min(next, bytes.length) };
    }
    const path = admitMember(h, at, origin);
    if (h.magic === CRC_MAGIC && kindOf(h.mode) === 'file') {
      const sum = byteSum(data, 0);
      if (sum !== h.check) throw fail('CPIO_FORMAT', `member "${name}": data checksum 0x${sum.toString(16)} does not match the header's 0x${h.check.toString(16)}`, at, origin);
    }
    entries.push(memberEntry(h, rawName, path, data, at));
    at = next;
  }
}

/** 070702's checksum: the body's bytes summed, carried on from `sum`. */
export function byteSum(data: Uint8Array, sum: number): number {
  for (let i = 0; i < data.length; i++) sum = (sum + (data[i] as number)) >>> 0;
  return sum;
}

function countZeros(b: Uint8Array, from: number): number {
  let i = from;
  while (i < b.length && b[i] === 0) i++;
  return i - from;
}

/**
 * Every archive in a decompressed segment, as the kernel's flush_buffer() walks it: archives
 * separated by NUL padding, each starting 4-aligned; anything else is junk.
 */
export function readCpioStream(bytes: Uint8Array, origin: StreamOrigin = {}): CpioStream {
  const leadingZeros = countZeros(bytes, 0);
  let at = leadingZeros;
  const archives: CpioArchive[] = [];
  while (at < bytes.length) {
    if (bytes[at] !== 0x30 || (at & 3) !== 0) {
      throw fail('INITRAMFS_FORMAT', (at & 3) !== 0 ? 'broken padding: an archive does not start on a 4-byte boundary' : 'junk within the archive data', at, origin);
    }
    const { archive, end } = readCpioArchive(bytes, at, origin);
    const padding = countZeros(bytes, end);
    archives.push({ ...archive, padding });
    at = end + padding;
  }
  return { leadingZeros, archives };
}

// ---------------------------------------------------------------------------------------------
// Writing

function nameBytes(e: CpioEntry): Uint8Array {
  if (e.rawName !== undefined) return e.rawName;
  return utf8Encoder.encode(e.name);
}

/** Bytes one member takes (header, padded name, padded body). */
function memberSize(e: CpioEntry): number {
  return align4(HEADER_SIZE + nameBytes(e).length + 1) + align4(e.data.length);
}

export function archiveSize(a: CpioArchive): number {
  let n = memberSize(a.trailer);
  for (const e of a.entries) n += memberSize(e);
  return n;
}

const HEX = '0123456789ABCDEF';

function putHex(out: Uint8Array, at: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > 0xffffffff) throw new KabiError('CPIO_FORMAT', `value ${v} does not fit a cpio header field`);
  for (let i = 7; i >= 0; i--) {
    out[at + i] = HEX.charCodeAt(v & 15);
    v = Math.floor(v / 16);
  }
}

function writeMember(out: Uint8Array, at: number, e: CpioEntry): number {
  if (e.skippedBytes !== undefined) throw new KabiError('USAGE', `member "${e.name}" was listed without its contents and cannot be written`);
  const name = nameBytes(e);
  for (let i = 0; i < 6; i++) out[at + i] = e.magic.charCodeAt(i);
  let check = e.check;
  if (e.magic === CRC_MAGIC) {
    check = 0;
    if (kindOf(e.mode) === 'file') for (let i = 0; i < e.data.length; i++) check = (check + (e.data[i] as number)) >>> 0;
  }
  const values = [e.ino, e.mode, e.uid, e.gid, e.nlink, e.mtime, e.data.length, e.devmajor, e.devminor, e.rdevmajor, e.rdevminor, name.length + 1, check];
  values.forEach((v, i) => putHex(out, at + 6 + i * 8, v));
  out.set(name, at + HEADER_SIZE);
  // The NUL terminator and the alignment bytes are already zero in a fresh buffer.
  const dataAt = at + align4(HEADER_SIZE + name.length + 1);
  out.set(e.data, dataAt);
  return dataAt + align4(e.data.length);
}

function writeArchiveInto(out: Uint8Array, at: number, a: CpioArchive): number {
  for (const e of a.entries) at = writeMember(out, at, e);
  at = writeMember(out, at, a.trailer);
  return at + a.padding;
}

export function writeCpioArchive(a: CpioArchive): Uint8Array {
  const out = new Uint8Array(archiveSize(a) + a.padding);
  writeArchiveInto(out, 0, a);
  return out;
}

export function writeCpioStream(s: CpioStream): Uint8Array {
  let total = s.leadingZeros;
  for (const a of s.archives) total += archiveSize(a) + a.padding;
  const out = new Uint8Array(total);
  let at = s.leadingZeros;
  for (const a of s.archives) at = writeArchiveInto(out, at, a);
  return out;
}

/**
 * How far members read from a stream have moved in `s` as writeCpioStream lays it out (new
 * offset minus the offset they were read at): the candidate moves of unchanged content.
 */
export function memberShifts(s: CpioStream): Set<number> {
  const shifts = new Set<number>();
  let at = s.leadingZeros;
  for (const a of s.archives) {
    for (const e of [...a.entries, a.trailer]) {
      if (e.offset !== undefined) shifts.add(at - e.offset);
      at += memberSize(e);
    }
    at += a.padding;
  }
  return shifts;
}

/** A TRAILER!!! member as GNU cpio writes it. */
export function newTrailer(): CpioEntry {
  return { magic: NEWC_MAGIC, ...ZERO_FIELDS, nlink: 1, name: TRAILER_NAME, path: '', data: new Uint8Array(0) };
}

const ZERO_FIELDS: CpioFields = { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 0, mtime: 0, devmajor: 0, devminor: 0, rdevmajor: 0, rdevminor: 0, check: 0 };

/**
 * The same archive with other members. Padding keeps the archive's block alignment: an archive
 * that was padded to a 512-byte block (GNU cpio, dracut, mkinitramfs) is padded to one again.
 */
export function withEntries(a: CpioArchive, entries: readonly CpioEntry[]): CpioArchive {
  const oldLen = archiveSize(a);
  const next: CpioArchive = { entries, trailer: a.trailer, padding: 0 };
  const newLen = archiveSize(next);
  let padding = a.padding;
  if (a.padding > 0 && a.padding < 512 && (oldLen + a.padding) % 512 === 0) padding = (512 - (newLen % 512)) % 512;
  return { ...next, padding };
}

export interface NewEntryInput {
  path: ImagePath;
  mode: number;
  data?: Uint8Array;
  mtime?: number;
  ino: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
}

/** A member as kabi adds it: newc, owned by root unless told, one link. */
export function newEntry(p: NewEntryInput): CpioEntry {
  return {
    magic: NEWC_MAGIC,
    ...ZERO_FIELDS,
    ino: p.ino,
    mode: p.mode,
    uid: p.uid ?? 0,
    gid: p.gid ?? 0,
    nlink: kindOf(p.mode) === 'dir' ? 2 : 1,
    mtime: p.mtime ?? 0,
    devmajor: p.devmajor ?? 0,
    devminor: p.devminor ?? 0,
    name: p.path === '' ? '.' : p.path,
    path: p.path,
    data: p.data ?? new Uint8Array(0),
  };
}

/** `ls -l`-style permission string, as cpio -tv and lsinitrd print it. */
export function modeString(mode: number): string {
  const t: Record<EntryKind, string> = { file: '-', dir: 'd', symlink: 'l', char: 'c', block: 'b', fifo: 'p', socket: 's', unknown: '?' };
  const rwx = (bits: number, special: boolean, sc: string) =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? sc : sc.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return (
    t[kindOf(mode)] +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}
