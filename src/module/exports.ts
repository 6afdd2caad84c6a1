import { SHN_ABS, SHN_UNDEF, SHT_NOBITS } from '../elf/constants.js';
import { ascii, type ElfFile, type SymbolTable } from '../elf/reader.js';

/** A symbol the module exports (EXPORT_SYMBOL*), as the loader reads its ksymtab. */
export interface ExportedSymbol {
  readonly symbol: string;
  /** The CRC the module exports for this symbol; undefined when it was built without modversions. */
  readonly crc: bigint | undefined;
  /** EXPORT_SYMBOL_GPL: invisible to modules whose first license= is not GPL-compatible. */
  readonly gplOnly: boolean;
  /** EXPORT_SYMBOL_GPL_FUTURE (≤5.11): usable by anyone, with a warning. */
  readonly gplFuture: boolean;
  /** EXPORT_UNUSED_SYMBOL(_GPL) (≤5.11). */
  readonly unused: boolean;
  /** The symbol namespace ("" in the file means none). */
  readonly namespace: string | undefined;
  /** The ksymtab section holding the entry. */
  readonly section: string;
}

/** A `__crc_<sym>` symbol resolved the way kmod resolves it (kmod's view of a module's exports). */
export interface CrcSymbol {
  readonly symbol: string;
  readonly crc: bigint;
}

const KSYMTAB = '__ksymtab_';
const CRC = '__crc_';
const KSTRTABNS = '__kstrtabns_';
const KSYMTAB_B = ascii(KSYMTAB);
const CRC_B = ascii(CRC);
const KSTRTABNS_B = ascii(KSTRTABNS);

/**
 * Resolve a `__crc_<sym>` symbol in every kernel era: an absolute symbol whose value is the
 * CRC (≤5.18), or a symbol pointing at a u32 inside a section (MODULE_REL_CRCS, and
 * `__kcrctab*` since 5.19). A weak undefined `__crc_` (genksyms failed) has value 0.
 */
export function resolveCrc(elf: ElfFile, t: SymbolTable, i: number): bigint {
  const shndx = t.shndx(i);
  if (shndx === SHN_ABS || shndx === SHN_UNDEF) return elf.symbolValue(i);
  const sec = elf.sectionAt(shndx, `section index of ${t.name(i)}`);
  const value = t.value(i);
  if (sec.type === SHT_NOBITS || value + 4 > sec.size) {
    throw elf.error(`${t.name(i)} points outside its section ${sec.name}`, t.entryOffset(i));
  }
  return BigInt(elf.u32(sec.offset + value));
}

export function readCrcSymbols(elf: ElfFile, t: SymbolTable): CrcSymbol[] {
  const out: CrcSymbol[] = [];
  for (let i = 1; i < t.count; i++) {
    if (!t.nameStartsWith(i, CRC_B)) continue;
    const name = t.name(i);
    if (name.length > CRC.length) out.push({ symbol: name.slice(CRC.length), crc: resolveCrc(elf, t, i) });
  }
  return out;
}

/**
 * Exported symbols from the `__ksymtab_<sym>` entry symbols, which exist in every era
 * (their section says GPL-ness up to 6.19; from 7.0 the parallel `__kflagstab` byte does).
 * Names, GPL flags and namespaces come from the symbol table, so no relocation has to be
 * applied, whichever struct kernel_symbol layout the architecture uses.
 */
export function readExports(elf: ElfFile, t: SymbolTable, crcs: readonly CrcSymbol[]): ExportedSymbol[] {
  const isKsymtab = new Set<number>();
  for (const s of elf.sections) {
    if (s.name.startsWith('__ksymtab') && s.name !== '__ksymtab_strings') isKsymtab.add(s.index);
  }
  if (isKsymtab.size === 0) return [];

  const entries: number[] = [];
  const namespaces = new Map<string, string>();
  for (let i = 1; i < t.count; i++) {
    const shndx = t.shndx(i);
    if (isKsymtab.has(shndx) && t.nameStartsWith(i, KSYMTAB_B)) {
      entries.push(i);
    } else if (shndx !== SHN_UNDEF && shndx !== SHN_ABS && t.nameStartsWith(i, KSTRTABNS_B)) {
      const name = t.name(i);
      const sec = elf.sectionAt(shndx, `section index of ${name}`);
      if (sec.type === SHT_NOBITS) throw elf.error(`${name} points into a section without contents`, t.entryOffset(i));
      namespaces.set(name.slice(KSTRTABNS.length), elf.stringAt(sec.offset, sec.size, t.value(i), name));
    }
  }
  const crcByName = new Map<string, bigint>();
  for (const c of crcs) crcByName.set(c.symbol, c.crc);

  const flagstab = elf.section('__kflagstab');
  const flags = flagstab ? elf.data(flagstab) : undefined;

  return entries.map((i) => {
    const symbol = t.name(i).slice(KSYMTAB.length);
    const sec = elf.sections[t.shndx(i)]!;
    let gplOnly = sec.name === '__ksymtab_gpl' || sec.name === '__ksymtab_unused_gpl';
    if (flags && sec.name === '__ksymtab' && flags.length > 0) {
      // ≥7.0: one ksymtab for all exports; the flag byte at the same index says GPL-only.
      const entsize = sec.size / flags.length;
      const index = Number.isInteger(entsize) && entsize > 0 ? t.value(i) / entsize : -1;
      const flag = Number.isInteger(index) && index >= 0 ? flags[index] : undefined;
      if (flag === undefined) throw elf.error(`${t.name(i)} has no entry in __kflagstab`, t.entryOffset(i));
      gplOnly = (flag & 1) !== 0;
    }
    const ns = namespaces.get(symbol);
    return {
      symbol,
      crc: crcByName.get(symbol),
      gplOnly,
      gplFuture: sec.name === '__ksymtab_gpl_future',
      unused: sec.name.startsWith('__ksymtab_unused'),
      namespace: ns === undefined || ns === '' ? undefined : ns,
      section: sec.name,
    };
  });
}

/**
 * kmod's fallback for modules without any `__crc_` symbol: every string in
 * `__ksymtab_strings` counts as an export with CRC 0 (since 5.4 that includes namespace
 * strings — a kmod quirk that depmod semantics must reproduce, and nothing else should use).
 */
export function readKsymtabStrings(elf: ElfFile): string[] {
  const sec = elf.section('__ksymtab_strings');
  if (!sec || sec.type === SHT_NOBITS) return [];
  const out: string[] = [];
  let p = 0;
  while (p < sec.size) {
    const s = elf.stringAt(sec.offset, sec.size, p, '__ksymtab_strings');
    if (s !== '') out.push(s);
    p += s.length + 1;
  }
  return out;
}
