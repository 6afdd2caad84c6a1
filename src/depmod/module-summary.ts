import { depmodDependencySymbols } from '../compat/depmod.js';
import { kmodExports } from '../compat/engine.js';
import { SHN_ABS, SHN_UNDEF, SHT_NOBITS, SHT_NULL, SHT_STRTAB, SHT_SYMTAB, STB_WEAK, STT_SPARC_REGISTER } from '../elf/constants.js';
import { ElfFile, latin1, type SymbolTable } from '../elf/reader.js';
import { KabiError } from '../errors.js';
import { readCrcSymbols, readKsymtabStrings } from '../module/exports.js';
import { readVersions, type ModVersion } from '../module/modversions.js';
import { decompressModules, type KernelModule, type UndefinedSymbol } from '../module/read-module.js';
import type { Interner } from './interner.js';
import { readClock } from './read-image.js';

/**
 * What depmod takes from one module file, and nothing more: the symbols it exports (kmod's
 * view, `__crc_` symbols or `__ksymtab_strings`), the symbols it needs (with their CRCs and
 * weak binding), and the `.modinfo` entries depmod writes out (alias, softdep, weakdep).
 * Strings are numbers of an Interner, kept in columns, so thousands of summaries cache and
 * reload cheaply.
 */
export interface ModuleSummary {
  readonly exports: Uint32Array;
  readonly exportCrcs: BigUint64Array;
  /** kmod_elf_get_dependency_symbols(): undefined symbols, then unreferenced __versions entries. */
  readonly deps: Uint32Array;
  readonly depCrcs: BigUint64Array;
  /** 1 where the symbol is bound weak. */
  readonly depWeak: Uint8Array;
  /** Flattened (key, value) pairs of the kept `.modinfo` entries, in file order. */
  readonly info: Uint32Array;
  /** kmod could not load the file at all: the strerror() text depmod prints, e.g. "Exec format error". */
  readonly error?: string;
}

/** A summary of a file kmod cannot read. */
export function unreadableSummary(error: string): ModuleSummary {
  return {
    exports: new Uint32Array(0),
    exportCrcs: new BigUint64Array(0),
    deps: new Uint32Array(0),
    depCrcs: new BigUint64Array(0),
    depWeak: new Uint8Array(0),
    info: new Uint32Array(0),
    error,
  };
}

/** The modinfo keys any depmod output is made of. */
const KEPT_INFO = new Set(['alias', 'softdep', 'weakdep']);

/** Summarise a module file's bytes (compressed or not), as kmod 30's depmod reads them. */
export async function summarizeModuleBytes(bytes: Uint8Array, strings: Interner, file?: string): Promise<ModuleSummary> {
  return (await summarizeModuleFiles([{ bytes, file }], strings))[0]!;
}

/**
 * summarizeModuleBytes() for many files, as a tree is read: the compressed ones decompressed
 * together (decompressModules), each summarised as soon as its bytes are there and then let go.
 */
export async function summarizeModuleFiles(files: readonly { bytes: Uint8Array; file?: string | undefined }[], strings: Interner): Promise<ModuleSummary[]> {
  const sums: ModuleSummary[] = new Array<ModuleSummary>(files.length);
  const nonEmpty: { bytes: Uint8Array; file: string | undefined; at: number }[] = [];
  files.forEach((f, at) => {
    if (f.bytes.length === 0) sums[at] = unreadableSummary('Invalid argument');
    else nonEmpty.push({ bytes: f.bytes, file: f.file, at });
  });
  let thrown: { e: unknown } | undefined;
  let summarizing = 0;
  const t = performance.now();
  await decompressModules(nonEmpty, (i, r) => {
    const { at, file } = nonEmpty[i]!;
    const s = performance.now();
    if ('data' in r) sums[at] = summarizeElf(r.data, strings, file);
    // kmod says EINVAL for anything it cannot decompress; a file past kabi's budget says so.
    else if (r.error instanceof KabiError) sums[at] = unreadableSummary(r.error.code === 'LIMIT' ? r.error.detail : 'Invalid argument');
    else thrown ??= { e: r.error };
    summarizing += performance.now() - s;
  }, true);
  readClock.decompressMs += performance.now() - t - summarizing;
  if (thrown !== undefined) throw thrown.e;
  return sums;
}

/**
 * The summary of a module already parsed by the module reader (as the reader's worker threads
 * return them). The reader refuses some files kmod still reads; callers fall back to
 * summarizeModuleBytes() for those.
 */
