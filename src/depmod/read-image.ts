import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { nodeFs, notAFile, overBudget, READ_BUDGETS, readRegularFile, type KabiFs } from '../fs.js';

/**
 * The bytes of a module file, as far as depmod needs them. An uncompressed ELF read through
 * node:fs is read in parts: the ELF and section headers, the symbol table and its strings,
 * .modinfo, __versions, __ksymtab_strings and the sections holding CRC values, into a buffer
 * of the file's size. depmod reads nothing else (kmod maps the
 * whole file but only touches these), and code and data make up most of a module, so this
 * reads a fraction of the bytes. Anything unusual (compressed, not ELF, inconsistent headers)
 * is read whole and left to the parser to judge.
 */
export async function readModuleImage(fs: KabiFs, path: string): Promise<Uint8Array> {
  const t = performance.now();
  try {
    return await readRegularFile(fs, path, READ_BUDGETS.module);
  } finally {
    if (fs === nodeFs) readClock.readMs += performance.now() - t;
  }
}

/**
 * Where this thread's time reading module files went (milliseconds, added up since it
 * started): reading bytes, and decompressing them (module-summary.ts). A batch reader
 * reports the difference over its batch, for a run's stats.
 */
export const readClock = { readMs: 0, decompressMs: 0 };

/**
 * Read the parts of an uncompressed ELF module (node:fs only) into a scratch buffer and hand
 * it to `use` at once; the buffer is reused for the next file, so `use` must copy what it
 * keeps. Returns undefined, having called nothing, when the file is not a plain ELF.
 */
export function withModulePartsSync<T>(path: string, use: (image: Uint8Array) => T): T | undefined {
  const t = performance.now();
  // Non-blocking: a FIFO put in a module's place is refused, not waited on.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  let image: Buffer | undefined;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw notAFile(path, READ_BUDGETS.module, st);
    if (st.size > READ_BUDGETS.module.maxBytes) throw overBudget(path, READ_BUDGETS.module);
    image = readParts(fd);
  } finally {
    closeSync(fd);
    readClock.readMs += performance.now() - t;
  }
  return image === undefined ? undefined : use(image);
}

let scratch = Buffer.alloc(1 << 20);

const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
const WANTED = new Set(['.modinfo', '__versions', '__ksymtab_strings']);

function readParts(fd: number): Buffer | undefined {
  const size = fstatSync(fd).size;
  if (size < 64) return undefined;
  const head = Buffer.alloc(64);
  readSync(fd, head, 0, 64, 0);
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

  // Bytes outside the parts read are stale, never zero: nothing reads them.
  if (scratch.length < size) scratch = Buffer.alloc(Math.max(size, scratch.length * 2));
  const buf = scratch.subarray(0, size);
  head.copy(buf, 0);
  const load = (offset: number, length: number) => {
    if (length <= 0 || offset + length > size) return;
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, offset + done, length - done, offset + done);
      if (n <= 0) break;
      done += n;
    }
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
  const loadSection = (i: number) => {
    const s = sections[i];
    if (s && s.type !== SHT_NOBITS) load(s.offset, s.size);
  };
  const strtab = sections[shstrndx]!;
  loadSection(shstrndx);
  const nameOf = (s: { name: number }) => {
    const at = strtab.offset + s.name;
    if (s.name >= strtab.size) return '';
    const end = buf.indexOf(0, at);
    return buf.toString('latin1', at, end < 0 || end > strtab.offset + strtab.size ? at : end);
  };
  const crcHolders = new Set<number>();
  sections.forEach((s, i) => {
    const name = nameOf(s);
    if (s.type === SHT_SYMTAB) {
      loadSection(i);
      loadSection(s.link);
      // The CRC of a __crc_ symbol may sit in any section the symbol points into.
      const entsize = is64 ? 24 : 16;
      const str = sections[s.link];
      if (!str) return;
      for (let e = s.offset + entsize; e + entsize <= s.offset + s.size; e += entsize) {
        const nameOff = u32(buf, e);
        const p = str.offset + nameOff;
        if (nameOff + 6 > str.size || buf[p] !== 0x5f || buf[p + 1] !== 0x5f || buf[p + 2] !== 0x63 || buf[p + 3] !== 0x72 || buf[p + 4] !== 0x63 || buf[p + 5] !== 0x5f) continue;
        crcHolders.add(u16(buf, e + (is64 ? 6 : 14)));
      }
    } else if (WANTED.has(name) || name.includes('kcrctab')) loadSection(i);
  });
  for (const i of crcHolders) if (i > 0 && i < shnum) loadSection(i);
  return buf;
}
