// SPDX-License-Identifier: GPL-2.0-or-later
//
// What the kernel said (qemu-oracle.ts) and what kabi says, in one vocabulary: the problems of
// the loader stage that refused the module. The kernel stops at the first stage that fails
// (signature, ELF and struct module, version magic, symbols, exports) and reports every problem
// of that stage (simplify_symbols reports each unknown symbol); kabi collects the problems of
// all stages, in the loader's order, so its first failing stage is what the kernel must show.

import type { Reason, ReasonKind } from '../../src/compat/types.js';

/** Loader stages in load_module()'s order. */
const STAGE: Partial<Record<ReasonKind, number>> = {
  'signature-malformed': 1,
  'signature-required': 1,
  'elf-mismatch': 2,
  'not-relocatable': 2,
  'this-module': 2,
  'module-struct-size': 2,
  'no-modversions': 3,
  'module-layout': 3,
  vermagic: 4,
  'vermagic-missing': 4,
  'exports-without-crcs': 5,
  'exports-without-flags': 5,
  'module-namespace-import': 5,
  'common-symbol': 6,
  'unknown-symbol': 6,
  'gpl-only': 6,
  'provider-incompatible': 6,
  'crc-mismatch': 6,
  'missing-crc': 6,
  namespace: 6,
  'gpl-taint-inherit': 6,
  'duplicate-export': 7,
};

/** One problem as both sides can name it: a category and, for symbol problems, the symbol. */
function kabiProblem(r: Reason): string {
  switch (r.kind) {
    case 'unknown-symbol':
    case 'gpl-only': // the kernel does not find GPL-only exports for a proprietary module
    case 'provider-incompatible': // its provider could not be loaded first
      return `unknown ${r.symbol}`;
    case 'crc-mismatch':
      return `crc ${r.symbol}`;
    case 'module-layout':
      return 'crc module_layout';
    case 'missing-crc':
      return `missing-crc ${r.symbol}`;
    case 'namespace':
      return `namespace ${r.symbol}`;
    case 'gpl-taint-inherit':
      return `gpl-taint ${r.symbol}`;
    case 'module-struct-size':
      return 'struct-size';
    case 'vermagic':
      return 'vermagic';
    default:
      return r.symbol ? `${r.kind} ${r.symbol}` : r.kind;
  }
}

/** kabi's problems at its first failing stage (empty when it says the module loads). */
export function kabiProblems(reasons: readonly Reason[]): string[] {
  const errors = reasons.filter((r) => r.severity === 'error');
  if (errors.length === 0) return [];
  const first = Math.min(...errors.map((r) => STAGE[r.kind] ?? 99));
  return [...new Set(errors.filter((r) => (STAGE[r.kind] ?? 99) === first).map(kabiProblem))].sort();
}

/**
 * The problems the kernel's messages about `name` report. A symbol that gets a specific message
 * (CRC, namespace, proprietary provider) is also reported as "Unknown symbol … (err …)" right
 * after; that line only counts when nothing more specific was said. A refusal with no message
 * this knows is reported as `unrecognised: <messages>`, so that it cannot pass unnoticed.
 */
export function kernelProblems(name: string, messages: readonly string[], loaded: boolean): string[] {
  if (loaded) return [];
  const specific = new Set<string>();
  const unknown = new Set<string>();
  const other = new Set<string>();
  const n = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const line of messages) {
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^${n}: disagrees about version of symbol (\\S+)$`).exec(line))) specific.add(`crc ${m[1]}`);
    else if ((m = new RegExp(`^${n}: no symbol version for (\\S+)$`).exec(line))) specific.add(`missing-crc ${m[1]}`);
    else if ((m = new RegExp(`^${n}: module uses symbol \\((\\S+)\\) from namespace (\\S+), but does not import it\\.$`).exec(line))) specific.add(`namespace ${m[1]}`);
    else if ((m = new RegExp(`^${n}: module using GPL-only symbols uses symbols (\\S+) from proprietary module (\\S+)\\.$`).exec(line))) specific.add(`gpl-taint ${m[1]}`);
    else if ((m = new RegExp(`^${n}: Unknown symbol (\\S+) \\(err (-?\\d+)\\)$`).exec(line))) unknown.add(m[1]!);
    else if (new RegExp(`^${n}: version magic '.*' should be '.*'$`).test(line)) specific.add('vermagic');
    else if (new RegExp(`^module ${n}: \\.gnu\\.linkonce\\.this_module section size must match`).test(line)) specific.add('struct-size');
    else if (/taints kernel|tainting kernel|Disabling lock debugging/.test(line)) continue;
    else other.add(line);
  }
  const symbolsWithReason = new Set([...specific].map((p) => p.split(' ')[1]).filter(Boolean));
  for (const s of unknown) if (!symbolsWithReason.has(s)) specific.add(`unknown ${s}`);
  if (specific.size === 0) return [`unrecognised: ${[...other].join(' | ') || 'no message'}`];
  return [...specific].sort();
}
