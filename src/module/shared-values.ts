import { latin1 } from '../elf/reader.js';
import type { KernelModule, UndefinedSymbol } from './read-module.js';
import { crcFromHalves, type ModVersion } from './modversions.js';
import { ModInfo, parseVermagic, type Vermagic } from './modinfo.js';
import type { ModuleSignature } from './signature.js';

/**
 * The small values that recur across the modules of one tree, handed out once and then
 * shared: the symbols modules import, the CRCs they were built against, modinfo keys and
 * common entries, the vermagic, the signer. The 6.1 tree's 4023 modules import 185k symbols
 * and list 189k `__versions` entries, but only 18k distinct ones. Held one object each, they
 * survive the young generation and the collector copies every one of them: with every module
 * of that tree kept, that copying cost more than twice the parsing itself. A ModuleCache keeps
 * one of these for everything it reads.
 *
 * Text is looked up by its bytes (textAt), so a name already seen costs no new string: making
 * a string only to hash it and find its twin cost as much as the collector's copying saved.
 *
 * Sharing is invisible to callers that treat modules as their types say, read-only: the
 * values are equal field by field to what a module read alone gets, but one object may now
 * sit in many modules, so changing it in one would change it in all.
 */
export class SharedModuleValues {
  /** FNV-1a of the text's bytes → its record, or its records when several texts share a hash. */
  private readonly byHash = new Map<number, Text | Text[]>();

  /** bytes[start, end) as Latin-1 text (as latin1() decodes it), one string per distinct text. */
  textAt(bytes: Uint8Array, start: number, end: number): string {
    return this.recordAt(bytes, start, end).text;
  }

  /** A string already made (a signer, a key id): the one copy of it. */
  text(s: string): string {
    return this.recordOf(s).text;
  }

  /** The import of the symbol named by bytes[start, end). */
  undefinedSymbolAt(bytes: Uint8Array, start: number, end: number, weak: boolean): UndefinedSymbol {
    return this.undefinedSymbolOf(this.recordAt(bytes, start, end), weak);
  }

  /** The `__versions` entry for the symbol named by bytes[start, end): the first CRC seen for it is shared, another is the module's own. */
  versionAt(bytes: Uint8Array, start: number, end: number, crcHigh: number, crcLow: number): ModVersion {
    const r = this.recordAt(bytes, start, end);
    // The CRC as two 32-bit halves: a tree lists 189k entries, and most repeat the CRC already
    // shared, so a BigInt is made only for a CRC not seen with this name yet.
    const v = r.version;
    if (v !== undefined && r.crcHigh === crcHigh && r.crcLow === crcLow) return v;
    const crc = crcFromHalves(crcHigh, crcLow);
    if (v !== undefined) return { symbol: r.text, crc };
    r.crcHigh = crcHigh;
    r.crcLow = crcLow;
    return (r.version = { symbol: r.text, crc });
  }

  /**
   * The modinfo entry `key=value` at bytes[start, end), its '=' at eq (eq === end: none, an
   * empty value). The key is shared; so is the whole entry when many modules repeat it
   * (license=GPL, intree=Y, vermagic=…).
   */
  modinfoEntryAt(bytes: Uint8Array, start: number, eq: number, end: number): readonly [string, string] {
    const key = this.textAt(bytes, start, eq);
    const value = eq < end ? eq + 1 : end;
    if (!REPEATED_VALUES.has(key)) return [key, latin1(bytes, value, end)];
    const r = this.recordAt(bytes, start, end);
    return (r.entry ??= [key, latin1(bytes, value, end)]);
  }

  private modinfoEntryOf(k: string, v: string): readonly [string, string] {
    const key = this.text(k);
    if (!REPEATED_VALUES.has(key)) return [key, v];
    const r = this.recordOf(`${k}=${v}`);
    return (r.entry ??= [key, v]);
  }

  private undefinedSymbolOf(r: Text, weak: boolean): UndefinedSymbol {
    return weak ? (r.weak ??= { name: r.text, weak: true }) : (r.strong ??= { name: r.text, weak: false });
  }

