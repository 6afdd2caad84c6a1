import { admitMember, align4, CRC_MAGIC, HEADER_SIZE, kindOf, memberEntry, readMemberHeader, TRAILER_NAME, type CpioArchive, type CpioEntry, type CpioStream, type MemberHeader, type StreamOrigin } from './cpio.js';
import { KabiError } from '../errors.js';
import { PATH_MAX } from './limits.js';

/*
 * A decompressed segment listed as its pieces arrive, as readCpioStream lists a whole one:
 * the same members, paths and fields, but only the bodies `keep` asks for are held (copied
 * out of the pieces); the others are skipped, so an image of a hundred MiB is listed in a
 * few hundred KiB. Anything readCpioStream would refuse, and a 070702 archive (its checksums
 * need every body), ends the listing with NotListed: the caller then reads the segment whole,
 * which gives the error, or the answer, readCpioStream gives. Except past the image's member
 * limit: that error stands (a whole read would only get there slower), even where the rest
 * of the segment is damaged and a whole read would have said so first.
 */

/** Whether a member's body is kept; asked once its header has been read. */
export type KeepBody = (path: string, h: Pick<MemberHeader, 'mode' | 'filesize' | 'nlink'>) => boolean;

export class NotListed extends Error {}

const EMPTY = new Uint8Array(0);
const latin1 = new TextDecoder('latin1');
/** Where c_namesize sits in a newc header: after the magic and 11 eight-digit fields. */
const NAMESIZE_AT = 6 + 11 * 8;

/** Bytes arriving in pieces, read in order: a few contiguous at a time, or passed over. */
class Pieces {
  private cur: Uint8Array = EMPTY;
  private at = 0;
  private readonly pending: Uint8Array[] = [];
  /** Offset in the whole stream of the next unread byte. */
  pos = 0;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  private async next(): Promise<Uint8Array | undefined> {
    const p = this.pending.shift();
    if (p !== undefined) return p;
    const r = await this.source.next();
    return r.done ? undefined : r.value;
  }

  /** The next `n` bytes contiguous (fewer at the end of the stream), as a view that stays valid until the next read. */
  async peek(n: number): Promise<Uint8Array> {
    while (this.cur.length - this.at < n) {
      const piece = await this.next();
      if (piece === undefined) break;
      const have = this.cur.length - this.at;
      if (have === 0) {
        this.cur = piece;
        this.at = 0;
        continue;
      }
      // Only what is needed is joined: the rest of the piece waits its turn, uncopied.
      const take = Math.min(piece.length, n - have);
      const joined = new Uint8Array(have + take);
      joined.set(this.cur.subarray(this.at));
      joined.set(piece.subarray(0, take), have);
      if (take < piece.length) this.pending.unshift(piece.subarray(take));
      this.cur = joined;
      this.at = 0;
    }
    return this.cur.subarray(this.at, this.at + n);
  }

  /** Pass over `n` bytes, each span handed to `span` (if given); false if the stream ends first. */
  async skip(n: number, span?: (b: Uint8Array) => void): Promise<boolean> {
    while (n > 0) {
      if (this.at === this.cur.length) {
        const piece = await this.next();
        if (piece === undefined) return false;
        this.cur = piece;
        this.at = 0;
      }
      const k = Math.min(n, this.cur.length - this.at);
      span?.(this.cur.subarray(this.at, this.at + k));
      this.at += k;
      this.pos += k;
      n -= k;
    }
    return true;
  }

  /** The next `n` bytes, copied; undefined if the stream ends first. */
  async take(n: number): Promise<Uint8Array | undefined> {
    const out = new Uint8Array(n);
    let filled = 0;
    const ok = await this.skip(n, (b) => {
      out.set(b, filled);
      filled += b.length;
    });
    return ok ? out : undefined;
  }

  /** NUL bytes from here on, passed over. */
  async zeros(): Promise<number> {
    let n = 0;
    for (;;) {
      const b = await this.peek(1);
      if (b.length === 0 || b[0] !== 0) return n;
      let k = 0;
      const rest = this.cur.subarray(this.at);
      while (k < rest.length && rest[k] === 0) k++;
      await this.skip(k);
      n += k;
    }
  }
}

