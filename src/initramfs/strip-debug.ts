import { parseElf, SHN_LORESERVE, SHT_NOBITS, SHT_NULL, SHT_REL, SHT_RELA, SHT_SYMTAB, STT_FILE, STT_SECTION, type ElfFile, type ElfSection } from '../elf/index.js';
import { KabiError } from '../errors.js';

/*
 * `strip -g` of a kernel module, the way dracut stores unsigned modules: what the loader reads
 * stays byte for byte (every allocated section, every relocation that applies to one, every
 * symbol it names), and the debug information goes: the .debug_*, .zdebug_*, .line and .stab
 * sections, the relocations that apply to them, the file symbols, the symbols defined in the
 * removed sections and the section symbols no relocation uses (as binutils' strip leaves it).
 * Sections keep their order in the file; the symbol and section-name string tables are
 * written anew. A module this cannot handle (extended section numbering, section groups,
 * 64-bit MIPS relocations) is refused, and the generator has to do it.
 */

const SHT_GROUP = 17;
const SHT_SYMTAB_SHNDX = 18;
const EM_MIPS = 8;

export function isDebugSection(name: string): boolean {
  return /^\.(z?debug|gnu\.debuglto_\.debug|gnu\.linkonce\.wi\.)/.test(name) || name === '.line' || name.startsWith('.stab');
}

/**
 * `maxFileAlign`: the largest alignment a section's place in the file gets (binutils from 2.42
 * aligns to at most the word size; earlier versions to the section's own alignment).
 */
