import { SHN_ABS, SHN_UNDEF, SHT_NOBITS } from '../elf/constants.js';
import type { ElfFile, ElfSymbol } from '../elf/reader.js';

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

/**
 * Resolve a `__crc_<sym>` symbol in every kernel era: an absolute symbol whose value is the
 * CRC (≤5.18), or a symbol pointing at a u32 inside a section (MODULE_REL_CRCS, and
 * `__kcrctab*` since 5.19). A weak undefined `__crc_` (genksyms failed) has value 0.
 */
export function resolveCrc(elf: ElfFile, sym: ElfSymbol): bigint {
  if (sym.shndx === SHN_ABS || sym.shndx === SHN_UNDEF) return elf.symbolValue(sym);
  const sec = elf.sectionAt(sym.shndx, `section index of ${sym.name}`);
  if (sec.type === SHT_NOBITS || sym.value + 4 > sec.size) {
    throw elf.error(`${sym.name} points outside its section ${sec.name}`, sym.entryOffset);
  }
  return BigInt(elf.u32(sec.offset + sym.value));
}

export function readCrcSymbols(elf: ElfFile, symbols: readonly ElfSymbol[]): CrcSymbol[] {
  const out: CrcSymbol[] = [];
  for (const sym of symbols) {
    if (sym.name.length > CRC.length && sym.name.startsWith(CRC)) {
      out.push({ symbol: sym.name.slice(CRC.length), crc: resolveCrc(elf, sym) });
    }
  }
  return out;
}

/**
 * Exported symbols from the `__ksymtab_<sym>` entry symbols, which exist in every era
 * (their section says GPL-ness up to 6.19; from 7.0 the parallel `__kflagstab` byte does).
 * Names, GPL flags and namespaces come from the symbol table, so no relocation has to be
 * applied, whichever struct kernel_symbol layout the architecture uses.
 */
export function readExports(elf: ElfFile, symbols: readonly ElfSymbol[], crcs: readonly CrcSymbol[]): ExportedSymbol[] {
  const isKsymtab = new Set<number>();
  for (const s of elf.sections) {
    if (s.name.startsWith('__ksymtab') && s.name !== '__ksymtab_strings') isKsymtab.add(s.index);
  }
  if (isKsymtab.size === 0) return [];

  const entries: ElfSymbol[] = [];
  const perSection = new Map<number, number>();
  const namespaces = new Map<string, string>();
  for (const sym of symbols) {
    const name = sym.name;
    if (name.startsWith(KSYMTAB) && isKsymtab.has(sym.shndx)) {
      entries.push(sym);
      perSection.set(sym.shndx, (perSection.get(sym.shndx) ?? 0) + 1);
    } else if (name.startsWith(KSTRTABNS) && sym.shndx !== SHN_UNDEF && sym.shndx !== SHN_ABS) {
      const sec = elf.sectionAt(sym.shndx, `section index of ${name}`);
      namespaces.set(name.slice(KSTRTABNS.length), elf.stringAt(sec.offset, sec.size, sym.value, name));
    }
  }
  const crcByName = new Map<string, bigint>();
  for (const c of crcs) crcByName.set(c.symbol, c.crc);

  const flagstab = elf.section('__kflagstab');
  const flags = flagstab ? elf.data(flagstab) : undefined;

  return entries.map((sym) => {
    const symbol = sym.name.slice(KSYMTAB.length);
    const sec = elf.sections[sym.shndx]!;
    let gplOnly = sec.name === '__ksymtab_gpl' || sec.name === '__ksymtab_unused_gpl';
    if (flags && sec.name === '__ksymtab' && flags.length > 0) {
      // ≥7.0: one ksymtab for all exports; the flag byte at the same index says GPL-only.
      const entsize = sec.size / flags.length;
      const index = Number.isInteger(entsize) && entsize > 0 ? sym.value / entsize : -1;
      const flag = Number.isInteger(index) && index >= 0 ? flags[index] : undefined;
      if (flag === undefined) throw elf.error(`${sym.name} has no entry in __kflagstab`, sym.entryOffset);
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