/** Every archive of a decompressed segment arriving as `pieces`; bodies held only where `keep` says. */
export async function listCpioStream(pieces: AsyncIterable<Uint8Array>, keep: KeepBody, origin: StreamOrigin = {}): Promise<CpioStream> {
  const it = pieces[Symbol.asyncIterator]();
  const src = new Pieces(it);
  try {
    const leadingZeros = await src.zeros();
    const archives: CpioArchive[] = [];
    for (;;) {
      const first = await src.peek(1);
      if (first.length === 0) break;
      if (first[0] !== 0x30 || (src.pos & 3) !== 0) throw new NotListed();
      const archive = await listArchive(src, keep, origin);
      archives.push({ ...archive, padding: await src.zeros() });
    }
    if (archives.length === 0) throw new NotListed();
    return { leadingZeros, archives };
  } finally {
    // A listing given up stops the decompressor too.
    await it.return?.();
  }
}

/** Small byte strings copied into shared slabs. */
class Slabs {
  private slab = new Uint8Array(0);
  private used = 0;

  copy(b: Uint8Array): Uint8Array {
    if (this.used + b.length > this.slab.length) {
      this.slab = new Uint8Array(Math.max(SLAB_BYTES, b.length));
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + b.length);
    out.set(b);
    this.used += b.length;
    return out;
  }
}

const SLAB_BYTES = 64 << 10;

async function listArchive(src: Pieces, keep: KeepBody, origin: StreamOrigin): Promise<Omit<CpioArchive, 'padding'>> {
  const entries: CpioEntry[] = [];
  const names = new Slabs();
  for (;;) {
    const at = src.pos;
    // The fixed part first, then as much of the name as it says: a header that crosses a
    // piece is joined in a copy, which should be a member's size, not PATH_MAX's.
    const fixed = await src.peek(HEADER_SIZE);
    const namesize = fixed.length === HEADER_SIZE ? Number.parseInt(latin1.decode(fixed.subarray(NAMESIZE_AT, NAMESIZE_AT + 8)), 16) : Number.NaN;
    const head = await src.peek(namesize >= 1 && namesize <= PATH_MAX ? align4(HEADER_SIZE + namesize) : HEADER_SIZE + PATH_MAX + 4);
    let h: MemberHeader;
    try {
      h = readMemberHeader(head, 0, origin);
    } catch {
      throw new NotListed();
    }
    if (h.magic === CRC_MAGIC || h.dataStart > head.length) throw new NotListed();
    const name = h.name;
    // A copy (a piece may be a Buffer, whose slice() is a view that would keep the piece
    // alive), into a slab shared by many names: an ArrayBuffer per name weighs more than the
    // name, and an image can hold hundreds of thousands of members.
    const rawName = names.copy(h.rawName);
    await src.skip(h.dataStart);
    if (name === TRAILER_NAME) {
      // As readCpioArchive: the trailer's body, and its padding as far as the stream goes.
      const data = await src.take(h.filesize);
      if (data === undefined) throw new NotListed();
      await src.skip((await src.peek(align4(h.filesize) - h.filesize)).length);
      return { entries, trailer: memberEntry(h, rawName, '', data, at) };
    }
    let path: string;
    try {
      path = admitMember(h, at, origin);
    } catch (e) {
      // Past the image's member limit the whole read would fail the same way, only later.
      if (e instanceof KabiError && e.code === 'LIMIT') throw e;
      throw new NotListed();
    }
    let data: Uint8Array | undefined = EMPTY;
    let skippedBytes: number | undefined;
    // Hard-linked members share one body, which any of them may carry: all are kept.
    if (h.filesize > 0 && (kindOf(h.mode) !== 'file' || h.nlink >= 2 || keep(path, h))) data = await src.take(h.filesize);
    else if (await src.skip(h.filesize)) skippedBytes = h.filesize;
    else data = undefined;
    if (data === undefined || !(await src.skip(align4(h.filesize) - h.filesize))) throw new NotListed();
    entries.push(memberEntry(h, rawName, path, data, at, skippedBytes || undefined));
  }
}
