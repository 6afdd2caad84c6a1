import { KabiError } from '../errors.js';
import { SHF_ALLOC, SHT_NOBITS } from '../elf/constants.js';
import type { ElfFile, ElfSection } from '../elf/reader.js';
import type { SharedModuleValues } from './shared-values.js';

/** One `__versions` entry: a symbol the module uses and the CRC it was built against. */
export interface ModVersion {
  readonly symbol: string;
  /**
   * The CRC field at its full width: 32 bits on ELF32, 64 on ELF64. The kernel compares the
   * whole field against a zero-extended 32-bit CRC, so non-zero high bits mean "disagrees".
   */
  readonly crc: bigint;
}

export interface VersionsTable {
  readonly entries: readonly ModVersion[];
  /** SHF_ALLOC set: the loader's find_sec() only sees allocated sections (modprobe --force-modversion clears it). */
  readonly allocated: boolean;
}

const ENTRY_SIZE = 64;

/** `__versions`: struct modversion_info { unsigned long crc; char name[64 - sizeof(long)]; }. */
export function readVersions(elf: ElfFile, shared?: SharedModuleValues): VersionsTable | undefined {
  const sec = elf.section('__versions');
  if (!sec) return undefined;
  if (sec.type === SHT_NOBITS) throw elf.error('__versions has no file contents (SHT_NOBITS)', sec.headerOffset);
  if (sec.size % ENTRY_SIZE !== 0) {
    throw elf.error(`__versions size ${sec.size} is not a multiple of ${ENTRY_SIZE}`, sec.headerOffset);
  }
  const crcWidth = elf.is64 ? 8 : 4;
  const data = elf.data(sec);
  const entries: ModVersion[] = [];
  // elf.data() checked the section lies inside the file: the CRC words are read directly.
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const le = elf.littleEndian;
  for (let off = 0; off < sec.size; off += ENTRY_SIZE) {
    let end = off + crcWidth;
    while (end < off + ENTRY_SIZE && data[end] !== 0) end++;
    if (end >= off + ENTRY_SIZE) throw elf.error('__versions entry name is not NUL-terminated', sec.offset + off + crcWidth);
    const high = crcWidth === 8 ? view.getUint32(off + (le ? 4 : 0), le) : 0;
    const low = crcWidth === 8 ? view.getUint32(off + (le ? 0 : 4), le) : view.getUint32(off, le);
    entries.push(
      shared
        ? shared.versionAt(data, off + crcWidth, end, high, low)
        : { symbol: elf.stringAt(sec.offset, sec.size, off + crcWidth, '__versions entry'), crc: crcFromHalves(high, low) },
    );
  }
  return { entries, allocated: (sec.flags & SHF_ALLOC) !== 0 };
}

/**
 * Extended modversions (≥6.14): `__version_ext_crcs` is a u32 array and `__version_ext_names`
 * the same number of NUL-terminated names back to back. When present the loader uses them
 * instead of `__versions`; kmod does not read them at all.
 */
export function readExtendedVersions(elf: ElfFile): ModVersion[] | undefined {
  const crcs = elf.section('__version_ext_crcs');
  const names = elf.section('__version_ext_names');
  if (!crcs && !names) return undefined;
  if (!crcs || !names) {
    const have = (crcs ?? names) as ElfSection;
    throw elf.error(`${have.name} is present without its companion section`, have.headerOffset);
  }
  if (crcs.size % 4 !== 0) throw elf.error(`__version_ext_crcs size ${crcs.size} is not a multiple of 4`, crcs.headerOffset);
  const count = crcs.size / 4;
  const nameData = elf.data(names);
  const out: ModVersion[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p >= nameData.length) {
      throw new KabiError('MODULE_FORMAT', `__version_ext_names holds fewer names than the ${count} CRCs in __version_ext_crcs`, {
        file: elf.file,
        offset: names.offset + p,
      });
    }
    const symbol = elf.stringAt(names.offset, names.size, p, '__version_ext_names entry');
    p += symbol.length + 1;
    out.push({ symbol, crc: BigInt(elf.u32(crcs.offset + i * 4)) });
  }
  return out;
}

/**
 * A CRC word from its two 32-bit halves, as readers take it from the bytes without making a
 * BigInt per entry; a set high half is part of the value (the loader compares full width).
 */
export function crcFromHalves(high: number, low: number): bigint {
  return BigInt(high) * 0x1_0000_0000n + BigInt(low);
}

/** `0x` + lowercase hex, at least 8 digits: the format of `modprobe --dump-modversions`. */
export function formatCrc(crc: bigint | number): string {
  return '0x' + crc.toString(16).padStart(8, '0');
}
