import { KabiError } from '../errors.js';
import type { ByteSource } from './byte-source.js';
import type { HeaderFile } from './cpio-stream.js';
import { normaliseMemberPath, type PayloadWhere } from './entry.js';
import type { PackageLimits } from './limits.js';

/*
 * The parts of an RPM (rpm's lib/header.c, the "RPM file format" document) kabi needs: the
 * 96-byte lead, the signature header (padded to 8 bytes), the main header, then the
 * compressed cpio payload. A header is "8E AD E8 01", 4 reserved bytes, the number of index
 * entries and the size of the data store (both big-endian), the 16-byte index entries (tag,
 * type, offset, count) and the store. Every entry is checked against the store's bounds
 * before it is read.
 */

const LEAD_SIZE = 96;
const LEAD_MAGIC = [0xed, 0xab, 0xee, 0xdb];
const HEADER_MAGIC = [0x8e, 0xad, 0xe8, 0x01];
/** rpm's own caps: HEADER_TAGS_MAX and HEADER_DATA_MAX. */
const MAX_TAGS = 0xffff;
const MAX_DATA = 0x0fffffff;

const TAG = {
  NAME: 1000,
  VERSION: 1001,
  RELEASE: 1002,
  EPOCH: 1003,
  ARCH: 1022,
  OLDFILENAMES: 1027,
  FILESIZES: 1028,
  FILEMODES: 1030,
  FILEMTIMES: 1034,
  FILELINKTOS: 1036,
  FILEFLAGS: 1037,
  DIRINDEXES: 1116,
  BASENAMES: 1117,
  DIRNAMES: 1118,
  PAYLOADFORMAT: 1124,
  PAYLOADCOMPRESSOR: 1125,
  LONGFILESIZES: 5008,
} as const;

const TYPE = { CHAR: 1, INT8: 2, INT16: 3, INT32: 4, INT64: 5, STRING: 6, BIN: 7, STRING_ARRAY: 8, I18NSTRING: 9 } as const;
const TYPE_SIZE: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1 };

/** %ghost: listed in the header, never in the payload (created, if at all, by scriptlets). */
const RPMFILE_GHOST = 1 << 6;

interface RawEntry {
  type: number;
  offset: number;
  count: number;
}

/** One parsed header: typed accessors over its index and store. */
export class RpmHeader {
  constructor(
    private readonly entries: ReadonlyMap<number, RawEntry>,
    private readonly store: Uint8Array,
    private readonly file: string,
    private readonly at: number,
  ) {}

  private bad(tag: number, why: string): KabiError {
    return new KabiError('PACKAGE_FORMAT', `RPM header tag ${tag}: ${why}`, { file: this.file, offset: this.at });
  }

  has(tag: number): boolean {
    return this.entries.has(tag);
  }

  strings(tag: number): string[] | undefined {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    if (e.type !== TYPE.STRING && e.type !== TYPE.STRING_ARRAY && e.type !== TYPE.I18NSTRING) throw this.bad(tag, `type ${e.type} is not a string`);
    const out: string[] = [];
    let p = e.offset;
    const n = e.type === TYPE.STRING ? 1 : e.count;
    if (n > this.store.length) throw this.bad(tag, `count ${n} exceeds the store`);
    for (let i = 0; i < n; i++) {
      const nul = this.store.indexOf(0, p);
      if (nul < 0) throw this.bad(tag, 'string runs past the end of the store');
      out.push(Buffer.from(this.store.buffer, this.store.byteOffset + p, nul - p).toString('utf8'));
      p = nul + 1;
    }
    return out;
  }

  string(tag: number): string | undefined {
    return this.strings(tag)?.[0];
  }