export function summaryFromKernelModule(mod: Pick<KernelModule, 'crcSymbols' | 'ksymtabStrings' | 'undefinedSymbols' | 'versions' | 'modinfo'>, strings: Interner): ModuleSummary {
  const exports = kmodExports(mod);
  const deps = depmodDependencySymbols(mod);
  const info: number[] = [];
  for (const [k, v] of mod.modinfo.entries) {
    if (KEPT_INFO.has(k)) info.push(strings.id(k), strings.id(v));
  }
  return summaryOf(exports, deps, () => Uint32Array.from(info), strings);
}

/** `info` is called last: strings are numbered in the order they are first met. */
function summaryOf(exports: readonly { symbol: string; crc: bigint }[], deps: readonly { name: string; crc: bigint; weak: boolean }[], info: () => Uint32Array, strings: Interner): ModuleSummary {
  return {
    exports: Uint32Array.from(exports, (e) => strings.id(e.symbol)),
    exportCrcs: BigUint64Array.from(exports, (e) => BigInt.asUintN(64, e.crc)),
    deps: Uint32Array.from(deps, (d) => strings.id(d.name)),
    depCrcs: BigUint64Array.from(deps, (d) => BigInt.asUintN(64, d.crc)),
    depWeak: Uint8Array.from(deps, (d) => (d.weak ? 1 : 0)),
    info: info(),
  };
}

/** Summarise an uncompressed module image. Pure. */
export function summarizeElf(data: Uint8Array, strings: Interner, file?: string): ModuleSummary {
  // kmod's elf_identify(): too short or no ELF magic is ENOEXEC, any other structural fault EINVAL.
  if (data.length <= 16 || data[0] !== 0x7f || data[1] !== 0x45 || data[2] !== 0x4c || data[3] !== 0x46) {
    return unreadableSummary(data.length === 0 ? 'Invalid argument' : 'Exec format error');
  }
  return summarizeElfFast(data, strings) ?? summarizeElfGeneral(data, strings, file);
}

/** summarizeElf() the general way, for any ELF (bounds-checked readers, each part on its own). */
export function summarizeElfGeneral(data: Uint8Array, strings: Interner, file?: string): ModuleSummary {
  let elf: ElfFile;
  try {
    elf = new ElfFile(data, file);
  } catch (e) {
    if (e instanceof KabiError) return unreadableSummary('Invalid argument');
    throw e;
  }
  // Each part is read on its own, as kmod asks for them separately: one broken table only
  // loses what depends on it.
  let symtab: SymbolTable | undefined;
  try {
    symtab = elf.symbolTable();
  } catch (e) {
    if (!(e instanceof KabiError)) throw e;
  }
  const exports = attempt(() => readExportList(elf, symtab), []);
  const deps = symtab ? attempt(() => readDependencies(elf, symtab), []) : [];
  return summaryOf(exports, deps, () => Uint32Array.from(attempt(() => readInfo(elf), []), (v) => strings.id(v)), strings);
}

function attempt<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof KabiError) return fallback;
    throw e;
  }
}

function readExportList(elf: ElfFile, symtab: SymbolTable | undefined): { symbol: string; crc: bigint }[] {
  const crcSymbols = symtab ? readCrcSymbols(elf, symtab) : [];
  const ksymtabStrings = crcSymbols.length === 0 ? readKsymtabStrings(elf) : [];
  return kmodExports({ crcSymbols, ksymtabStrings });
}

function readDependencies(elf: ElfFile, t: SymbolTable): { name: string; crc: bigint; weak: boolean }[] {
  const sparc = elf.machine === 2 || elf.machine === 43;
  const undefinedSymbols: UndefinedSymbol[] = [];
  for (let i = 1; i < t.count; i++) {
    if (t.shndx(i) !== SHN_UNDEF || t.isNameEmpty(i)) continue;
    if (sparc && t.type(i) === STT_SPARC_REGISTER) continue;
    undefinedSymbols.push({ name: t.name(i), weak: t.bind(i) === STB_WEAK });
  }
  let versions: readonly ModVersion[] | undefined;
  try {
    versions = readVersions(elf)?.entries;
  } catch (e) {
    if (!(e instanceof KabiError)) throw e;
  }
  return depmodDependencySymbols({ undefinedSymbols, versions });
}

/**
 * kmod_elf_get_strings(".modinfo") then kmod_module_get_info(): leading NULs skipped, empty
 * strings between NUL runs dropped, an unterminated last string still counted.
 */