export function stripDebug(bytes: Uint8Array, file?: string, opts: { maxFileAlign?: number } = {}): Uint8Array {
  const elf = parseElf(bytes, file);
  const refuse = (why: string) => new KabiError('INITRAMFS_FORMAT', `cannot strip -g this module (${why}); only the generator stores it stripped`, { file });
  if (elf.sections.some((s) => s.type === SHT_GROUP || s.type === SHT_SYMTAB_SHNDX)) throw refuse('section groups or extended section numbers');
  if (elf.machine === EM_MIPS && elf.is64) throw refuse('64-bit MIPS relocations');
  const symtab = elf.sections.find((s) => s.type === SHT_SYMTAB);
  const removed = new Set<number>();
  for (const s of elf.sections) if (s.index > 0 && isDebugSection(s.name)) removed.add(s.index);
  for (const s of elf.sections) if ((s.type === SHT_REL || s.type === SHT_RELA) && removed.has(s.info)) removed.add(s.index);


  const keep = elf.sections.filter((s) => !removed.has(s.index));
  const newIndex = new Map<number, number>(keep.map((s, i) => [s.index, i]));
  const w = writerFor(elf);

  // Symbols: which ones relocations that stay refer to.
  const syms = elf.symbols();
  const referenced = new Set<number>();
  const relocs = keep.filter((s) => (s.type === SHT_REL || s.type === SHT_RELA) && s.link === symtab?.index);
  for (const r of relocs) for (const e of relocEntries(elf, r)) referenced.add(e.sym);
  for (const r of referenced) {
    const sym = syms[r];
    if (sym && sym.shndx > 0 && sym.shndx < SHN_LORESERVE && removed.has(sym.shndx)) throw refuse(`a relocation that stays refers to ${sym.name || `symbol ${r}`} in a removed section`);
  }
  if (symtab && symtab.link === elf.shstrndx) throw refuse('symbol names and section names share one string table');
  // Output order: the null symbol, the section symbols relocations use (by section), the other
  // locals, then the globals, each group in its old order.
  const isLocal = (s: (typeof syms)[number]) => s.bind === 0;
  const sectionSyms = syms.filter((s) => s.index > 0 && s.type === STT_SECTION && referenced.has(s.index)).sort((a, b) => a.shndx - b.shndx);
  const others = syms.filter((s) => s.index > 0 && s.type !== STT_SECTION && s.type !== STT_FILE && !(s.shndx > 0 && s.shndx < SHN_LORESERVE && removed.has(s.shndx)));
  const fileRefs = syms.filter((s) => s.type === STT_FILE && referenced.has(s.index));
  const keptSyms = [...sectionSyms, ...others.filter(isLocal), ...fileRefs, ...others.filter((s) => !isLocal(s))];
  const symIndex = new Map<number, number>(keptSyms.map((s, i) => [s.index, i + 1]));
  const firstGlobal = 1 + keptSyms.filter(isLocal).length;

  // New string tables.
  const strtab = new StringTable();
  const symNames = keptSyms.map((s) => strtab.add(s.type === STT_SECTION ? '' : s.name));
  // binutils names its own tables first.
  const shstrtab = new StringTable();
  for (const s of keep) if (s.type === SHT_SYMTAB) shstrtab.add(s.name);
  for (const s of keep) if (s.index === symtab?.link || s.index === elf.shstrndx) shstrtab.add(s.name);
  const shNames = keep.map((s) => shstrtab.add(s.index === 0 ? '' : s.name));

  // New contents per kept section.
  const contents = new Map<number, Uint8Array>();
  const entSize = elf.is64 ? 24 : 16;
  if (symtab && !removed.has(symtab.index)) {
    const out = new Uint8Array(entSize * (keptSyms.length + 1));
    keptSyms.forEach((s, i) => {
      const src = elf.bytes.subarray(s.entryOffset, s.entryOffset + entSize);
      const at = (i + 1) * entSize;
      out.set(src, at);
      const shndx = s.shndx > 0 && s.shndx < SHN_LORESERVE ? newIndex.get(s.shndx)! : s.shndx;
      w.u32(out, at, symNames[i]!());
      w.u16(out, at + (elf.is64 ? 6 : 14), shndx);
    });
    contents.set(symtab.index, out);
    const strSection = elf.sections[symtab.link];
    if (strSection) contents.set(strSection.index, strtab.bytes());
  }
  for (const r of relocs) {
    const out = Uint8Array.from(elf.data(r));
    for (const e of relocEntries(elf, r)) w.setRelocSym(out, e.at - r.offset, symIndex.get(e.sym) ?? 0, e.type);
    contents.set(r.index, out);
  }
  contents.set(elf.shstrndx, shstrtab.bytes());

  // Layout: the header, then the sections in their old file order, each at its alignment,
  // then the section header table.
  const ehsize = elf.is64 ? 64 : 52;
  const shentsize = elf.is64 ? 64 : 40;
  const offsets = new Map<number, number>();
  let at = ehsize;
  for (const s of [...keep].filter((s) => s.type !== SHT_NULL).sort((a, b) => a.offset - b.offset || a.index - b.index)) {
    const size = s.type === SHT_NOBITS ? 0 : (contents.get(s.index)?.length ?? s.size);
    const align = Math.max(1, Math.min(s.addralign, opts.maxFileAlign ?? Infinity));
    at = Math.ceil(at / align) * align;
    offsets.set(s.index, at);
    at += size;
  }
  const shoff = Math.ceil(at / (elf.is64 ? 8 : 4)) * (elf.is64 ? 8 : 4);
  const out = new Uint8Array(shoff + shentsize * keep.length);
  out.set(elf.bytes.subarray(0, ehsize), 0);
  for (const s of keep) {
    if (s.type === SHT_NULL || s.type === SHT_NOBITS) continue;
    out.set(contents.get(s.index) ?? elf.data(s), offsets.get(s.index)!);
  }
  keep.forEach((s, i) => {
    const h = shoff + i * shentsize;
    out.set(elf.bytes.subarray(s.headerOffset, s.headerOffset + shentsize), h);
    if (s.index === 0) return;
    const size = contents.get(s.index)?.length ?? s.size;
    w.u32(out, h, shNames[i]!());
    w.addr(out, h + (elf.is64 ? 24 : 16), offsets.get(s.index) ?? 0);
    w.addr(out, h + (elf.is64 ? 32 : 20), size);
    w.u32(out, h + (elf.is64 ? 40 : 24), s.link > 0 && s.link < SHN_LORESERVE ? (newIndex.get(s.link) ?? 0) : s.link);
    let info = s.info;
    if (s.type === SHT_REL || s.type === SHT_RELA) info = newIndex.get(s.info) ?? 0;
    if (s.type === SHT_SYMTAB) info = firstGlobal;
    w.u32(out, h + (elf.is64 ? 44 : 28), info);
  });
  w.addr(out, elf.is64 ? 40 : 32, shoff);
  w.u16(out, elf.is64 ? 60 : 48, keep.length);
  w.u16(out, elf.is64 ? 62 : 50, newIndex.get(elf.shstrndx) ?? 0);
  return out;
}