  numbers(tag: number): number[] | undefined {
    const e = this.entries.get(tag);
    if (!e) return undefined;
    const size = TYPE_SIZE[e.type];
    if (size === undefined || e.type === TYPE.BIN) throw this.bad(tag, `type ${e.type} is not a number`);
    if (e.offset % size !== 0) throw this.bad(tag, 'misaligned');
    if (e.offset + size * e.count > this.store.length) throw this.bad(tag, 'runs past the end of the store');
    const v = new DataView(this.store.buffer, this.store.byteOffset + e.offset, size * e.count);
    const out = new Array<number>(e.count);
    for (let i = 0; i < e.count; i++) {
      if (size === 1) out[i] = v.getUint8(i);
      else if (size === 2) out[i] = v.getUint16(i * 2);
      else if (size === 4) out[i] = v.getUint32(i * 4);
      else {
        const big = v.getBigUint64(i * 8);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw this.bad(tag, 'value too large');
        out[i] = Number(big);
      }
    }
    return out;
  }
}

/** Reads one header at `at`; returns it and the offset just past it. */
async function readHeader(src: ByteSource, at: number, what: string, limits: Pick<PackageLimits, 'maxMetadataBytes'>): Promise<{ header: RpmHeader; end: number }> {
  const intro = await src.read(at, 16, what);
  if (!HEADER_MAGIC.every((m, i) => intro[i] === m)) throw new KabiError('PACKAGE_FORMAT', `bad ${what} magic`, { file: src.file, offset: at });
  const dv = new DataView(intro.buffer, intro.byteOffset, 16);
  const nindex = dv.getUint32(8);
  const hsize = dv.getUint32(12);
  if (nindex < 1 || nindex > MAX_TAGS) throw new KabiError('PACKAGE_FORMAT', `${what} has ${nindex} tags (rpm allows 1 to ${MAX_TAGS})`, { file: src.file, offset: at + 8 });
  if (hsize > MAX_DATA || hsize + nindex * 16 > limits.maxMetadataBytes) throw new KabiError('PACKAGE_FORMAT', `${what} data store of ${hsize} bytes is over the limit`, { file: src.file, offset: at + 12 });
  const index = await src.read(at + 16, nindex * 16, what);
  const store = await src.read(at + 16 + nindex * 16, hsize, what);
  const iv = new DataView(index.buffer, index.byteOffset, index.length);
  const entries = new Map<number, RawEntry>();
  for (let i = 0; i < nindex; i++) {
    const tag = iv.getUint32(i * 16);
    const type = iv.getUint32(i * 16 + 4);
    const offset = iv.getUint32(i * 16 + 8);
    const count = iv.getUint32(i * 16 + 12);
    if (type > TYPE.I18NSTRING || offset > hsize || count > hsize + 1) {
      throw new KabiError('PACKAGE_FORMAT', `${what} entry ${i} (tag ${tag}) lies outside its data store`, { file: src.file, offset: at + 16 + i * 16 });
    }
    if (!entries.has(tag)) entries.set(tag, { type, offset, count });
  }
  return { header: new RpmHeader(entries, store, src.file, at), end: at + 16 + nindex * 16 + hsize };
}

export interface RpmInfo {
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  /** The file list of the header, in header order (what a stripped cpio member's index refers to). */
  readonly files: readonly HeaderFile[];
  /** Paths of the files that are in the payload (ghosts left out). */
  readonly payloadPaths: readonly string[];
  readonly payloadOffset: number;
  /** PAYLOADCOMPRESSOR as written ("xz", "zstd", "gzip", "bzip2", "lzma"). */
  readonly compressor: string;
}

