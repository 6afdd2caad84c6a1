import type { KernelModel } from '../compat/types.js';
import type { Candidate } from '../compat/types.js';
import type { KernelModule } from '../module/read-module.js';

/** One symbol a module needs, and what it asked for. */
export interface NeededSymbol {
  readonly symbol: string;
  /** CRC from the module's __versions (or extended versions); undefined when it has none. */
  readonly wanted: bigint | undefined;
  /** CRC the provider exports; undefined when it carries none (or nothing provides it). */
  readonly provided: bigint | undefined;
  readonly weak: boolean;
}

/**
 * Who provides what a module needs on one kernel: vmlinux, in-tree modules, and out-of-tree
 * modules, the last expanded in turn (their own needs), so a broken link anywhere in the
 * chain is visible. `provider` is undefined for the symbols nothing provides.
 */
export interface ProviderGroup {
  readonly provider: string | undefined;
  /** System path of the providing module (undefined for vmlinux and unresolved symbols). */
  readonly path: string | undefined;
  readonly inTree: boolean;
  readonly symbols: readonly NeededSymbol[];
  /** The provider's own providers (out-of-tree providers only; cycles and repeats are cut). */
  readonly providers: readonly ProviderGroup[];
}

interface Provider {
  name: string;
  path: string;
  inTree: boolean;
  module: KernelModule | undefined;
  crc: bigint | undefined;
}

/** The provider chain of `module` in the world of `model` plus `world` (taken ahead of same-named tree modules). */
export function providerChain(module: KernelModule, model: KernelModel, world: readonly Candidate[], maxDepth = 6): ProviderGroup[] {
  const bySymbol = new Map<string, Provider>();
  const worldNames = new Set(world.map((c) => c.module.name));
  for (const c of world) {
    for (const e of c.module.exports) if (!bySymbol.has(e.symbol)) bySymbol.set(e.symbol, { name: c.module.name, path: c.path, inTree: false, module: c.module, crc: e.crc });
  }
  for (const tm of model.modules.values()) {
    if (worldNames.has(tm.name)) continue;
    for (const e of tm.exports) {
      if (!bySymbol.has(e.symbol)) bySymbol.set(e.symbol, { name: tm.name, path: tm.path, inTree: tm.inTree, module: tm.module, crc: e.crc });
    }
  }
  const seen = new Set<string>();
  const expand = (mod: KernelModule, depth: number): ProviderGroup[] => {
    const wantedOf = new Map<string, bigint>();
    for (const v of [...(mod.extendedVersions ?? []), ...(mod.versions ?? [])]) if (!wantedOf.has(v.symbol)) wantedOf.set(v.symbol, v.crc);
    const groups = new Map<string, { provider: Provider | undefined; symbols: NeededSymbol[] }>();
    const add = (key: string, provider: Provider | undefined, s: NeededSymbol) => {
      const g = groups.get(key);
      if (g) g.symbols.push(s);
      else groups.set(key, { provider, symbols: [s] });
    };
    for (const u of mod.undefinedSymbols) {
      const wanted = wantedOf.get(u.name);
      const v = model.vmlinux.get(u.name);
      if (v) {
        add('\0vmlinux', { name: 'vmlinux', path: '', inTree: true, module: undefined, crc: v.crc }, { symbol: u.name, wanted, provided: v.crc, weak: u.weak });
        continue;
      }
      const p = bySymbol.get(u.name);
      if (p) add(p.path, p, { symbol: u.name, wanted, provided: p.crc, weak: u.weak });
      else add('\0unresolved', undefined, { symbol: u.name, wanted, provided: undefined, weak: u.weak });
    }
    const out: ProviderGroup[] = [];
    for (const [key, g] of groups) {
      const p = g.provider;
      let providers: ProviderGroup[] = [];
      if (p && !p.inTree && p.module && depth < maxDepth && !seen.has(p.path)) {
        seen.add(p.path);
        providers = expand(p.module, depth + 1);
      }
      out.push({
        provider: key === '\0unresolved' ? undefined : p!.name,
        path: key.startsWith('\0') ? undefined : p!.path,
        inTree: p?.inTree ?? false,
        symbols: g.symbols,
        providers,
      });
    }
    // vmlinux first, then modules by name, unresolved last: the order a reader scans for trouble.
    const rank = (g: ProviderGroup) => (g.provider === 'vmlinux' && g.path === undefined ? 0 : g.provider === undefined ? 2 : 1);
    return out.sort((a, b) => rank(a) - rank(b) || (a.provider ?? '').localeCompare(b.provider ?? ''));
  };
  return expand(module, 0);
}
