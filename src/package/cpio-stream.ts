import type { PackageLimits } from './limits.js';
import { MemberBody, normaliseMemberPath, payloadError, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type EntryType, type EntryVisitor, type PayloadEntry, type PayloadWhere } from './entry.js';

/*
 * A streaming reader of an RPM payload: cpio "newc" (070701), or rpm's "stripped" form
 * (07070X, rpm >= 4.12 for packages with files of 4 GiB or more, and rpm 6), whose header
 * is only the index of the file in the RPM header's file list. newc: a 110-byte ASCII
 * header, the NUL-terminated name padded so header+name is a multiple of 4, the contents
 * (a symlink's target) padded to 4. Offsets are counted from the start of the payload.
 * Members of a hard-link set carry the contents once, on the last of them; the others are
 * held back until then and reported as links to it.
 */

const NEWC = '070701';
const CRC = '070702';
const STRIPPED = '07070X';
const NEWC_HEADER = 110;
const STRIPPED_HEADER = 14;
const TRAILER = 'TRAILER!!!';

/** What the RPM header says about file number `index` (the stripped format stores nothing else). */
export interface HeaderFile {
  readonly path: string;
  readonly mode: number;
  readonly size: number;
  readonly mtime: number;
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

type State = 'magic' | 'header' | 'name' | 'content' | 'end';

interface Member {
  path: string;
  mode: number;
  size: number;
  mtime: number;
  nlink: number;
  key: string;
  at: number;
}

export class CpioReader {
  private state: State = 'magic';
  private pos = 0;
  private buf = new Uint8Array(NEWC_HEADER);
  private fill = 0;
  private need = 6;
  private member: Member | undefined;
  private readonly body = new MemberBody();
  private consumer: ((chunk: Uint8Array) => void) | undefined;
  private symlinkParts: Uint8Array[] | undefined;
  private entries = 0;
  /** Hard-link members seen without contents, by (dev, ino). */
  private readonly heldLinks = new Map<string, Member[]>();

  constructor(
    private readonly visitor: EntryVisitor,
    private readonly where: PayloadWhere,
    private readonly limits: Pick<PackageLimits, 'maxEntries' | 'maxPathBytes'>,
    private readonly headerFiles?: readonly HeaderFile[],
  ) {}