export async function readRpm(src: ByteSource, limits: Pick<PackageLimits, 'maxMetadataBytes' | 'maxEntries' | 'maxPathBytes'>): Promise<RpmInfo> {
  const lead = await src.read(0, LEAD_SIZE, 'RPM lead');
  if (!LEAD_MAGIC.every((m, i) => lead[i] === m)) throw new KabiError('PACKAGE_FORMAT', 'not an RPM (no lead magic)', { file: src.file, offset: 0 });
  if (lead[4] !== 3 && lead[4] !== 4) throw new KabiError('PACKAGE_FORMAT', `RPM format version ${lead[4]} is not supported`, { file: src.file, offset: 4 });
  const sig = await readHeader(src, LEAD_SIZE, 'RPM signature header', limits);
  const mainAt = sig.end + ((8 - (sig.end % 8)) % 8);
  const { header: h, end } = await readHeader(src, mainAt, 'RPM header', limits);
  const format = h.string(TAG.PAYLOADFORMAT) ?? 'cpio';
  if (format !== 'cpio') throw new KabiError('PACKAGE_FORMAT', `RPM payload format "${format}" is not supported (only cpio)`, { file: src.file, offset: mainAt });

  let paths: string[];
  const base = h.strings(TAG.BASENAMES);
  const where: PayloadWhere = { file: src.file, label: 'RPM header file list', base: mainAt };
  if (base) {
    const dirs = h.strings(TAG.DIRNAMES) ?? [];
    const di = h.numbers(TAG.DIRINDEXES) ?? [];
    if (di.length !== base.length) throw new KabiError('PACKAGE_FORMAT', 'RPM header: DIRINDEXES and BASENAMES differ in length', { file: src.file, offset: mainAt });
    paths = base.map((b, i) => {
      const d = dirs[di[i]!];
      if (d === undefined) throw new KabiError('PACKAGE_FORMAT', `RPM header: file ${i} names directory ${di[i]}, there are ${dirs.length}`, { file: src.file, offset: mainAt });
      return d + b;
    });
  } else {
    paths = h.strings(TAG.OLDFILENAMES) ?? [];
  }
  if (paths.length > limits.maxEntries) throw new KabiError('PACKAGE_FORMAT', `RPM header lists ${paths.length} files, more than ${limits.maxEntries}`, { file: src.file, offset: mainAt });
  const n = paths.length;
  const column = (vals: number[] | undefined, tag: string) => {
    if (vals === undefined) return new Array<number>(n).fill(0);
    if (vals.length !== n) throw new KabiError('PACKAGE_FORMAT', `RPM header: ${tag} lists ${vals.length} values for ${n} files`, { file: src.file, offset: mainAt });
    return vals;
  };
  const sizes = column(h.numbers(TAG.LONGFILESIZES) ?? h.numbers(TAG.FILESIZES), 'FILESIZES');
  const modes = column(h.numbers(TAG.FILEMODES), 'FILEMODES');
  const mtimes = column(h.numbers(TAG.FILEMTIMES), 'FILEMTIMES');
  const flags = column(h.numbers(TAG.FILEFLAGS), 'FILEFLAGS');
  const files: HeaderFile[] = paths.map((p, i) => {
    if (Buffer.byteLength(p) > limits.maxPathBytes) throw new KabiError('PACKAGE_FORMAT', `RPM header: path of file ${i} is longer than ${limits.maxPathBytes} bytes`, { file: src.file, offset: mainAt });
    return { path: normaliseMemberPath(p, where, 0), mode: modes[i]!, size: sizes[i]!, mtime: mtimes[i]! };
  });
  return {
    name: h.string(TAG.NAME) ?? '',
    version: evr(h.numbers(TAG.EPOCH)?.[0], h.string(TAG.VERSION) ?? '', h.string(TAG.RELEASE)),
    arch: h.string(TAG.ARCH) ?? '',
    files,
    payloadPaths: files.filter((_, i) => (flags[i]! & RPMFILE_GHOST) === 0).map((f) => f.path),
    payloadOffset: end,
    compressor: h.string(TAG.PAYLOADCOMPRESSOR) ?? 'gzip',
  };
}

/** [epoch:]version[-release], as rpm -q prints it. */
function evr(epoch: number | undefined, version: string, release: string | undefined): string {
  return `${epoch !== undefined ? `${epoch}:` : ''}${version}${release !== undefined ? `-${release}` : ''}`;
}
