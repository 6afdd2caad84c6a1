import type { Explanation } from './explain.js';
import type { ProviderGroup } from './providers.js';
import type { Cell, StatusReport } from './types.js';

/** What a cell means to the reader: it loads (good), needs a look (warn), or will not load (bad). */
export type Tone = 'good' | 'warn' | 'bad';

/**
 * How the views mark a span with its tone. The CLI passes one that colours (or not: its
 * --color, NO_COLOR, TERM); the default leaves text as it is. Presentation says what a span
 * means; whether that becomes colour is the caller's business.
 */
export type Paint = (text: string, tone: Tone) => string;

const plain: Paint = (text) => text;

/** A cell's tone: never good for a file that will not load (built!, stale!). */
export function cellTone(c: Cell): Tone {
  switch (c.state) {
    case 'built':
      return c.loads === false ? 'bad' : c.active ? 'good' : 'warn';
    case 'weak-linked':
      return c.loads === false ? 'bad' : 'good';
    case 'compatible':
      return 'warn';
    case 'incompatible':
    case 'stale':
      return 'bad';
  }
}

const MAX_REASONS = 3;

/** Short label of a cell in the matrix; kernels are named by their index in the legend. */
function label(c: Cell, index: ReadonlyMap<string, number>): string {
  switch (c.state) {
    case 'built':
      return c.active ? (c.loads === false ? 'built!' : 'built') : 'built*';
    case 'weak-linked': {
      const i = c.builtFor === undefined ? undefined : index.get(c.builtFor);
      return i === undefined ? 'linked' : `linked<-[${i}]`;
    }
    case 'compatible':
      return 'compatible*';
    case 'incompatible':
      return 'incompatible';
    case 'stale':
      return 'stale!';
  }
}

/** Whether a cell needs a line of explanation below the matrix. */
function noteworthy(c: Cell): boolean {
  if (c.state === 'weak-linked') return false;
  if (c.state === 'built') return !c.active || c.loads === false;
  return true;
}

/** The human view of `kabi status`: a legend of kernels, the matrix, then what needs explaining. */
export function renderStatus(r: StatusReport, paint: Paint = plain): string {
  if (r.kernels.length === 0) return `no kernels installed under ${r.root}\n`;
  if (r.modules.length === 0) return `no out-of-tree modules under ${r.root} (${r.kernels.length} kernel${r.kernels.length === 1 ? '' : 's'} installed)\n`;
  const index = new Map(r.kernels.map((k, i) => [k.release, i + 1]));
  let out = 'Kernels:\n';
  for (const k of r.kernels) {
    const tags = [k.running ? 'running' : '', k.hasSymvers ? '' : 'no Module.symvers: CRCs taken from its modules'].filter(Boolean);
    out += `  [${index.get(k.release)}] ${k.release}${tags.length ? `  (${tags.join('; ')})` : ''}\n`;
  }
  const header = ['module', 'version', ...r.kernels.map((k) => `[${index.get(k.release)}]`)];
  const rows = r.modules.map((m) => {
    const versions = [...new Set(m.copies.map((c) => c.version).filter((v): v is string => v !== undefined))];
    return { cells: m.cells, text: [m.name, versions.join(',') || '-', ...m.cells.map((c) => label(c, index))] };
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row.text[i]!.length)));
  const line = (cols: string[], colour?: (i: number, padded: string) => string) =>
    cols
      .map((c, i) => {
        const padded = i === cols.length - 1 ? c : c.padEnd(widths[i]!);
        return colour ? colour(i, padded) : padded;
      })
      .join('  ')
      .trimEnd() + '\n';
  out += '\n' + line(header);
  for (const row of rows) out += line(row.text, (i, padded) => (i < 2 ? padded : paint(padded, cellTone(row.cells[i - 2]!))));
  out += '\nbuilt: in the kernel\'s own tree; linked<-[n]: weak-updates link to a module built for kernel [n];\n';
  out += '*: see below; !: will not load\n';

  const details: string[] = [];
  for (const m of r.modules) {
    for (const c of m.cells) {
      if (!noteworthy(c)) continue;
      let d = `${m.name} on [${index.get(c.kernel)}] ${c.kernel}: ${c.state}${c.file ? ` (${c.file})` : ''}\n`;
      for (const n of c.notes) d += `    ${n.message}\n`;
      const errors = c.reasons.filter((x) => x.severity === 'error');
      if (c.state === 'incompatible' || c.state === 'stale' || c.loads === false) {
        for (const e of errors.slice(0, MAX_REASONS)) d += `    ${e.message}${e.provider ? ` (provided by ${e.provider}, which cannot be loaded)` : ''}\n`;
        if (errors.length > MAX_REASONS) d += `    … and ${errors.length - MAX_REASONS} more (kabi status --why ${m.name} --kernel ${c.kernel})\n`;
      }
      details.push(d);
    }
  }
  if (details.length > 0) out += '\n' + details.join('');
  const notes = r.kernels.filter((k) => k.notes.length > 0);
  for (const k of notes) for (const n of k.notes) out += `note: [${index.get(k.release)}] ${n}\n`;
  return out;
}