  push(chunk: Uint8Array): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.state === 'end') {
        this.pos += chunk.length - p; // padding after the trailer
        return;
      }
      if (this.state === 'magic' || this.state === 'header' || this.state === 'name') {
        if (this.buf.length < this.need) {
          const nb = new Uint8Array(this.need);
          nb.set(this.buf.subarray(0, this.fill));
          this.buf = nb;
        }
        const n = Math.min(this.need - this.fill, chunk.length - p);
        this.buf.set(chunk.subarray(p, p + n), this.fill);
        this.fill += n;
        p += n;
        this.pos += n;
        if (this.fill === this.need) this.step();
        continue;
      }
      const before = p;
      p = this.body.take(chunk, p, (piece) => {
        if (this.symlinkParts) this.symlinkParts.push(piece.slice());
        else this.consumer?.(piece);
      });
      this.pos += p - before;
      if (this.body.done) this.finishMember();
    }
    if (this.state === 'content' && this.body.done) this.finishMember();
  }

  end(): void {
    if (this.state === 'end') return;
    throw payloadError(this.where, this.pos, 'cpio archive is truncated (no TRAILER!!! member)');
  }

  /** A header part is complete: decode it and decide what comes next. */
  private step(): void {
    const at = this.pos - this.fill;
    if (this.state === 'magic') {
      // Members start on a 4-byte boundary; the magic is the first 6 bytes of the header.
      const magic = latin1.decode(this.buf.subarray(0, 6));
      if (magic === NEWC || magic === CRC) {
        this.state = 'header';
        this.need = NEWC_HEADER;
        return;
      }
      if (magic === STRIPPED) {
        if (!this.headerFiles) throw payloadError(this.where, at, 'stripped cpio member outside an RPM');
        this.state = 'header';
        // 6 magic + 8 index, padded to 4: the contents start aligned.
        this.need = STRIPPED_HEADER + pad4(STRIPPED_HEADER);
        return;
      }
      throw payloadError(this.where, at, `bad cpio magic "${magic.replace(/[^\x20-\x7e]/g, '?')}"`);
    }
    if (this.state === 'header') {
      const hdrAt = this.pos - this.need;
      if (this.need === STRIPPED_HEADER + pad4(STRIPPED_HEADER)) {
        const fx = this.hex(6, hdrAt, 'file index');
        const f = this.headerFiles![fx];
        if (f === undefined) throw payloadError(this.where, hdrAt, `stripped cpio member names file ${fx}, the header lists ${this.headerFiles!.length}`);
        this.fill = 0;
        this.member = { path: f.path, mode: f.mode, size: f.size, mtime: f.mtime, nlink: 1, key: `fx:${fx}`, at: hdrAt };
        this.startContent(hdrAt);
        return;
      }
      const mode = this.hex(14, hdrAt, 'mode');
      const nlink = this.hex(38, hdrAt, 'nlink');
      const mtime = this.hex(46, hdrAt, 'mtime');
      const size = this.hex(54, hdrAt, 'file size');
      const namesize = this.hex(94, hdrAt, 'name size');
      const key = `${this.hex(62, hdrAt, 'devmajor')}:${this.hex(70, hdrAt, 'devminor')}:${this.hex(6, hdrAt, 'ino')}`;
      if (namesize === 0 || namesize > this.limits.maxPathBytes + 1) throw payloadError(this.where, hdrAt, `cpio name size ${namesize} (limit ${this.limits.maxPathBytes})`);
      this.member = { path: '', mode, size, mtime, nlink, key, at: hdrAt };
      this.state = 'name';
      this.need = NEWC_HEADER + namesize + pad4(NEWC_HEADER + namesize);
      return;
    }
    // name
    const m = this.member!;
    const namesize = this.hex(94, m.at, 'name size');
    const raw = this.buf.subarray(NEWC_HEADER, NEWC_HEADER + namesize);
    if (raw[namesize - 1] !== 0) throw payloadError(this.where, m.at, 'cpio member name is not NUL-terminated');
    const name = utf8.decode(raw.subarray(0, namesize - 1));
    this.fill = 0;
    if (name === TRAILER) {
      this.flushHeldLinks();
      this.state = 'end';
      return;
    }
    m.path = normaliseMemberPath(name, this.where, m.at);
    this.startContent(m.at);
  }

  private startContent(at: number): void {
    const m = this.member!;
    if (++this.entries > this.limits.maxEntries) throw payloadError(this.where, at, `more than ${this.limits.maxEntries} entries`);
    const kind = m.mode & S_IFMT;
    this.consumer = undefined;
    this.symlinkParts = undefined;
    if (kind === S_IFLNK) {
      // The target is the member's contents (in the stripped form too: rpm writes it there).
      if (m.size > this.limits.maxPathBytes) throw payloadError(this.where, at, `symlink target of ${m.size} bytes (limit ${this.limits.maxPathBytes})`);
      this.symlinkParts = [];
    } else if (kind === S_IFREG && m.nlink > 1 && m.size === 0) {
      const held = this.heldLinks.get(m.key);
      if (held) held.push({ ...m });
      else this.heldLinks.set(m.key, [{ ...m }]);
    } else {
      this.consumer = this.emit(m, kind === S_IFREG ? 'file' : kind === S_IFDIR ? 'dir' : 'other');
      if (kind === S_IFREG && m.nlink > 1) this.releaseLinks(m);
    }
    this.body.start(m.size, pad4(m.size));
    this.state = 'content';
  }

  private finishMember(): void {
    const m = this.member!;
    if (this.symlinkParts) {
      const target = utf8.decode(Buffer.concat(this.symlinkParts));
      this.symlinkParts = undefined;
      this.emit({ ...m, size: 0 }, 'symlink', target);
    }
    this.consumer = undefined;
    this.member = undefined;
    this.state = 'magic';
    this.need = 6;
    this.fill = 0;
  }

  private emit(m: Member, type: EntryType, linkTarget?: string): ((chunk: Uint8Array) => void) | undefined {
    const e: PayloadEntry = {
      path: m.path,
      type,
      mode: type === 'symlink' ? S_IFLNK | 0o777 : m.mode,
      size: type === 'file' ? m.size : 0,
      mtime: m.mtime,
      ...(linkTarget !== undefined ? { linkTarget } : {}),
      dataOffset: this.pos,
    };
    return this.visitor.entry(e);
  }

  private releaseLinks(owner: Member): void {
    const held = this.heldLinks.get(owner.key);
    if (!held) return;
    this.heldLinks.delete(owner.key);
    for (const h of held) this.visitor.entry({ path: h.path, type: 'hardlink', mode: S_IFREG | (h.mode & 0o7777), size: 0, mtime: h.mtime, linkTarget: owner.path, dataOffset: this.pos });
  }

  /** Links whose contents never came: every member of the set is an empty file. */
  private flushHeldLinks(): void {
    for (const held of this.heldLinks.values()) for (const h of held) this.emit(h, 'file');
    this.heldLinks.clear();
  }

  private hex(at: number, hdrAt: number, what: string): number {
    const text = latin1.decode(this.buf.subarray(at, at + 8));
    if (!/^[0-9a-fA-F]{8}$/.test(text)) throw payloadError(this.where, hdrAt, `bad cpio ${what} field "${text.replace(/[^\x20-\x7e]/g, '?')}"`);
    return parseInt(text, 16);
  }
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}
