import { depmodDependencySymbols } from '../compat/depmod.js';
import { kmodExports } from '../compat/engine.js';
import { SHN_UNDEF, STB_WEAK, STT_SPARC_REGISTER } from '../elf/constants.js';
import { ElfFile, latin1, type SymbolTable } from '../elf/reader.js';
import { KabiError } from '../errors.js';
import { readCrcSymbols, readKsymtabStrings } from '../module/exports.js';
import { readVersions, type ModVersion } from '../module/modversions.js';
import { decompressModule, type KernelModule, type UndefinedSymbol } from '../module/read-module.js';
import type { Interner } from './interner.js';

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
  if (bytes.length === 0) return unreadableSummary('Invalid argument');
  let data: Uint8Array;
  try {
    ({ data } = await decompressModule(bytes, file));
  } catch (e) {
    // kmod says EINVAL for anything it cannot decompress; a file past kabi's budget says so.
    if (e instanceof KabiError) return unreadableSummary(e.code === 'LIMIT' ? e.detail : 'Invalid argument');
    throw e;
  }
  return summarizeElf(data, strings, file);
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
