import { basename } from 'node:path';
import { isOutputLimit, maybeDecompress, maybeDecompressEach, type Compression } from '../../native-bindings/index.js';
import { attributeTo, KabiError } from '../errors.js';
import { overBudget, READ_BUDGETS, readRegularFile, type KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { withJsonForm } from '../json.js';
import { SHF_ALLOC, SHN_COMMON, SHN_UNDEF, SHT_NOBITS, STB_WEAK, STT_SPARC_REGISTER, machineName } from '../elf/constants.js';
import { ElfFile } from '../elf/reader.js';
import { readCrcSymbols, readExports, readKsymtabStrings, type CrcSymbol, type ExportedSymbol } from './exports.js';
import { ModInfo, parseModinfo, parseVermagic, type Vermagic } from './modinfo.js';
import { readExtendedVersions, readVersions, type ModVersion } from './modversions.js';
import { withPlainModuleSync } from './read-plain.js';
import type { SharedModuleValues } from './shared-values.js';
import { splitSignature, type ModuleSignature } from './signature.js';

export { isCompressedName } from './read-plain.js';

/** A symbol the module needs from the kernel or another module. */
export interface UndefinedSymbol {
  readonly name: string;
  /** STB_WEAK: the loader lets it stay unresolved; depmod never reports it. */
  readonly weak: boolean;
}

/** The module's `.gnu.linkonce.this_module` section (its `struct module`). */
export interface ThisModuleInfo {
  /** Number of `.gnu.linkonce.this_module` sections (the loader wants exactly one). */
  readonly count: number;
  /** sh_size: sizeof(struct module) of the kernel the module was built for. */
  readonly size: number;
  readonly allocated: boolean;
  readonly nobits: boolean;
  /** struct module.name, when the section has file contents. */
  readonly name: string | undefined;
}

/** Structural facts the loader checks that a plain listing would not show. */
export interface LoaderFacts {
  readonly modinfoSections: number;
  readonly symtabSections: number;
  /** Exports present, with their CRC tables (modversions kernels want `__kcrctab*` when there are exports). */
  readonly hasKsymtab: boolean;
  readonly hasKcrctab: boolean;
  readonly hasKflagstab: boolean;
  readonly hasObsoleteKsymtabGpl: boolean;
  /** SHN_COMMON symbols: the loader refuses them ("please compile with -fno-common"). */
  readonly commonSymbols: readonly string[];
}

/** The ELF header fields the loader compares with the kernel's own. */
export interface ElfIdentity {
  readonly class: 32 | 64;
  readonly endian: 'little' | 'big';
  readonly machine: number;
  readonly machineName: string;
  readonly type: number;
  readonly flags: number;
}

/**
 * Everything kabi needs to know about one `.ko`, as plain data (no reference to the file's
 * bytes is kept, so thousands can be held at once).
 */
export interface KernelModule {
  readonly file: string | undefined;
  /** modinfo name=, else struct module.name, else the file's basename. */
  readonly name: string;
  readonly compression: Compression | undefined;
  /** Bytes of the (decompressed) file and of its ELF part. */
  readonly size: number;
  readonly elfSize: number;
  readonly elf: ElfIdentity;
  readonly modinfo: ModInfo;
  readonly vermagic: Vermagic | undefined;
  /** The first license= (the only one the loader reads). */
  readonly license: string | undefined;
  readonly depends: readonly string[];
  readonly importNamespaces: readonly string[];
  /** `__versions`, or undefined when the module has none. */
  readonly versions: readonly ModVersion[] | undefined;
  readonly versionsAllocated: boolean;
  /** `__version_ext_crcs`/`__version_ext_names` (≥6.14), or undefined. */
  readonly extendedVersions: readonly ModVersion[] | undefined;
  readonly undefinedSymbols: readonly UndefinedSymbol[];
  readonly exports: readonly ExportedSymbol[];
  /** Every `__crc_<sym>` symbol resolved (what `modprobe --show-exports` and depmod see). */
  readonly crcSymbols: readonly CrcSymbol[];
  /** kmod's fallback export list (strings of `__ksymtab_strings`) when there are no `__crc_` symbols. */
  readonly ksymtabStrings: readonly string[];
  readonly thisModule: ThisModuleInfo | undefined;
  readonly signature: ModuleSignature | undefined;
  readonly loader: LoaderFacts;
}

/** Options of readModule and readModuleBytes. */
export interface ReadModuleOptions {
  /** The file the bytes came from: named in errors and kept as KernelModule.file. */
  file?: string;
  /** Share recurring values with other modules read through the same object (see SharedModuleValues). */
  shared?: SharedModuleValues;
}

/** Parse an uncompressed module image (ELF, optionally followed by a signature). Pure. */
export function readModule(bytes: Uint8Array, opts: ReadModuleOptions = {}): KernelModule {
  return attributeTo(opts.file, () => parseModule(bytes, opts.file, undefined, opts.shared));
}

/** Parse a module file's bytes, decompressing first when its magic says so. */
export async function readModuleBytes(bytes: Uint8Array, opts: ReadModuleOptions = {}): Promise<KernelModule> {
  const { data, format } = await decompressModule(bytes, opts.file);
  return attributeTo(opts.file, () => parseModule(data, opts.file, format, opts.shared));
}

/**
 * A module's ELF image: the bytes as they are, or decompressed when their magic says so, at
 * most READ_BUDGETS.module bytes of it (a bomb is stopped there: LIMIT naming the file).
 */
export async function decompressModule(bytes: Uint8Array, file: string | undefined): Promise<{ data: Uint8Array; format: Compression | undefined }> {
  try {
    return await maybeDecompress(bytes, { file, maxOutputBytes: READ_BUDGETS.module.maxBytes });
  } catch (e) {
    throw moduleDecompressError(e, file);
  }
}

function moduleDecompressError(e: unknown, file: string | undefined): unknown {
  return isOutputLimit(e) ? overBudget(file ?? 'module', READ_BUDGETS.module, true) : e;
}

/**
 * decompressModule() for many files, as a tree is read: `each(i, result)` once per file, in
 * no set order, with what decompressModule() would return or throw for it. .ko.xz files are
 * decoded many per xz process where xz(1) is installed (liblzma: faster than the WASM
 * decoder). `borrowed`: the data is used up before `each` returns (its memory then serves the
 * next batch).
 */
export async function decompressModules(
  files: readonly { bytes: Uint8Array; file?: string | undefined }[],
  each: (index: number, result: { data: Uint8Array; format: Compression | undefined } | { error: unknown }) => void,
  borrowed = false,
): Promise<void> {
  await maybeDecompressEach(files, { maxOutputBytes: READ_BUDGETS.module.maxBytes, borrowed }, (i, r) =>
    each(i, 'error' in r ? { error: moduleDecompressError(r.error, files[i]!.file) } : r),
  );
}

/** Options of readModuleFile. */
export interface ReadModuleFileOptions {
  /** The filesystem to read through (default node:fs). */
  fs?: KabiFs;
  /** See ReadModuleOptions.shared. */
  shared?: SharedModuleValues;
}

/**
 * Read and parse a `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz` file: a regular file only (a FIFO
 * or device is refused, NOT_A_FILE, without waiting on it), within READ_BUDGETS.module
 * (LIMIT) both as stored and decompressed.
 */
export async function readModuleFile(path: string, opts: ReadModuleFileOptions = {}): Promise<KernelModule> {
  const fs = opts.fs ?? nodeFs;
  const shared = opts.shared;
  return (fs === nodeFs ? readPlainModuleSync(path, shared) : undefined) ?? readModuleBytes(await readModuleFileBytes(path, fs), { file: path, ...(shared ? { shared } : {}) });
}

/**
 * A plain `.ko` on node:fs, read synchronously and parsed at once from a reused buffer
 * (read-plain.ts), with no decompression step to wait for. Undefined for a compressed name,
 * or a file that is not a plain ELF after all: it is read the general way.
 */
function readPlainModuleSync(path: string, shared?: SharedModuleValues): KernelModule | undefined {
  try {
    return withPlainModuleSync(path, (image) => attributeTo(path, () => parseModule(image, path, undefined, shared)));
  } catch (e) {
    throw e instanceof KabiError ? e : new KabiError('IO', `cannot read module: ${(e as Error).message}`, { file: path, cause: e });
  }
}

async function readModuleFileBytes(path: string, fs: KabiFs): Promise<Uint8Array> {
  try {
    // On node:fs the read is synchronous: several times cheaper than the threadpool round
    // trips of fs.promises, and trees hold thousands of small files.
    return await readRegularFile(fs, path, READ_BUDGETS.module);
  } catch (e) {
    if (e instanceof KabiError) throw e;
    throw new KabiError('IO', `cannot read module: ${(e as Error).message}`, { file: path, cause: e });
  }
}

/**
 * readModuleFile() for many files (node:fs), as a reader thread answers a burst of reads:
 * `each(i, result)` once per path, in no set order, with the module or what readModuleFile()
 * throws for it; .ko.xz files are decoded together (decompressModules).
 */
export async function readModuleFiles(paths: readonly string[], each: (index: number, result: { module: KernelModule } | { error: unknown }) => void): Promise<void> {
  const read: { bytes: Uint8Array; file: string; at: number }[] = [];
  for (let at = 0; at < paths.length; at++) {
    try {
      const plain = readPlainModuleSync(paths[at]!);
      if (plain !== undefined) {
        each(at, { module: plain });
        continue;
      }
      read.push({ bytes: await readModuleFileBytes(paths[at]!, nodeFs), file: paths[at]!, at });
    } catch (error) {
      each(at, { error });
    }
  }
  await decompressModules(read, (i, r) => {
    const { at, file } = read[i]!;
    if ('error' in r) return each(at, r);
    let result: { module: KernelModule } | { error: unknown };
    try {
      result = { module: attributeTo(file, () => parseModule(r.data, file, r.format)) };
    } catch (error) {
      result = { error };
    }
    each(at, result);
  });
}

function parseModule(bytes: Uint8Array, file: string | undefined, compression: Compression | undefined, shared?: SharedModuleValues): KernelModule {
  const { elf: image, signature } = splitSignature(bytes, file);
  const elf = new ElfFile(image, file);
  const symbols = elf.symbolTable();

  const modinfoSecs = elf.sectionsNamed('.modinfo');
  const modinfo = modinfoSecs[0] ? parseModinfo(elf.data(modinfoSecs[0]), shared) : new ModInfo([]);
  const vermagicRaw = modinfo.get('vermagic');

  const versions = readVersions(elf, shared);
  const extendedVersions = readExtendedVersions(elf);
  const crcSymbols = readCrcSymbols(elf, symbols);
  const exports = readExports(elf, symbols, crcSymbols);

  const sparc = elf.machine === 2 || elf.machine === 43;
  const undefinedSymbols: UndefinedSymbol[] = [];
  const commonSymbols: string[] = [];
  for (let i = 1; i < symbols.count; i++) {
    const shndx = symbols.shndx(i);
    if (shndx === SHN_UNDEF) {
      if (symbols.isNameEmpty(i) || (sparc && symbols.type(i) === STT_SPARC_REGISTER)) continue;
      const weak = symbols.bind(i) === STB_WEAK;
      undefinedSymbols.push(shared ? symbols.nameVia(i, (bytes, start, end) => shared.undefinedSymbolAt(bytes, start, end, weak)) : { name: symbols.name(i), weak });
    } else if (shndx === SHN_COMMON) {
      const name = symbols.name(i);
      if (!name.startsWith('__gnu_lto')) commonSymbols.push(name);
    }
  }

  const thisSecs = elf.sectionsNamed('.gnu.linkonce.this_module');
  let thisModule: ThisModuleInfo | undefined;
  const tm = thisSecs[0];
  if (tm) {
    const nobits = tm.type === SHT_NOBITS;
    const nameAt = elf.is64 ? 24 : 12;
    const nameLen = elf.is64 ? 56 : 60;
    let name: string | undefined;
    if (!nobits && tm.size >= nameAt + nameLen) {
      const d = elf.data(tm);
      let end = nameAt;
      while (end < nameAt + nameLen && d[end] !== 0) end++;
      if (end > nameAt) name = elf.stringAt(tm.offset, tm.size, nameAt, 'struct module name');
    }
    thisModule = { count: thisSecs.length, size: tm.size, allocated: (tm.flags & SHF_ALLOC) !== 0, nobits, name };
  }

  const fileBase = file ? moduleNameFromPath(file) : undefined;
  const name = modinfo.get('name') || thisModule?.name || fileBase || '';

  return withJsonForm({
    file,
    name,
    compression,
    size: bytes.length,
    elfSize: image.length,
    elf: {
      class: elf.elfClass,
      endian: elf.littleEndian ? 'little' : 'big',
      machine: elf.machine,
      machineName: machineName(elf.machine),
      type: elf.type,
      flags: elf.flags,
    },
    modinfo,
    vermagic: vermagicRaw === undefined ? undefined : shared ? shared.vermagic(vermagicRaw) : parseVermagic(vermagicRaw),
    license: modinfo.get('license'),
    depends: splitDepends(modinfo.get('depends')),
    importNamespaces: modinfo.getAll('import_ns'),
    versions: versions?.entries,
    versionsAllocated: versions?.allocated ?? false,
    extendedVersions,
    undefinedSymbols,
    exports,
    crcSymbols,
    ksymtabStrings: crcSymbols.length === 0 ? readKsymtabStrings(elf) : [],
    thisModule,
    signature: shared && signature ? shared.signature(signature) : signature,
    loader: {
      modinfoSections: modinfoSecs.length,
      symtabSections: elf.sections.filter((s) => s.type === 2).length,
      hasKsymtab: exports.length > 0,
      hasKcrctab: elf.sections.some((s) => s.name.startsWith('__kcrctab')) || crcSymbols.length > 0,
      hasKflagstab: elf.section('__kflagstab') !== undefined,
      hasObsoleteKsymtabGpl: elf.section('__ksymtab_gpl') !== undefined,
      commonSymbols,
    },
  });
}

function splitDepends(v: string | undefined): string[] {
  return v ? v.split(',').filter((d) => d !== '') : [];
}

/** kmod's module name for a path: basename up to the first '.', with '-' folded to '_'. */
export function moduleNameFromPath(path: string): string {
  const base = basename(path);
  const dot = base.indexOf('.');
  return (dot < 0 ? base : base.slice(0, dot)).replace(/-/g, '_');
}

/** The module file extensions kmod recognises (kmod ≥28 with zstd). */
export const MODULE_EXTENSIONS = ['.ko', '.ko.gz', '.ko.xz', '.ko.zst'] as const;


/** Whether a file name ends in one of MODULE_EXTENSIONS. */
export function isModuleFileName(name: string): boolean {
  return MODULE_EXTENSIONS.some((ext) => name.endsWith(ext));
}
