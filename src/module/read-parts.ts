import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { notAFile, OPEN_FOR_READ, overBudget, READ_BUDGETS } from '../fs.js';
import { SIGNATURE_MARKER } from './signature.js';

/** pread(2): up to `length` bytes of the file from `position` into `buf` at `offset`; 0 at the end. */
export type ReadAt = (buf: Buffer, offset: number, length: number, position: number) => number;

/**
 * The parts of an uncompressed ELF module that kabi's parsers look at, read from a file into a
 * buffer of the file's size: the ELF and section headers, the section names, the symbol table
 * and its strings, .modinfo, __versions and the extended version tables, the export tables'
 * strings and flags, struct module, the sections that `__crc_` and `__kstrtabns_` symbols
 * point into, and the signature appended after the ELF image.
 *
 * Code, data and relocations make up most of a module and nothing reads them, so this reads
 * a fraction of the bytes (kmod maps the whole file, and touches only these pages). Bytes
 * outside the parts are left as the buffer had them: a parser must not look there, and
 * test/module/read-parts.test.ts checks, on every module of the real corpus, that a parse of
 * the parts fills the unread bytes with poison and still gives what a parse of the whole file
 * gives.
 *
 * Anything unusual (not ELF, headers that do not fit the file) returns undefined, and the
 * caller reads the file whole: the parser then names the problem as it always does.
 */
export function readModuleParts(read: ReadAt, size: number, into: (size: number) => Buffer): Buffer | undefined {
  if (size < 64) return undefined;
  const head = Buffer.alloc(64);
  if (readFull(read, head, 0, 64, 0) !== 64) return undefined;
  if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return undefined;
  const is64 = head[4] === 2;
  const le = head[5] === 1;
  if ((head[4] !== 1 && !is64) || (head[5] !== 1 && head[5] !== 2)) return undefined;
  const u16 = (b: Buffer, at: number) => (le ? b.readUInt16LE(at) : b.readUInt16BE(at));
  const u32 = (b: Buffer, at: number) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const addr = (b: Buffer, at: number) => (is64 ? Number(le ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at)) : u32(b, at));
  const shoff = addr(head, is64 ? 40 : 32);
  const shentsize = u16(head, is64 ? 58 : 46);
  const shnum = u16(head, is64 ? 60 : 48);
  const shstrndx = u16(head, is64 ? 62 : 50);
  if (shentsize !== (is64 ? 64 : 40) || shnum === 0 || shstrndx >= shnum || shoff + shnum * shentsize > size) return undefined;

  const buf = into(size);
  head.copy(buf, 0);
  let short = false;
  const load = (offset: number, length: number) => {
    if (length <= 0 || offset + length > size) return;
    if (readFull(read, buf, offset, length, offset) !== length) short = true;
  };
  load(shoff, shnum * shentsize);
  const sections = Array.from({ length: shnum }, (_, i) => {
    const h = shoff + i * shentsize;
    return {
      name: u32(buf, h),
      type: u32(buf, h + 4),
      offset: addr(buf, h + (is64 ? 24 : 16)),
      size: addr(buf, h + (is64 ? 32 : 20)),
      link: u32(buf, h + (is64 ? 40 : 24)),
    };
  });
  const loaded = new Set<number>();
  const loadSection = (i: number) => {
    const s = sections[i];
    if (s && s.type !== SHT_NOBITS && !loaded.has(i)) {
      loaded.add(i);
      load(s.offset, s.size);
    }
  };
  const names = sections[shstrndx]!;
  loadSection(shstrndx);
  const nameOf = (s: { name: number }) => {
    if (s.name >= names.size) return '';
    const at = names.offset + s.name;
    const end = buf.indexOf(0, at);
    return buf.toString('latin1', at, end < 0 || end > names.offset + names.size ? at : end);
  };
  const pointedTo = new Set<number>();
  sections.forEach((s, i) => {
    const name = nameOf(s);
    if (s.type === SHT_SYMTAB) {
      loadSection(i);
      loadSection(s.link);
      const str = sections[s.link];
      if (!str) return;
      // The value of a __crc_ symbol, or the namespace of a __kstrtabns_ one, sits in
      // whichever section the symbol points into.
      const entsize = is64 ? 24 : 16;
      for (let e = s.offset + entsize; e + entsize <= s.offset + s.size; e += entsize) {
        const nameOff = u32(buf, e);
        if (nameOff + 6 > str.size) continue;
        const p = str.offset + nameOff;
        if (startsWith(buf, p, CRC) || (nameOff + KSTRTABNS.length <= str.size && startsWith(buf, p, KSTRTABNS))) {
          pointedTo.add(u16(buf, e + (is64 ? 6 : 14)));
        }
      }
    } else if (WANTED.has(name)) loadSection(i);
  });
  for (const i of pointedTo) if (i > 0 && i < shnum) loadSection(i);
  loadSignature(read, buf, size);
  return short ? undefined : buf;
}

