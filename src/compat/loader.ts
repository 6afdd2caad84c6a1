import { isGplCompatible } from '../module/modinfo.js';
import type { KernelModule } from '../module/read-module.js';
import type { ModVersion } from '../module/modversions.js';
import type { KernelExport, KernelModel, Reason } from './types.js';

const ET_REL = 1;

/**
 * The owner of an export as the loader sees it: whether it carries the proprietary taint
 * (TAINT_PROPRIETARY_MODULE, from its licence or inherited), undefined when that is not known.
 */
export interface ProvidedSymbol {
  readonly exp: KernelExport;
  readonly proprietary: boolean | undefined;
}

/** Who provides a symbol right now (vmlinux or a loadable module), and who would but cannot load. */
export interface LoaderSymbols {
  find(symbol: string): ProvidedSymbol | undefined;
  /** A module that exports the symbol but was itself found unloadable on this kernel. */
  blockedProvider(symbol: string): { name: string; reason: string } | undefined;
}

/**
 * Modules the kernel taints proprietary by name whatever their licence says
 * (module_augment_kernel_taints / module_license_taint_check).
 */
const PROPRIETARY_BY_NAME = new Set(['driverloader', 'lve']);

/** Whether a module carries TAINT_PROPRIETARY_MODULE from its own modinfo. */
export function proprietaryByLicence(name: string, license: string | undefined): boolean {
  return !isGplCompatible(license) || PROPRIETARY_BY_NAME.has(name);
}

/** What judging one module found besides its reasons. */
export interface LoaderOutcome {
  /** The module ends up proprietary-tainted: by its licence, or inherited from a provider it uses. */
  proprietary: boolean;
}

export function atLeast(model: KernelModel, major: number, minor: number): boolean {
  const v = model.version;
  return v !== undefined && (v[0] > major || (v[0] === major && v[1] >= minor));
}

/**
 * The kernel loader's checks for one module on one kernel, in the loader's order
 * (kernel-module-abi.md §2.1, §7). All failures are collected, as the kernel reports
 * every unknown symbol before giving up.
 */
