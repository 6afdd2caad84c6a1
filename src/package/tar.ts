import type { PackageLimits } from './limits.js';
import { MemberBody, normaliseMemberPath, payloadError, S_IFDIR, S_IFLNK, S_IFREG, type EntryType, type EntryVisitor, type PayloadWhere } from './entry.js';

/*
 * A streaming reader of the tar archives in a .deb (data.tar, control.tar): POSIX ustar with
 * GNU long names ('L', 'K') as dpkg-deb writes them, and pax extended headers ('x': path,
 * linkpath, size, mtime) as other tools write them. Chunks of the decompressed stream are
 * pushed in as they arrive; nothing but the current 512-byte header (or long name / pax
 * record) is buffered, so a 400 MB payload is read in constant memory.
 */

const BLOCK = 512;
/** A pax or long-name block larger than this is hostile, not a path. */
const MAX_EXTENDED = 1024 * 1024;

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

type State = 'header' | 'content' | 'extended' | 'end';

interface Pending {
  path?: string;
  linkpath?: string;
  size?: number;
  mtime?: number;
}

export class TarReader {
  private state: State = 'header';
  /** Bytes consumed from the stream so far. */
  private pos = 0;
  private readonly block = new Uint8Array(BLOCK);
  private blockFill = 0;
  private readonly body = new MemberBody();
  private consumer: ((chunk: Uint8Array) => void) | undefined;
  private extended: { kind: 'L' | 'K' | 'x' | 'g'; parts: Uint8Array[]; size: number; at: number } | undefined;
  private pending: Pending = {};
  private zeroBlocks = 0;
  private entries = 0;

  constructor(
    private readonly visitor: EntryVisitor,
    private readonly where: PayloadWhere,
    private readonly limits: Pick<PackageLimits, 'maxEntries' | 'maxPathBytes'>,
  ) {}