interface RelocEntry {
  /** File offset of the entry. */
  readonly at: number;
  readonly sym: number;
  readonly type: number;
}

function* relocEntries(elf: ElfFile, s: ElfSection): Generator<RelocEntry> {
  const size = elf.is64 ? (s.type === SHT_RELA ? 24 : 16) : s.type === SHT_RELA ? 12 : 8;
  for (let at = s.offset; at + size <= s.offset + s.size; at += size) {
    const info = elf.word(at + (elf.is64 ? 8 : 4));
    yield elf.is64 ? { at, sym: Number(info >> 32n), type: Number(info & 0xffffffffn) } : { at, sym: Number(info >> 8n), type: Number(info & 0xffn) };
  }
}

function writerFor(elf: ElfFile) {
  const le = elf.littleEndian;
  const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    u16: (b: Uint8Array, at: number, v: number) => view(b).setUint16(at, v, le),
    u32: (b: Uint8Array, at: number, v: number) => view(b).setUint32(at, v, le),
    addr: (b: Uint8Array, at: number, v: number) => (elf.is64 ? view(b).setBigUint64(at, BigInt(v), le) : view(b).setUint32(at, v, le)),
    setRelocSym(b: Uint8Array, entryAt: number, sym: number, type: number): void {
      if (elf.is64) view(b).setBigUint64(entryAt + 8, (BigInt(sym) << 32n) | BigInt(type), le);
      else view(b).setUint32(entryAt + 4, ((sym << 8) | (type & 0xff)) >>> 0, le);
    },
  };
}

/**
 * A string table as binutils writes one (elf-strtab.c): each distinct name once, a name that
 * ends another one sharing its tail, the rest in the order they were first added.
 */
class StringTable {
  private readonly names: string[] = [];
  private readonly seen = new Set<string>();
  private offsets: Map<string, number> | undefined;
  private table: Uint8Array | undefined;

  add(name: string): () => number {
    if (name !== '' && !this.seen.has(name)) {
      this.seen.add(name);
      this.names.push(name);
    }
    return () => (name === '' ? 0 : this.finalize().offsets.get(name)!);
  }

  bytes(): Uint8Array {
    return this.finalize().table;
  }

  private finalize(): { offsets: Map<string, number>; table: Uint8Array } {
    if (this.offsets && this.table) return { offsets: this.offsets, table: this.table };
    // Sorted by the reversed string, a name that is another's tail comes right before it.
    const rev = (x: string) => [...x].reverse().join('');
    const sorted = [...this.names].sort((a, b) => {
      const ra = rev(a);
      const rb = rev(b);
      return ra < rb ? -1 : ra > rb ? 1 : 0;
    });
    const host = new Map<string, string>();
    let e = sorted.at(-1);
    for (let i = sorted.length - 2; i >= 0; i--) {
      const cmp = sorted[i]!;
      if (e !== undefined && cmp.length < e.length && e.endsWith(cmp)) host.set(cmp, e);
      else e = cmp;
    }
    const offsets = new Map<string, number>();
    const parts: string[] = [''];
    let size = 1;
    for (const n of this.names) {
      if (host.has(n)) continue;
      offsets.set(n, size);
      parts.push(n);
      size += Buffer.byteLength(n, 'latin1') + 1;
    }
    for (const [n, h] of host) {
      let top = h;
      while (host.has(top)) top = host.get(top)!;
      offsets.set(n, offsets.get(top)! + top.length - n.length);
    }
    this.offsets = offsets;
    this.table = Buffer.from(parts.join('\0') + '\0', 'latin1');
    return { offsets, table: this.table };
  }
}