function crcText(v: bigint | undefined): string {
  return v === undefined ? 'none' : `0x${v.toString(16).padStart(8, '0')}`;
}

function renderProviders(groups: readonly ProviderGroup[], indent: string): string {
  let out = '';
  for (const g of groups) {
    const who = g.provider === undefined ? 'nothing provides' : g.path === undefined ? g.provider : `${g.provider} (${g.path}${g.inTree ? ', in-tree' : ''})`;
    out += `${indent}${who}:\n`;
    for (const s of g.symbols) {
      const mismatch = s.wanted !== undefined && s.provided !== undefined && s.wanted !== s.provided;
      const crcs = s.wanted === undefined && s.provided === undefined ? '' : ` wants ${crcText(s.wanted)}, gets ${crcText(s.provided)}${mismatch ? '  <-- mismatch' : ''}`;
      out += `${indent}  ${s.symbol}${s.weak ? ' (weak)' : ''}${g.provider === undefined ? '' : crcs}\n`;
    }
    if (g.providers.length > 0) out += renderProviders(g.providers, indent + '    ');
  }
  return out;
}

/** `kabi status --why`: one cell with every reason and its provider chain. */
export function renderExplanation(e: Explanation, paint: Paint = plain): string {
  const c = e.cell;
  let out = `${e.name} on ${e.kernel}: ${paint(c.state, cellTone(c))}\n`;
  if (c.link) out += `  link:      ${c.link} -> ${c.target}\n`;
  if (c.file) out += `  module:    ${c.file}\n`;
  if (c.builtFor) out += `  built for: ${c.builtFor}\n`;
  if (c.version) out += `  version:   ${c.version}\n`;
  out += `  modprobe:  ${c.active ? 'loads this file for the name' : 'does not load this file for the name'}\n`;
  if (c.loads !== undefined) out += `  verdict:   ${c.loads ? 'loads' : 'does not load'} (${e.semantics} semantics)\n`;
  if (c.notes.length > 0) {
    out += '\nWhy:\n';
    for (const n of c.notes) out += `  ${n.kind}: ${n.message}\n`;
  }
  if (c.reasons.length > 0) {
    out += '\nReasons:\n';
    for (const r of c.reasons) out += `  ${r.severity === 'error' ? 'error  ' : 'warning'} ${r.kind}: ${r.message}${r.provider ? ` (provider ${r.provider})` : ''}\n`;
  }
  if (e.providers) {
    out += '\nProviders:\n';
    out += e.providers.length === 0 ? '  (needs no symbols)\n' : renderProviders(e.providers, '  ');
  }
  out += '\nKnown copies:\n';
  for (const cp of e.copies) {
    const facts = [cp.origin, cp.builtFor ? `built for ${cp.builtFor}` : '', cp.version ? `version ${cp.version}` : '', cp.error ? `unreadable: ${cp.error}` : ''].filter(Boolean);
    out += `  ${cp.path}  (${facts.join(', ')})\n`;
  }
  for (const n of e.kernelNotes) out += `note: ${n}\n`;
  return out;
}
