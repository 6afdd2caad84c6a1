import { latin1 } from '../elf/reader.js';
import type { KernelModule, UndefinedSymbol } from './read-module.js';
import type { ModVersion } from './modversions.js';
import { ModInfo, parseVermagic, REPEATED_VALUES, type Vermagic } from './modinfo.js';
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
 * Sharing is invisible to callers: the values are plain readonly data, equal field by field
 * to what a module read alone gets.
 */
export class SharedModuleValues {
  /** FNV-1a of the bytes → the string, or the strings when several share a hash. */
  private readonly byHash = new Map<number, string | string[]>();
  private readonly strong = new Map<string, UndefinedSymbol>();
  private readonly weak = new Map<string, UndefinedSymbol>();
  private readonly versions = new Map<string, ModVersion>();
  private readonly vermagics = new Map<string, Vermagic>();
  /** Keyed by the entry's whole `key=value` text. */
  private readonly entries = new Map<string, readonly [string, string]>();

  /** bytes[start, end) as Latin-1 text (as latin1() decodes it), one string per distinct text. */
  textAt(bytes: Uint8Array, start: number, end: number): string {
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
    const hit = this.byHash.get(h);
    if (typeof hit === 'string') {
      if (sameText(hit, bytes, start, end)) return hit;
    } else if (hit !== undefined) {
      for (const s of hit) if (sameText(s, bytes, start, end)) return s;
    }
    return this.add(h, hit, latin1(bytes, start, end));
  }

  /** A string already made (a signer, a key id): the one copy of it. */
  text(s: string): string {
    // The same hash as textAt() gives the string's Latin-1 bytes.
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    const hit = this.byHash.get(h);
    if (typeof hit === 'string') {
      if (hit === s) return hit;
    } else if (hit !== undefined) {
      for (const t of hit) if (t === s) return t;
    }
    return this.add(h, hit, s);
  }

  private add(h: number, hit: string | string[] | undefined, s: string): string {
    if (hit === undefined) this.byHash.set(h, s);
    else if (typeof hit === 'string') this.byHash.set(h, [hit, s]);
    else hit.push(s);
    return s;
  }

  /** `name` should come from textAt: its hash is then computed once, not per lookup. */
  undefinedSymbol(name: string, weak: boolean): UndefinedSymbol {
    const map = weak ? this.weak : this.strong;
    let u = map.get(name);
    if (u === undefined) {
      u = { name, weak };
      map.set(name, u);
    }
    return u;
  }

  /** The first CRC seen for a symbol is shared; a module built against another gets its own. */
  version(symbol: string, crc: bigint): ModVersion {
    const v = this.versions.get(symbol);
    if (v !== undefined) return v.crc === crc ? v : { symbol: v.symbol, crc };
    const made = { symbol, crc };
    this.versions.set(symbol, made);
    return made;
  }

  /**
   * A modinfo entry whose value many modules repeat (license=GPL, intree=Y, vermagic=…):
   * `raw` is its whole `key=value` text, from textAt.
   */
  entry(raw: string, key: string, value: () => string): readonly [string, string] {
    let e = this.entries.get(raw);
    if (e === undefined) {
      e = [key, value()];
      this.entries.set(raw, e);
    }
    return e;
  }

  /** The signer, key and hash of a tree's signatures are the same in every module. */
  signature(sig: ModuleSignature): ModuleSignature {
    const text = (s: string | undefined) => (s === undefined ? undefined : this.text(s));
    return { ...sig, signer: text(sig.signer), keyId: text(sig.keyId), hashAlgorithm: text(sig.hashAlgorithm) };
  }

  vermagic(raw: string): Vermagic {
    let v = this.vermagics.get(raw);
    if (v === undefined) {
      v = parseVermagic(raw);
      this.vermagics.set(raw, v);
    }
    return v;
  }

  /**
   * The same module holding shared values in place of its own: for a module that arrives
   * from a reader thread, whose values were copied one by one into this thread.
   */
  adopt(mod: KernelModule): KernelModule {
    return {
      ...mod,
      modinfo: new ModInfo(
        mod.modinfo.entries.map(([k, v]): readonly [string, string] => {
          const key = this.text(k);
          return REPEATED_VALUES.has(key) ? this.entry(this.text(`${k}=${v}`), key, () => v) : [key, v];
        }),
      ),
      vermagic: mod.vermagic && this.vermagic(this.text(mod.vermagic.raw)),
      versions: mod.versions?.map((v) => this.version(this.text(v.symbol), v.crc)),
      undefinedSymbols: mod.undefinedSymbols.map((u) => this.undefinedSymbol(this.text(u.name), u.weak)),
      signature: mod.signature && this.signature(mod.signature),
    };
  }
}

function sameText(s: string, bytes: Uint8Array, start: number, end: number): boolean {
  if (s.length !== end - start) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) !== bytes[start + i]) return false;
  return true;
}
