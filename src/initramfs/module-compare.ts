import { maybeDecompress } from '../../native-bindings/index.js';
import { parseElf, SHF_ALLOC, SHT_NOBITS, SHT_REL, SHT_RELA, STT_SECTION, type ElfFile } from '../elf/index.js';

/**
 * How a module in an image relates to the installed one.
 *  - identical: same bytes once decompressed;
 *  - stripped: only non-loaded sections differ (dracut runs `strip -g` on unsigned modules,
 *    so an up-to-date dracut image never holds the installed bytes of a module with debug
 *    info); what the kernel loads is the same;
 *  - different: anything the loader sees differs.
 */
export type ModuleSameness = 'identical' | 'stripped' | 'different';

export async function moduleContents(bytes: Uint8Array, file?: string): Promise<Uint8Array> {
  return (await maybeDecompress(bytes, file === undefined ? undefined : { file })).data;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Compare two decompressed modules. */
export function compareModules(a: Uint8Array, b: Uint8Array): ModuleSameness {
  if (bytesEqual(a, b)) return 'identical';
  const la = loadedImage(a);
  const lb = loadedImage(b);
  if (la === undefined || lb === undefined || la.length !== lb.length) return 'different';
  for (let i = 0; i < la.length; i++) {
    const x = la[i]!;
    const y = lb[i]!;
    if (x.name !== y.name || x.type !== y.type || x.flags !== y.flags || !bytesEqual(x.data, y.data)) return 'different';
  }
  return 'stripped';
}

interface LoadedSection {
  name: string;
  type: number;
  flags: number;
  data: Uint8Array;
}

/**
 * What the loader makes of a module: the allocated sections' bytes, plus each relocation
 * applied to them with its symbol named rather than numbered (strip renumbers the symbol
 * table, and two builds calling different functions differ only in their relocations).
 * Undefined if the bytes are not a readable ELF object.
 */
function loadedImage(bytes: Uint8Array): LoadedSection[] | undefined {
  try {
    const elf = parseElf(bytes);
    const out: LoadedSection[] = [];
    for (const s of elf.sections) {
      if ((s.flags & SHF_ALLOC) !== 0) {
        out.push({ name: s.name, type: s.type, flags: s.flags, data: s.type === SHT_NOBITS ? new Uint8Array(s.size) : elf.data(s) });
      } else if ((s.type === SHT_RELA || s.type === SHT_REL) && ((elf.sections[s.info]?.flags ?? 0) & SHF_ALLOC) !== 0) {
        out.push({ name: s.name, type: s.type, flags: 0, data: new TextEncoder().encode(relocationText(elf, s.index)) });
      }
    }
    return out;
  } catch {
    return undefined;
  }
}

function relocationText(elf: ElfFile, index: number): string {
  const s = elf.sections[index]!;
  const rela = s.type === SHT_RELA;
  const size = elf.is64 ? (rela ? 24 : 16) : rela ? 12 : 8;
  const syms = elf.symbolTable();
  const lines: string[] = [];
  for (let at = s.offset; at + size <= s.offset + s.size; at += size) {
    const offset = elf.word(at);
    const info = elf.word(at + (elf.is64 ? 8 : 4));
    const sym = Number(elf.is64 ? info >> 32n : info >> 8n);
    const type = Number(elf.is64 ? info & 0xffffffffn : info & 0xffn);
    const addend = rela ? elf.word(at + (elf.is64 ? 16 : 8)) : 0n;
    let target = '';
    if (sym > 0 && sym < syms.count) {
      const shndx = syms.shndx(sym);
      target = syms.type(sym) === STT_SECTION ? `section:${elf.sections[shndx]?.name ?? shndx}` : `${syms.name(sym)}@${elf.sections[shndx]?.name ?? shndx}+${syms.value(sym)}`;
    }
    lines.push(`${offset} ${type} ${addend} ${target}`);
  }
  return lines.join('\n');
}