function readInfo(elf: ElfFile): string[] {
  const sec = elf.section('.modinfo');
  if (!sec) return [];
  const d = elf.data(sec);
  let p = 0;
  let size = d.length;
  if (size === 0) return [];
  while (d[p] === 0 && size > 1) {
    p++;
    size--;
  }
  if (size <= 1) return [];
  const out: string[] = [];
  while (p < d.length) {
    if (d[p] === 0) {
      p++;
      continue;
    }
    let end = d.indexOf(0, p);
    if (end < 0) end = d.length;
    let eq = p;
    while (eq < end && d[eq] !== 0x3d) eq++;
    const key = latin1(d, p, eq);
    if (KEPT_INFO.has(key)) out.push(key, eq < end ? latin1(d, eq + 1, end) : '');
    p = end + 1;
  }
  return out;
}

/*
 * The fast path of summarizeElf(): the same summary, read straight from the bytes for a
 * well-formed module, without objects per section or symbol and without a string for any
 * name met before (Interner.idOfBytes). A cold depmod summarises thousands of modules, and
 * this is most of the time of each that is not reading it. Anything the checks of ElfFile,
 * SymbolTable or the readers would refuse, or that takes a path real modules never take,
 * gives undefined, and summarizeElf() reads the module the general way instead: both give
 * the same summary (test/real/depmod.test.ts compares them over the corpus's trees).
 */

/** The index of a 64-bit value's low 32-bit half in a Uint32Array over it, on this host. */
const LO = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;

const NAME_MODINFO = ascii0('.modinfo');
const NAME_VERSIONS = ascii0('__versions');
const NAME_KSYMTAB_STRINGS = ascii0('__ksymtab_strings');
const CRC_PREFIX = ascii0('__crc_').subarray(0, 6);
const KEY_ALIAS = ascii0('alias').subarray(0, 5);
const KEY_SOFTDEP = ascii0('softdep').subarray(0, 7);
const KEY_WEAKDEP = ascii0('weakdep').subarray(0, 7);

/** The section table of the module being summarised (summarizeElfFast runs to its end without yielding). */
let scratch = sectionScratch(128);

function sectionScratch(n: number) {
  return { type: new Uint32Array(n), offset: new Float64Array(n), size: new Float64Array(n), link: new Uint32Array(n), nameOff: new Uint32Array(n) };
}

function ascii0(s: string): Uint8Array {
  return Uint8Array.from(s + '\0', (c) => c.charCodeAt(0));
}

/** A list of 64-bit values kept as 32-bit halves, made into a BigUint64Array at the end (reused: cleared per module). */
class Words64 {
  private w = new Uint32Array(1024);
  length = 0;

  push(lo: number, hi: number): void {
    if (2 * this.length + 2 > this.w.length) {
      const g = new Uint32Array(2 * this.w.length);
      g.set(this.w);
      this.w = g;
    }
    this.w[2 * this.length + LO] = lo;
    this.w[2 * this.length + 1 - LO] = hi;
    this.length++;
  }

  /** The halves pushed so far, [2k + LO] and [2k + 1 - LO] for value k (valid until the next push). */
  get words(): Uint32Array {
    return this.w;
  }

  finish(): BigUint64Array {
    const out = new BigUint64Array(this.length);
    new Uint32Array(out.buffer).set(this.w.subarray(0, 2 * this.length));
    return out;
  }
}

const lists = { verCrc: new Words64(), exportCrcs: new Words64(), depCrcs: new Words64() };