  push(chunk: Uint8Array): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.state === 'end') {
        // After the end-of-archive blocks tar pads to its record size; whatever follows is ignored, as by tar.
        this.pos += chunk.length - p;
        return;
      }
      if (this.state === 'header') {
        const n = Math.min(BLOCK - this.blockFill, chunk.length - p);
        this.block.set(chunk.subarray(p, p + n), this.blockFill);
        this.blockFill += n;
        p += n;
        this.pos += n;
        if (this.blockFill === BLOCK) {
          this.blockFill = 0;
          this.header(this.pos - BLOCK);
        }
        continue;
      }
      // content or extended data, then its padding
      const before = p;
      p = this.body.take(chunk, p, (piece) => {
        if (this.state === 'extended') this.extended!.parts.push(piece.slice());
        else this.consumer?.(piece);
      });
      this.pos += p - before;
      if (this.body.done) this.finishMember();
    }
    // A member whose content and padding are empty ends here, not on the next push.
    if (this.state !== 'header' && this.state !== 'end' && this.body.done) this.finishMember();
  }

  private finishMember(): void {
    if (this.state === 'extended') this.finishExtended();
    this.consumer = undefined;
    this.state = 'header';
  }

  /** The stream ended: anything but a complete archive is truncated. */
  end(): void {
    if (this.state === 'end') return;
    if (this.state === 'header' && this.blockFill === 0 && this.zeroBlocks > 0) return; // one zero block, as some writers leave
    if (this.state === 'header' && this.blockFill === 0 && this.entries === 0 && this.pos === 0) throw payloadError(this.where, 0, 'empty tar archive');
    throw payloadError(this.where, this.pos, 'tar archive is truncated (no end-of-archive blocks)');
  }

  private header(at: number): void {
    const b = this.block;
    if (b.every((x) => x === 0)) {
      if (++this.zeroBlocks === 2) this.state = 'end';
      return;
    }
    if (this.zeroBlocks > 0) throw payloadError(this.where, at, 'tar header after an end-of-archive block');
    this.checkSum(at);
    const type = String.fromCharCode(b[156]!);
    const ownSize = this.number(124, 12, 'size', at);
    if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
      const size = ownSize;
      const cap = type === 'x' || type === 'g' ? MAX_EXTENDED : this.limits.maxPathBytes + 1;
      if (size > cap) throw payloadError(this.where, at, `${type === 'x' || type === 'g' ? 'pax header' : 'GNU long name'} of ${size} bytes (limit ${cap})`);
      this.extended = { kind: type, parts: [], size, at };
      this.body.start(size, pad(size));
      this.state = 'extended';
      return;
    }
    const size = this.pending.size ?? ownSize;
    if (++this.entries > this.limits.maxEntries) throw payloadError(this.where, at, `more than ${this.limits.maxEntries} entries`);
    let name = this.pending.path ?? this.field(0, 100);
    const magic = latin1.decode(b.subarray(257, 263));
    if (this.pending.path === undefined && magic === 'ustar\0') {
      const prefix = this.field(345, 155);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    const link = this.pending.linkpath ?? this.field(157, 100);
    const mtime = this.pending.mtime ?? this.number(136, 12, 'mtime', at);
    const perm = this.number(100, 8, 'mode', at) & 0o7777;
    this.pending = {};
    if (Buffer.byteLength(name) > this.limits.maxPathBytes || Buffer.byteLength(link) > this.limits.maxPathBytes) {
      throw payloadError(this.where, at, `path longer than ${this.limits.maxPathBytes} bytes`);
    }
    const path = normaliseMemberPath(name, this.where, at);
    let et: EntryType;
    let mode: number;
    switch (type) {
      case '0':
      case '\0':
      case '7':
        et = 'file';
        mode = S_IFREG | perm;
        break;
      case '5':
        et = 'dir';
        mode = S_IFDIR | perm;
        break;
      case '2':
        et = 'symlink';
        mode = S_IFLNK | 0o777;
        break;
      case '1':
        et = 'hardlink';
        mode = S_IFREG | perm;
        break;
      default:
        et = 'other';
        mode = perm;
    }
    // Only regular files carry contents; a hard link's or a device's size field is ignored, as by GNU tar.
    const contentSize = et === 'file' || et === 'other' ? size : 0;
    const dataOffset = at + BLOCK;
    const consumer = this.visitor.entry({
      path,
      type: et,
      mode,
      size: et === 'file' ? size : 0,
      mtime,
      ...(et === 'symlink' ? { linkTarget: link } : {}),
      ...(et === 'hardlink' ? { linkTarget: normaliseMemberPath(link, this.where, at) } : {}),
      dataOffset,
    });
    this.consumer = et === 'file' ? consumer : undefined;
    this.body.start(contentSize, pad(contentSize));
    this.state = contentSize === 0 ? 'header' : 'content';
  }

  private finishExtended(): void {
    const x = this.extended!;
    this.extended = undefined;
    const data = Buffer.concat(x.parts);
    if (x.kind === 'L' || x.kind === 'K') {
      const nul = data.indexOf(0);
      const text = utf8.decode(nul < 0 ? data : data.subarray(0, nul));
      if (x.kind === 'L') this.pending.path = text;
      else this.pending.linkpath = text;
      return;
    }
    if (x.kind === 'g') return; // global defaults: nothing kabi reads depends on them
    for (const [key, value] of parsePax(data, this.where, x.at)) {
      if (key === 'path') this.pending.path = value;
      else if (key === 'linkpath') this.pending.linkpath = value;
      else if (key === 'size') {
        if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw payloadError(this.where, x.at, `bad pax size "${value}"`);
        this.pending.size = Number(value);
      } else if (key === 'mtime') {
        const m = Number(value);
        if (Number.isFinite(m)) this.pending.mtime = Math.floor(m);
      }
    }
  }

  private checkSum(at: number): void {
    const b = this.block;
    const stored = this.number(148, 8, 'checksum', at);
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < BLOCK; i++) {
      const v = i >= 148 && i < 156 ? 32 : b[i]!;
      unsigned += v;
      signed += v > 127 ? v - 256 : v;
    }
    if (stored !== unsigned && stored !== signed) throw payloadError(this.where, at, `tar header checksum mismatch (stored ${stored}, computed ${unsigned})`);
  }

  private field(at: number, len: number): string {
    const s = this.block.subarray(at, at + len);
    const nul = s.indexOf(0);
    return utf8.decode(nul < 0 ? s : s.subarray(0, nul));
  }

  /** An octal field, or GNU's base-256 form (high bit of the first byte set) for large values. */
  private number(at: number, len: number, what: string, headerAt: number): number {
    const s = this.block.subarray(at, at + len);
    if (s[0]! & 0x80) {
      if (s[0]! & 0x40) throw payloadError(this.where, headerAt, `negative tar ${what}`);
      let v = s[0]! & 0x3f;
      for (let i = 1; i < len; i++) {
        v = v * 256 + s[i]!;
        if (!Number.isSafeInteger(v)) throw payloadError(this.where, headerAt, `tar ${what} is too large`);
      }
      return v;
    }
    const text = latin1.decode(s).replace(/[\0 ]+$/, '').replace(/^ +/, '');
    if (text === '') return 0;
    if (!/^[0-7]+$/.test(text)) throw payloadError(this.where, headerAt, `bad tar ${what} field "${text.replace(/[^\x20-\x7e]/g, '?')}"`);
    return parseInt(text, 8);
  }
}

function pad(n: number): number {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}

/** pax records: "<length> <key>=<value>\n", the length counting the whole record. */
function parsePax(data: Uint8Array, where: PayloadWhere, at: number): [string, string][] {
  const out: [string, string][] = [];
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    if (sp < 0 || sp - p > 10) throw payloadError(where, at, 'bad pax record length');
    const len = Number(latin1.decode(data.subarray(p, sp)));
    if (!Number.isSafeInteger(len) || len <= sp - p + 1 || p + len > data.length || data[p + len - 1] !== 0x0a) throw payloadError(where, at, 'bad pax record');
    const rec = utf8.decode(data.subarray(sp + 1, p + len - 1));
    const eq = rec.indexOf('=');
    if (eq <= 0) throw payloadError(where, at, 'pax record without a key');
    out.push([rec.slice(0, eq), rec.slice(eq + 1)]);
    p += len;
  }
  return out;
}
