import type { Reason } from '../compat/types.js';
import type { Explanation } from './explain.js';
import type { ProviderGroup } from './providers.js';
import type { Cell, ModuleCopy, StatusReport } from './types.js';

/** Bumped only when a field changes meaning or disappears; new fields may appear within a version. */
export const STATUS_JSON_VERSION = 1;

const crc = (v: bigint | undefined) => (v === undefined ? null : `0x${v.toString(16).padStart(8, '0')}`);

export function reasonJson(r: Reason) {
  return { kind: r.kind, severity: r.severity, symbol: r.symbol ?? null, provider: r.provider ?? null, message: r.message };
}

export function copyJson(c: ModuleCopy) {
  return {
    path: c.path,
    origin: c.origin,
    kernel: c.kernel ?? null,
    builtFor: c.builtFor ?? null,
    version: c.version ?? null,
    srcversion: c.srcversion ?? null,
    dkms: c.dkms ? { module: c.dkms.module, version: c.dkms.version, kernel: c.dkms.kernel, arch: c.dkms.arch } : null,
    error: c.error ?? null,
  };
}

export function cellJson(c: Cell) {
  return {
    kernel: c.kernel,
    state: c.state,
    active: c.active,
    loads: c.loads ?? null,
    file: c.file ?? null,
    link: c.link ?? null,
    target: c.target ?? null,
    builtFor: c.builtFor ?? null,
    version: c.version ?? null,
    notes: c.notes.map((n) => ({ kind: n.kind, message: n.message, by: n.by ?? null })),
    reasons: c.reasons.map(reasonJson),
  };
}

/** `kabi status --json` (documented in docs/status.md). */
export function statusJson(r: StatusReport) {
  return {
    format: 'kabi-status',
    version: STATUS_JSON_VERSION,
    root: r.root,
    semantics: r.semantics,
    running: r.running ?? null,
    kernels: r.kernels.map((k) => ({ release: k.release, moduleDir: k.moduleDir, running: k.running, hasSymvers: k.hasSymvers, notes: k.notes })),
    modules: r.modules.map((m) => ({ name: m.name, copies: m.copies.map(copyJson), cells: m.cells.map(cellJson) })),
  };
}

export function providersJson(groups: readonly ProviderGroup[]): unknown[] {
  return groups.map((g) => ({
    provider: g.provider ?? null,
    path: g.path ?? null,
    inTree: g.inTree,
    symbols: g.symbols.map((s) => ({ symbol: s.symbol, wanted: crc(s.wanted), provided: crc(s.provided), weak: s.weak })),
    providers: providersJson(g.providers),
  }));
}

/** `kabi status --why MODULE --kernel K --json`. */
export function explanationJson(e: Explanation) {
  return {
    format: 'kabi-status-why',
    version: STATUS_JSON_VERSION,
    root: e.root,
    semantics: e.semantics,
    module: e.name,
    kernel: e.kernel,
    cell: cellJson(e.cell),
    copies: e.copies.map(copyJson),
    providers: e.providers ? providersJson(e.providers) : null,
    kernelNotes: e.kernelNotes,
  };
}