export function loaderReasons(mod: KernelModule, model: KernelModel, symbols: LoaderSymbols, outcome?: LoaderOutcome): Reason[] {
  const out: Reason[] = [];
  const name = mod.name;
  const cfg = model.config;
  const err = (r: Omit<Reason, 'severity'>) => out.push({ ...r, severity: 'error' });
  const warn = (r: Omit<Reason, 'severity'>) => out.push({ ...r, severity: 'warning' });
  let forced = false;
  /** try_to_force_load(): a taint with CONFIG_MODULE_FORCE_LOAD, a refusal without. */
  const forceLoad = (kind: Reason['kind'], what: string, refusal: string) => {
    if (cfg.forceLoad === true) {
      if (!forced) warn({ kind: 'taint', message: `${name}: ${what}: kernel tainted.` });
      forced = true;
    } else {
      err({ kind, message: `${name}: ${refusal}` });
    }
  };

  // 1. signature (module_sig_check)
  const sig = mod.signature;
  if (sig && !sig.wellFormed) {
    err({ kind: 'signature-malformed', message: `Loading of module with malformed signature is rejected (${sig.problem ?? 'bad signature trailer'})` });
  } else if (!sig && cfg.moduleSigForce === true) {
    err({ kind: 'signature-required', message: `Loading of unsigned module is rejected` });
  } else if (sig && cfg.moduleSigForce === true) {
    warn({ kind: 'unprovable', message: `${name}: signature enforcement is on; loading needs the signing key (${sig.signer ?? 'unknown signer'}) in the kernel keyring` });
  } else if (!sig && cfg.moduleSig === true) {
    warn({ kind: 'taint', message: `${name}: module verification failed: signature and/or required key missing - tainting kernel` });
  }

  // 2. ELF header against the kernel's own modules
  if (model.elf) {
    if (mod.elf.class !== model.elf.class || mod.elf.endian !== model.elf.endian || mod.elf.machine !== model.elf.machine) {
      err({
        kind: 'elf-mismatch',
        message: `Invalid ELF header: module is ELF${mod.elf.class} ${mod.elf.endian}-endian machine ${mod.elf.machine}, kernel wants ELF${model.elf.class} ${model.elf.endian}-endian machine ${model.elf.machine}`,
      });
      return out; // nothing else is meaningful for a foreign-architecture object
    }
  }
  if (mod.elf.type !== ET_REL) err({ kind: 'not-relocatable', message: `Invalid ELF header type: ${mod.elf.type} != ET_REL` });

  // 3. .gnu.linkonce.this_module
  const tm = mod.thisModule;
  if (!tm || tm.count !== 1 || tm.nobits || !tm.allocated) {
    err({ kind: 'this-module', message: tm ? `module ${name}: .gnu.linkonce.this_module section must be unique and allocated` : `No module found in object` });
  } else if (atLeast(model, 6, 4) && model.moduleStructSize !== undefined && tm.size !== model.moduleStructSize) {
    err({
      kind: 'module-struct-size',
      message: `module ${name}: .gnu.linkonce.this_module section size (0x${tm.size.toString(16)}) must match the kernel's built struct module size at run time (0x${model.moduleStructSize.toString(16)})`,
    });
  }
  if (mod.loader.modinfoSections > 1) err({ kind: 'this-module', message: `module ${name}: .modinfo section must be unique` });

  // 4./5. module_layout and vermagic
  const basic = mod.versions && mod.versionsAllocated ? mod.versions : undefined;
  const ext = mod.extendedVersions;
  const table: readonly ModVersion[] | undefined = ext ?? basic;
  if (model.modversions) {
    const layout = model.vmlinux.get('module_layout');
    if (!table) {
      forceLoad('no-modversions', 'module_layout', 'module has no symbol versions (no __versions section) and the kernel cannot force-load it');
    } else if (layout?.crc !== undefined) {
      checkVersion('module_layout', layout.crc, 'module-layout');
    }
  }
  const vm = mod.vermagic;
  if (vm === undefined) {
    forceLoad('vermagic-missing', 'bad vermagic', 'no version magic, refusing');
  } else if (model.vermagic) {
    // same_magic(): with CRCs the release part is ignored; `has_crcs` follows __versions only.
    const hasCrcs = model.modversions && basic !== undefined;
    const same = hasCrcs ? vm.flags === model.vermagic.flags : vm.raw === model.vermagic.raw;
    if (!same) err({ kind: 'vermagic', message: `${name}: version magic '${vm.raw}' should be '${model.vermagic.raw}'` });
  }

  // 6. export tables
  if (mod.exports.length > 0) {
    if (atLeast(model, 7, 0) && !mod.loader.hasKflagstab) {
      err({ kind: 'exports-without-flags', message: `${name}: no flags for exported symbols` });
    }
    if (model.modversions && !mod.loader.hasKcrctab) forceLoad('exports-without-crcs', 'no versions for exported symbols', 'no versions for exported symbols');
  }

  // 7. module: namespaces cannot be imported (≥6.17)
  if (atLeast(model, 6, 17)) {
    for (const ns of mod.importNamespaces) {
      if (ns.startsWith('module:')) err({ kind: 'module-namespace-import', message: `${name}: module tries to import module namespace: ${ns}` });
    }
  }
  for (const c of mod.loader.commonSymbols) {
    err({ kind: 'common-symbol', symbol: c, message: `${name}: please compile with -fno-common (common symbol ${c})` });
  }

  // 8. every undefined symbol (simplify_symbols → resolve_symbol). The proprietary taint can
  // grow while symbols resolve (inherit_taint, ≥5.12), and GPL-only exports vanish for the
  // symbols after that: `proprietary` is read afresh for each symbol, as fsa.gplok is.
  const ownLicenceProprietary = proprietaryByLicence(name, mod.license);
  let proprietary = ownLicenceProprietary;
  let usingGplOnly = false;
  const inheritsTaint = model.version === undefined || atLeast(model, 5, 12);
  for (const u of mod.undefinedSymbols) {
    if (u.name === '_GLOBAL_OFFSET_TABLE_' && model.elf?.machine === 62) continue; // x86 ignore_undef_symbol
    const hit = symbols.find(u.name);
    if (hit === undefined || (hit.exp.gplOnly && proprietary)) {
      if (u.weak) continue;
      if (hit) {
        err({
          kind: 'gpl-only',
          symbol: u.name,
          message: `${name}: Unknown symbol ${u.name} (err -2)`,
        });
        continue;
      }
      const blocked = symbols.blockedProvider(u.name);
      if (blocked) {
        out.push({
          kind: 'provider-incompatible',
          severity: 'error',
          symbol: u.name,
          provider: blocked.name,
          message: `${name}: Unknown symbol ${u.name} (err -2)`,
        });
      } else {
        err({ kind: 'unknown-symbol', symbol: u.name, message: `${name}: Unknown symbol ${u.name} (err -2)` });
      }
      continue;
    }
    const exp = hit.exp;
    // resolve_symbol(): using_gplonly_symbols is set before inherit_taint() looks at the owner.
    if (exp.gplOnly) usingGplOnly = true;
    if (exp.owner !== 'vmlinux' && inheritsTaint) {
      if (hit.proprietary === undefined) {
        warn({
          kind: 'unprovable',
          symbol: u.name,
          message: `${name}: the licence of ${exp.owner} (which provides ${u.name}) could not be read; taken as GPL-compatible`,
        });
      } else if (hit.proprietary && usingGplOnly) {
        const message = `${name}: module using GPL-only symbols uses symbols ${u.name} from proprietary module ${exp.owner}.`;
        // The symbol is left unresolved, which a weak reference survives (simplify_symbols).
        if (u.weak) warn({ kind: 'gpl-taint-inherit', symbol: u.name, message });
        else err({ kind: 'gpl-taint-inherit', symbol: u.name, message });
        continue;
      } else if (hit.proprietary && !proprietary) {
        warn({ kind: 'taint', symbol: u.name, message: `${name}: module uses symbols ${u.name} from proprietary module ${exp.owner}, inheriting taint.` });
        proprietary = true;
      }
    }
    if (model.modversions && exp.crc !== undefined) {
      if (!table) {
        forceLoad('no-modversions', u.name, 'module has no symbol versions (no __versions section) and the kernel cannot force-load it');
      } else if (!checkVersion(u.name, exp.crc, 'crc-mismatch')) {
        continue;
      }
    } else if (model.modversions && !exp.certain) {
      warn({ kind: 'unprovable', symbol: u.name, message: `${name}: CRC of ${u.name} is unknown without the kernel's Module.symvers` });
    }
    // 9. namespaces, after the CRC check as in resolve_symbol()
    const ns = exp.namespace;
    if (ns !== undefined && ns !== '') {
      if (ns.startsWith('module:')) {
        if (!moduleNamespaceAllows(ns.slice(7), name)) {
          err({ kind: 'namespace', symbol: u.name, message: `${name}: module ${name} is not allowed to use symbol ${u.name} from namespace ${ns}` });
        }
      } else if (!mod.importNamespaces.includes(ns)) {
        const message = `${name}: module uses symbol (${u.name}) from namespace ${ns}, but does not import it.`;
        if (cfg.allowMissingNamespaceImports === true) warn({ kind: 'namespace', symbol: u.name, message });
        else err({ kind: 'namespace', symbol: u.name, message });
      }
    }
  }

  // 10. duplicate exports (verify_exported_symbols)
  for (const e of mod.exports) {
    const hit = symbols.find(e.symbol);
    if (hit && hit.exp.owner !== name) {
      err({ kind: 'duplicate-export', symbol: e.symbol, message: `${name}: exports duplicate symbol ${e.symbol} (owned by ${hit.exp.owner === 'vmlinux' ? 'kernel' : hit.exp.owner})` });
    }
  }
  if (mod.modinfo.get('intree') === undefined) {
    warn({ kind: 'taint', message: `${name}: loading out-of-tree module taints kernel.` });
  }
  if (!isGplCompatible(mod.license)) warn({ kind: 'taint', message: `${name}: module license '${mod.license ?? 'unspecified'}' taints kernel.` });
  if (outcome) outcome.proprietary = proprietary;
  return out;

  /** check_version(): true when the symbol may be used. */
  function checkVersion(symbol: string, crc: bigint, kind: 'crc-mismatch' | 'module-layout'): boolean {
    const entry = table!.find((v) => v.symbol === symbol);
    if (entry === undefined) {
      if (ext) {
        warn({ kind: 'missing-crc', symbol, message: `${name}: no extended symbol version for ${symbol}` });
        return true;
      }
      const message = `${name}: no symbol version for ${symbol}`;
      if (model.missingCrcPolicy === 'reject') {
        err({ kind: 'missing-crc', symbol, message });
        return false;
      }
      warn({ kind: 'missing-crc', symbol, message });
      return true;
    }
    if (entry.crc !== crc) {
      err({ kind, symbol, message: `${name}: disagrees about version of symbol ${symbol}` });
      return false;
    }
    return true;
  }
}

/** ≥6.17 EXPORT_SYMBOL_FOR_MODULES: comma list of names, a trailing '*' is a prefix glob, '-' equals '_'. */
export function moduleNamespaceAllows(patterns: string, modname: string): boolean {
  const norm = (s: string) => s.replace(/-/g, '_');
  const m = norm(modname);
  return patterns.split(',').some((p) => {
    const q = norm(p.trim());
    return q.endsWith('*') ? m.startsWith(q.slice(0, -1)) : m === q;
  });
}
