import { KabiError } from '../errors.js';
import { toJsonValue, type JsonOf } from '../json.js';

/**
 * Module.symvers line layouts across kernel versions (kernel-module-abi.md §3.1):
 * - `legacy`:  crc, symbol, module                          (very old 2.6)
 * - `4col`:    crc, symbol, module, export-type             (≤5.3)
 * - `ns-third`: crc, symbol, namespace, module, export-type (5.4–5.5)
 * - `ns-last`: crc, symbol, module, export-type, namespace  (≥5.6; empty namespace leaves a trailing tab)
 */
export type SymversFormat = 'legacy' | '4col' | 'ns-third' | 'ns-last';

export const EXPORT_TYPES = [
  'EXPORT_SYMBOL',
  'EXPORT_SYMBOL_GPL',
  'EXPORT_SYMBOL_GPL_FUTURE',
  'EXPORT_UNUSED_SYMBOL',
  'EXPORT_UNUSED_SYMBOL_GPL',
] as const;
/** The export macro a Module.symvers line names. */
export type ExportType = (typeof EXPORT_TYPES)[number];
const EXPORT_TYPE_SET: ReadonlySet<string> = new Set(EXPORT_TYPES);

export function isExportType(s: string | undefined): s is ExportType {
  return s !== undefined && EXPORT_TYPE_SET.has(s);
}

export function isGplOnlyExport(type: ExportType | undefined): boolean {
  return type === 'EXPORT_SYMBOL_GPL' || type === 'EXPORT_UNUSED_SYMBOL_GPL';
}

/** One Module.symvers line. */
export interface SymversEntry {
  /** The CRC as written (32 bits in practice; kept at full width). */
  readonly crc: bigint;
  readonly symbol: string;
  /** `vmlinux`, or the kbuild path of the module without `.ko` (e.g. `drivers/usb/storage/usb-storage`). */
  readonly module: string;
  /** Absent only in the three-column legacy format. */
  readonly exportType: ExportType | undefined;
  readonly namespace: string | undefined;
  /** 1-based line number in the source file. */
  readonly line: number;
}

/** An indexed Module.symvers. */
export class SymversTable {
  readonly entries: readonly SymversEntry[];
  readonly format: SymversFormat | undefined;
  readonly file: string | undefined;
  private readonly index: Map<string, SymversEntry>;

  constructor(entries: readonly SymversEntry[], format: SymversFormat | undefined, file?: string) {
    this.entries = entries;
    this.format = format;
    this.file = file;
    this.index = new Map();
    // A later line for the same symbol replaces an earlier one, as depmod's hash_add does.
    for (const e of entries) this.index.set(e.symbol, e);
  }

  get size(): number {
    return this.entries.length;
  }

  get(symbol: string): SymversEntry | undefined {
    return this.index.get(symbol);
  }

  has(symbol: string): boolean {
    return this.index.has(symbol);
  }

  /** Exports of the kernel image itself (and of built-in modules, which modpost files under vmlinux). */
  vmlinux(): SymversEntry[] {
    return this.entries.filter((e) => e.module === 'vmlinux');
  }

  /** Entries grouped by the module column. */
  byModule(): Map<string, SymversEntry[]> {
    const out = new Map<string, SymversEntry[]>();
    for (const e of this.entries) {
      const list = out.get(e.module);
      if (list) list.push(e);
      else out.set(e.module, [e]);
    }
    return out;
  }

  /** The JSON form: file, format and entries, CRCs as `0x…` strings (see JsonOf). */
  toJSON(): { file: string | undefined; format: SymversFormat | undefined; entries: JsonOf<SymversEntry>[] } {
    return { file: this.file, format: this.format, entries: toJsonValue(this.entries) as JsonOf<SymversEntry>[] };
  }
}

/** `0x` + 1–16 hex digits, parsed without a regex or a string-to-BigInt conversion (26K lines per file). */
function parseCrc(t: string): bigint | undefined {
  const n = t.length;
  if (n < 3 || n > 18 || t.charCodeAt(0) !== 48 || (t.charCodeAt(1) | 0x20) !== 120) return undefined;
  let hi = 0;
  let lo = 0;
  for (let i = 2; i < n; i++) {
    const c = t.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : (c | 0x20) >= 97 && (c | 0x20) <= 102 ? (c | 0x20) - 87 : -1;
    if (d < 0) return undefined;
    // Two 32-bit halves keep every step exact.
    hi = ((hi << 4) | (lo >>> 28)) >>> 0;
    lo = ((lo << 4) | d) >>> 0;
  }
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
}

function hasWhitespace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 32 || (c >= 9 && c <= 13)) return true;
  }
  return false;
}

/**
 * Parse Module.symvers text in any of its layouts. Blank lines are ignored; anything else
 * that is not a well-formed line is an error naming the file and line, because a
 * half-read symvers would silently turn into wrong verdicts.
 */
export function parseSymvers(text: string, opts: { file?: string } = {}): SymversTable {
  const entries: SymversEntry[] = [];
  let format: SymversFormat | undefined;
  let lineNo = 0;
  let start = 0;
  const n = text.length;
  while (start < n) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = n;
    lineNo++;
    const raw = text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end);
    start = end + 1;
    if (raw === '' || (raw.charCodeAt(0) <= 32 && raw.trim() === '')) continue;
    const { entry, lineFormat } = parseLine(raw, lineNo, opts.file);
    format ??= lineFormat;
    entries.push(entry);
  }
  return new SymversTable(entries, format, opts.file);
}

function parseLine(raw: string, line: number, file: string | undefined): { entry: SymversEntry; lineFormat: SymversFormat } {
  const bad = (why: string) => new KabiError('SYMVERS_FORMAT', `${why}: ${JSON.stringify(raw.length > 120 ? raw.slice(0, 120) + '…' : raw)}`, { file, line });
  const f = raw.split('\t');
  if (f.length < 3 || f.length > 5) throw bad(`expected 3 to 5 tab-separated fields, found ${f.length}`);
  const [crcText, symbol] = f as [string, string];
  const crc = parseCrc(crcText);
  if (crc === undefined) throw bad(`CRC ${JSON.stringify(crcText)} is not a hexadecimal 0x… value`);
  if (symbol === '' || hasWhitespace(symbol)) throw bad('symbol name is empty or contains whitespace');
  let module: string;
  let exportType: ExportType | undefined;
  let namespace: string | undefined;
  let lineFormat: SymversFormat;
  if (f.length === 3) {
    module = f[2]!;
    lineFormat = 'legacy';
  } else if (f.length === 4) {
    module = f[2]!;
    if (!isExportType(f[3])) throw bad(`unknown export type ${JSON.stringify(f[3])}`);
    exportType = f[3];
    lineFormat = '4col';
  } else if (isExportType(f[3])) {
    module = f[2]!;
    exportType = f[3];
    namespace = f[4] || undefined;
    lineFormat = 'ns-last';
  } else if (isExportType(f[4])) {
    namespace = f[2] || undefined;
    module = f[3]!;
    exportType = f[4];
    lineFormat = 'ns-third';
  } else {
    throw bad('no known export type in field 4 or 5');
  }
  if (module === '') throw bad('module field is empty');
  return { entry: { crc, symbol, module, exportType, namespace, line }, lineFormat };
}