/** summarizeElf() of a well-formed module, straight from the bytes; undefined for anything else. */
export function summarizeElfFast(d: Uint8Array, strings: Interner): ModuleSummary | undefined {
  if (d.length <= 16 || d[0] !== 0x7f || d[1] !== 0x45 || d[2] !== 0x4c || d[3] !== 0x46) return undefined;
  const n = d.length;
  const is64 = d[4] === 2;
  const le = d[5] === 1;
  if ((d[4] !== 1 && !is64) || (d[5] !== 1 && d[5] !== 2) || n < (is64 ? 64 : 52)) return undefined;
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const u16 = (at: number) => v.getUint16(at, le);
  const u32 = (at: number) => v.getUint32(at, le);
  /** A word field as ElfFile.addr() takes it; -1 where it would refuse it. */
  const addr = (at: number) => {
    if (!is64) return u32(at);
    const hi = u32(at + (le ? 4 : 0));
    return hi > 0x1fffff ? -1 : hi * 0x1_0000_0000 + u32(at + (le ? 0 : 4));
  };
  const shoff = addr(is64 ? 40 : 32);
  const shentsize = u16(is64 ? 58 : 46);
  const shnum = u16(is64 ? 60 : 48);
  const shstrndx = u16(is64 ? 62 : 50);
  if (shoff < 0 || shnum === 0 || shentsize !== (is64 ? 64 : 40) || shoff + shnum * shentsize > n) return undefined;
  if (shnum > scratch.type.length) scratch = sectionScratch(shnum);
  const { type, offset, size, link, nameOff } = scratch;
  let symtab = -1;
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shentsize;
    nameOff[i] = u32(h);
    type[i] = u32(h + 4);
    if (is64) {
      for (const f of [8, 16, 48, 56]) if (addr(h + f) < 0) return undefined;
      offset[i] = addr(h + 24);
      size[i] = addr(h + 32);
      link[i] = u32(h + 40);
    } else {
      offset[i] = u32(h + 16);
      size[i] = u32(h + 20);
      link[i] = u32(h + 24);
    }
    if (offset[i]! < 0 || size[i]! < 0) return undefined;
    if (type[i] !== SHT_NULL && type[i] !== SHT_NOBITS && offset[i]! + size[i]! > n) return undefined;
    if (type[i] === SHT_SYMTAB) {
      if (symtab >= 0) return undefined;
      symtab = i;
    }
  }
  if (shstrndx === 0 || shstrndx >= shnum) return undefined;
  const shstrOff = offset[shstrndx]!;
  const shstrSize = size[shstrndx]!;
  if (type[shstrndx] === SHT_NOBITS || shstrSize === 0 || shstrOff + shstrSize > n || d[shstrOff + shstrSize - 1] !== 0) return undefined;
  let modinfo = -1;
  let versions = -1;
  let ksymtabStrings = -1;
  const named = (i: number, name: Uint8Array) => {
    const at = shstrOff + nameOff[i]!;
    for (let k = 0; k < name.length; k++) if (d[at + k] !== name[k]) return false;
    return true;
  };
  for (let i = 0; i < shnum; i++) {
    if (nameOff[i]! >= shstrSize) return undefined;
    if (modinfo < 0 && named(i, NAME_MODINFO)) modinfo = i;
    else if (versions < 0 && named(i, NAME_VERSIONS)) versions = i;
    else if (ksymtabStrings < 0 && named(i, NAME_KSYMTAB_STRINGS)) ksymtabStrings = i;
  }

  // The symbol table, as SymbolTable checks it.
  if (symtab < 0) return undefined;
  const entsize = is64 ? 24 : 16;
  const declared = is64 ? addr(shoff + symtab * shentsize + 56) : u32(shoff + symtab * shentsize + 36);
  if ((declared !== entsize && declared !== 0) || size[symtab]! % entsize !== 0) return undefined;
  const strtab = link[symtab]!;
  if (strtab >= shnum || type[strtab] !== SHT_STRTAB) return undefined;
  const strOff = offset[strtab]!;
  const strSize = size[strtab]!;
  if (strSize === 0 || d[strOff + strSize - 1] !== 0) return undefined;
  const symOff = offset[symtab]!;
  const count = size[symtab]! / entsize;
  for (let i = 0; i < count; i++) if (u32(symOff + i * entsize) >= strSize) return undefined;

  // __versions: kmod drops the whole table when an entry is malformed.
  const verIds: number[] = [];
  const verCrc = lists.verCrc;
  verCrc.length = 0;
  if (versions >= 0) {
    if (type[versions] === SHT_NULL) return undefined;
    const vo = offset[versions]!;
    const vs = size[versions]!;
    const crcWidth = is64 ? 8 : 4;
    let sound = type[versions] !== SHT_NOBITS && vs % 64 === 0;
    for (let at = vo; sound && at < vo + vs; at += 64) {
      const end = d.indexOf(0, at + crcWidth);
      sound = end >= 0 && end < at + 64;
    }
    for (let at = vo; sound && at < vo + vs; at += 64) {
      verIds.push(strings.idOfBytes(d, at + crcWidth, d.indexOf(0, at + crcWidth)));
      if (is64) verCrc.push(u32(at + (le ? 0 : 4)), u32(at + (le ? 4 : 0)));
      else verCrc.push(u32(at), 0);
    }
  }
  const firstVersion = new Map<number, number>();
  for (let k = verIds.length - 1; k >= 0; k--) firstVersion.set(verIds[k]!, k);
  const visited = new Uint8Array(verIds.length);

  const sparc = u16(18) === 2 || u16(18) === 43;
  const exports: number[] = [];
  const exportCrcs = lists.exportCrcs;
  const deps: number[] = [];
  const depCrcs = lists.depCrcs;
  exportCrcs.length = depCrcs.length = 0;
  const depWeak: number[] = [];
  const crcWords = verCrc.words;
  for (let i = 1; i < count; i++) {
    const e = symOff + i * entsize;
    const name = strOff + u32(e);
    const info = is64 ? d[e + 4]! : d[e + 12]!;
    const shndx = u16(is64 ? e + 6 : e + 14);
    let crcName = true;
    for (let k = 0; k < 6 && crcName; k++) crcName = d[name + k] === CRC_PREFIX[k];
    if (crcName && d[name + 6] !== 0) {
      let lo: number;
      let hi = 0;
      if (shndx === SHN_ABS || shndx === SHN_UNDEF) {
        if (is64) {
          lo = u32(e + 8 + (le ? 0 : 4));
          hi = u32(e + 8 + (le ? 4 : 0));
        } else lo = u32(e + 4);
      } else {
        if (shndx >= shnum || type[shndx] === SHT_NOBITS) return undefined;
        const value = is64 ? u32(e + 8 + (le ? 4 : 0)) * 0x1_0000_0000 + u32(e + 8 + (le ? 0 : 4)) : u32(e + 4);
        const at = offset[shndx]! + value;
        if (value + 4 > size[shndx]! || at + 4 > n) return undefined;
        lo = u32(at);
      }
      exports.push(strings.idOfBytes(d, name + 6, d.indexOf(0, name + 6)));
      exportCrcs.push(lo, hi);
    }
    if (shndx === SHN_UNDEF && d[name] !== 0 && !(sparc && (info & 0xf) === STT_SPARC_REGISTER)) {
      const id = strings.idOfBytes(d, name, d.indexOf(0, name));
      const k = firstVersion.get(id);
      deps.push(id);
      if (k === undefined) depCrcs.push(0, 0);
      else {
        visited[k] = 1;
        depCrcs.push(crcWords[2 * k + LO]!, crcWords[2 * k + 1 - LO]!);
      }
      depWeak.push(info >> 4 === STB_WEAK ? 1 : 0);
    }
  }
  for (let k = 0; k < verIds.length; k++) {
    if (visited[k]) continue;
    deps.push(verIds[k]!);
    depCrcs.push(crcWords[2 * k + LO]!, crcWords[2 * k + 1 - LO]!);
    depWeak.push(0);
  }

  // No __crc_ symbol: kmod takes every string of __ksymtab_strings, with CRC 0.
  if (exports.length === 0 && ksymtabStrings >= 0 && type[ksymtabStrings] !== SHT_NOBITS) {
    if (type[ksymtabStrings] === SHT_NULL) return undefined;
    const end = offset[ksymtabStrings]! + size[ksymtabStrings]!;
    for (let p = offset[ksymtabStrings]!; p < end; ) {
      const z = d.indexOf(0, p);
      if (z < 0 || z >= end) return undefined;
      if (z > p) {
        exports.push(strings.idOfBytes(d, p, z));
        exportCrcs.push(0, 0);
      }
      p = z + 1;
    }
  }

  // .modinfo as readInfo() reads it.
  const infoIds: number[] = [];
  if (modinfo >= 0 && type[modinfo] !== SHT_NOBITS && type[modinfo] !== SHT_NULL && size[modinfo]! > 0) {
    const start = offset[modinfo]!;
    const end = start + size[modinfo]!;
    let p = start;
    while (d[p] === 0 && end - p > 1) p++;
    if (end - p > 1) {
      while (p < end) {
        if (d[p] === 0) {
          p++;
          continue;
        }
        let z = d.indexOf(0, p);
        if (z < 0 || z > end) z = end;
        let eq = p;
        while (eq < z && d[eq] !== 0x3d) eq++;
        if (isKeptKey(d, p, eq)) infoIds.push(strings.idOfBytes(d, p, eq), eq < z ? strings.idOfBytes(d, eq + 1, z) : strings.id(''));
        p = z + 1;
      }
    }
  }
  return {
    exports: Uint32Array.from(exports),
    exportCrcs: exportCrcs.finish(),
    deps: Uint32Array.from(deps),
    depCrcs: depCrcs.finish(),
    depWeak: Uint8Array.from(depWeak),
    info: Uint32Array.from(infoIds),
  };
}

function isKeptKey(d: Uint8Array, p: number, eq: number): boolean {
  for (const key of [KEY_ALIAS, KEY_SOFTDEP, KEY_WEAKDEP]) {
    if (eq - p !== key.length) continue;
    let k = 0;
    while (k < key.length && d[p + k] === key[k]) k++;
    if (k === key.length) return true;
  }
  return false;
}
