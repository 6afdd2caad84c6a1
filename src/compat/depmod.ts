import type { KernelModule } from '../module/read-module.js';
import type { Reason } from './types.js';

/** One entry of depmod's symbol table: the CRC it will compare, and who provides it. */
export interface DepmodSymbol {
  readonly crc: bigint;
  /** undefined for vmlinux and the fake symbols. */
  readonly owner: string | undefined;
}

export interface DepmodSymbols {
  get(symbol: string): DepmodSymbol | undefined;
  /** A module that would export it but was dropped as incompatible (weak-modules' next round). */
  blockedProvider(symbol: string): { name: string; reason: string } | undefined;
}

/** The symbols depmod adds itself because the loader provides them. */
export const DEPMOD_FAKE_SYMBOLS = ['__this_module', '_GLOBAL_OFFSET_TABLE_', 'TOC.'];

/** What kmod lists as a module's dependency symbols (kmod_elf_get_dependency_symbols). */
export function depmodDependencySymbols(mod: Pick<KernelModule, 'undefinedSymbols' | 'versions'>): { name: string; crc: bigint; weak: boolean; versioned: boolean }[] {
  const out: { name: string; crc: bigint; weak: boolean; versioned: boolean }[] = [];
  forEachDependencySymbol(mod, (name, crc, weak, versioned) => out.push({ name, crc, weak, versioned }));
  return out;
}

/** depmodDependencySymbols(), one symbol at a time: a whole tree's worth is 190k of them, judged and let go. */
function forEachDependencySymbol(mod: Pick<KernelModule, 'undefinedSymbols' | 'versions'>, each: (name: string, crc: bigint, weak: boolean, versioned: boolean) => void): void {
  const versions = mod.versions ?? [];
  const visited = new Uint8Array(versions.length);
  // kmod matches __versions names exactly and takes the first entry; no entry means CRC 0.
  const first = new Map<string, number>();
  for (let i = versions.length - 1; i >= 0; i--) first.set(versions[i]!.symbol, i);
  for (const u of mod.undefinedSymbols) {
    const idx = first.get(u.name) ?? -1;
    if (idx >= 0) visited[idx] = 1;
    each(u.name, idx >= 0 ? versions[idx]!.crc : 0n, u.weak, idx >= 0);
  }
  // Entries no undefined symbol refers to (module_layout at least) are dependencies too.
  for (let i = 0; i < versions.length; i++) if (!visited[i]) each(versions[i]!.symbol, versions[i]!.crc, false, true);
}

/**
 * depmod -e [-E]: the warnings depmod prints for one module, with its quirks kept: weak
 * symbols are never reported, a symbol with no __versions entry compares as CRC 0, an
 * unreferenced __versions entry must resolve too, and nothing else (vermagic, licence,
 * namespaces, signatures) is looked at.
 */
export function depmodReasons(mod: KernelModule, path: string, symbols: DepmodSymbols, checkSymvers: boolean): Reason[] {
  const out: Reason[] = [];
  forEachDependencySymbol(mod, (name, crc, weak, versioned) => {
    const lookup = name.startsWith('.') ? name.slice(1) : name;
    const sym = symbols.get(lookup);
    if (sym === undefined) {
      if (weak) return;
      const blocked = symbols.blockedProvider(lookup);
      out.push({
        kind: blocked ? 'provider-incompatible' : 'unknown-symbol',
        severity: 'error',
        symbol: name,
        message: `${path} needs unknown symbol ${name}`,
        ...(blocked ? { provider: blocked.name } : {}),
      });
      return;
    }
    if (checkSymvers && sym.crc !== crc && !weak) {
      // Same words either way; the kind says whether the module had no CRC for it at all (depmod compares 0).
      out.push({
        kind: versioned ? 'crc-mismatch' : 'missing-crc',
        severity: 'error',
        symbol: name,
        message: `${path} disagrees about version of symbol ${name}`,
      });
    }
  });
  return out;
}