/**
 * The parts of a module file on node:fs, handed to `use` at once in a buffer reused for the
 * next file (so `use` must copy what it keeps); undefined, having called nothing, when the
 * file is not a plain ELF. A FIFO or device is refused without blocking (NOT_A_FILE), and a
 * file over READ_BUDGETS.module is LIMIT, as readRegularFile refuses them.
 */
export function withModulePartsSync<T>(path: string, use: (image: Uint8Array) => T): T | undefined {
  const fd = openSync(path, OPEN_FOR_READ);
  let image: Buffer | undefined;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw notAFile(path, READ_BUDGETS.module, st);
    if (st.size > READ_BUDGETS.module.maxBytes) throw overBudget(path, READ_BUDGETS.module);
    const read: ReadAt = (b, at, n, pos) => readSync(fd, b, at, n, pos);
    image = st.size <= WHOLE_UP_TO ? readWhole(read, st.size) : readModuleParts(read, st.size, scratchOf);
  } finally {
    closeSync(fd);
  }
  return image === undefined ? undefined : use(image);
}

/**
 * Files up to this size are read whole, in one read(2): on the 6.1 tree (4023 modules, page
 * cache warm), picking the parts out of every file took 190-230 ms against 100 ms for whole
 * reads, the bookkeeping and the ten reads per file costing more than the bytes saved. The
 * 6 % of modules above it hold half the bytes, and for them the parts pay.
 */
const WHOLE_UP_TO = 256 * 1024;

/** A small file in the scratch buffer, when it is an ELF file (a compressed one is read elsewhere). */
function readWhole(read: ReadAt, size: number): Buffer | undefined {
  const buf = scratchOf(size);
  if (readFull(read, buf, 0, size, 0) !== size) return undefined;
  return size >= 4 && buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46 ? buf : undefined;
}

let scratch = Buffer.alloc(1 << 20);

function scratchOf(size: number): Buffer {
  if (scratch.length < size) scratch = Buffer.alloc(Math.max(size, scratch.length * 2));
  return scratch.subarray(0, size);
}

const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
const WANTED = new Set([
  '.modinfo',
  '__versions',
  '__version_ext_crcs',
  '__version_ext_names',
  '__ksymtab_strings',
  '__kflagstab',
  '.gnu.linkonce.this_module',
]);
const CRC = Buffer.from('__crc_', 'latin1');
const KSTRTABNS = Buffer.from('__kstrtabns_', 'latin1');
const MARKER = Buffer.from(SIGNATURE_MARKER, 'latin1');
/** struct module_signature, just before the marker; its last 4 bytes are the big-endian length. */
const SIG_HEADER = 12;

function startsWith(buf: Buffer, at: number, prefix: Buffer): boolean {
  for (let k = 0; k < prefix.length; k++) if (buf[at + k] !== prefix[k]) return false;
  return true;
}

/** The signature trailer: marker, header and PKCS#7 blob, when the file ends with the marker. */
function loadSignature(read: ReadAt, buf: Buffer, size: number): void {
  const tail = SIG_HEADER + MARKER.length;
  if (size < tail) return;
  readFull(read, buf, size - tail, tail, size - tail);
  if (buf.compare(MARKER, 0, MARKER.length, size - MARKER.length, size) !== 0) return;
  const length = buf.readUInt32BE(size - MARKER.length - 4);
  const from = size - tail - length;
  if (length > 0 && from >= 0) readFull(read, buf, from, length, from);
}

/** Bytes read at `position` until `length` or the end of the file. */
function readFull(read: ReadAt, buf: Buffer, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = read(buf, offset + done, length - done, position + done);
    if (n <= 0) break;
    done += n;
  }
  return done;
}