  private versionOf(r: Text, crc: bigint): ModVersion {
    if (r.version === undefined) {
      r.crcHigh = Number(crc >> 32n);
      r.crcLow = Number(crc & 0xffff_ffffn);
      r.version = { symbol: r.text, crc };
    }
    const v = r.version;
    return v.crc === crc ? v : { symbol: r.text, crc };
  }

  // recordAt and recordOf repeat the bucket search rather than share it through a callback:
  // recordAt runs for every name of every module (400k times a tree), where a closure per call
  // is not free.
  private recordAt(bytes: Uint8Array, start: number, end: number): Text {
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
    const hit = this.byHash.get(h);
    if (hit !== undefined) {
      if (!Array.isArray(hit)) {
        if (sameText(hit.text, bytes, start, end)) return hit;
      } else {
        for (const r of hit) if (sameText(r.text, bytes, start, end)) return r;
      }
    }
    return this.add(h, hit, latin1(bytes, start, end));
  }

  private recordOf(s: string): Text {
    // The same hash as recordAt() gives the string's Latin-1 bytes.
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    const hit = this.byHash.get(h);
    if (hit !== undefined) {
      if (!Array.isArray(hit)) {
        if (hit.text === s) return hit;
      } else {
        for (const r of hit) if (r.text === s) return r;
      }
    }
    return this.add(h, hit, s);
  }

  private add(h: number, hit: Text | Text[] | undefined, text: string): Text {
    const r: Text = { text, strong: undefined, weak: undefined, version: undefined, crcHigh: 0, crcLow: 0, entry: undefined, vermagic: undefined };
    if (hit === undefined) this.byHash.set(h, r);
    else if (!Array.isArray(hit)) this.byHash.set(h, [hit, r]);
    else if (hit.length < MAX_PER_HASH) hit.push(r);
    // Past that, the text is this module's own: not kept, not shared.
    return r;
  }

  /** The signer, key and hash of a tree's signatures are the same in every module. */
  signature(sig: ModuleSignature): ModuleSignature {
    const text = (s: string | undefined) => (s === undefined ? undefined : this.text(s));
    return { ...sig, signer: text(sig.signer), keyId: text(sig.keyId), hashAlgorithm: text(sig.hashAlgorithm) };
  }

  vermagic(raw: string): Vermagic {
    const r = this.recordOf(raw);
    return (r.vermagic ??= parseVermagic(r.text));
  }

  /**
   * The same module holding shared values in place of its own: for a module that arrives
   * from a reader thread, whose values were copied one by one into this thread.
   */
  adopt(mod: KernelModule): KernelModule {
    return {
      ...mod,
      modinfo: new ModInfo(mod.modinfo.entries.map(([k, v]) => this.modinfoEntryOf(k, v))),
      vermagic: mod.vermagic && this.vermagic(mod.vermagic.raw),
      versions: mod.versions?.map((v) => this.versionOf(this.recordOf(v.symbol), v.crc)),
      undefinedSymbols: mod.undefinedSymbols.map((u) => this.undefinedSymbolOf(this.recordOf(u.name), u.weak)),
      signature: mod.signature && this.signature(mod.signature),
    };
  }
}

/** Modinfo keys whose values many modules of a tree share (aliases, parameters, names are each their own). */
const REPEATED_VALUES: ReadonlySet<string> = new Set(['license', 'intree', 'retpoline', 'vermagic', 'author', 'import_ns', 'depends']);

/**
 * Texts kept under one hash. FNV-1a collisions can be chained (a 72 KB .ko.xz named 32768
 * imports with one hash, so each new name was compared with all before it: 15 s to read), so
 * past this many a text is not shared, and a lookup compares with at most this many.
 */
const MAX_PER_HASH = 8;

/** One distinct text, and the shared values made of it so far. */
interface Text {
  readonly text: string;
  strong: UndefinedSymbol | undefined;
  weak: UndefinedSymbol | undefined;
  version: ModVersion | undefined;
  /** The shared version's CRC, as high and low 32 bits. */
  crcHigh: number;
  crcLow: number;
  entry: readonly [string, string] | undefined;
  vermagic: Vermagic | undefined;
}

function sameText(s: string, bytes: Uint8Array, start: number, end: number): boolean {
  if (s.length !== end - start) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== bytes[start + i]) return false;
  return true;
}
