import { posix } from 'node:path';
import { checkAgainstKernel } from '../compat/engine.js';
import type { LoadedKernelModel } from '../compat/kernel-model.js';
import type { Candidate, Reason, Semantics, Verdict } from '../compat/types.js';
import { keepsPriority, type ModuleFile } from '../kernel/module-tree.js';
import { rpmvercmp } from '../kernel/rpmvercmp.js';
import { weakLinkPath } from '../linker/weak-link-name.js';
import type { Cell, CellNote, ModuleCopy } from './types.js';

/** A weak-updates link of the kernel, with what its target turned out to be. */
export interface LinkInfo {
  readonly name: string;
  /** System path of the link. */
  readonly link: string;
  /** Target as written in the link. */
  readonly target: string;
  /** The parsed target; undefined when the link dangles. */
  readonly copy: ModuleCopy | undefined;
}

export interface KernelCellsInput {
  readonly release: string;
  readonly model: LoadedKernelModel;
  readonly semantics: Semantics;
  /** Out-of-tree modules in this kernel's own tree (not weak-updates links), by name. */
  readonly own: ReadonlyMap<string, readonly ModuleCopy[]>;
  readonly links: ReadonlyMap<string, readonly LinkInfo[]>;
  /** Every other known copy (other kernels' trees, stores, DKMS, link targets), by name. */
  readonly elsewhere: ReadonlyMap<string, readonly ModuleCopy[]>;
  readonly names: readonly string[];
}

/** A cell together with what was judged to reach it (for `--why`). */
export interface JudgedCell {
  readonly cell: Cell;
  /** The modules taken as installed together when the cell's file was judged. */
  readonly world: readonly Candidate[];
}

const ORIGIN_RANK = { tree: 0, external: 1, dkms: 2, store: 3, 'link-target': 4 } as const;

export function isOutOfTree(f: ModuleFile): boolean {
  return f.external || (f.relPath !== undefined && !f.relPath.startsWith('kernel/'));
}

export function isWeakLink(f: ModuleFile): boolean {
  return f.isLink && f.relPath !== undefined && f.relPath.startsWith('weak-updates/');
}

/**
 * Which copy a linker would try first for a kernel: the newest version, then one built for this
 * very kernel, then the newest build, then by where it lives and its path (for a stable order).
 */
export function preferenceOrder(release: string): (a: ModuleCopy, b: ModuleCopy) => number {
  return (a, b) => {
    if (a.version !== b.version) {
      if (a.version === undefined) return 1;
      if (b.version === undefined) return -1;
      const v = rpmvercmp(b.version, a.version);
      if (v !== 0) return v;
    }
    const own = Number(b.builtFor === release) - Number(a.builtFor === release);
    if (own !== 0) return own;
    if (a.builtFor !== b.builtFor) {
      if (a.builtFor === undefined) return 1;
      if (b.builtFor === undefined) return -1;
      const v = rpmvercmp(b.builtFor, a.builtFor);
      if (v !== 0) return v;
    }
    return ORIGIN_RANK[a.origin] - ORIGIN_RANK[b.origin] || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  };
}

function sortedReasons(v: Verdict | undefined): Reason[] {
  if (!v) return [];
  return [...v.reasons.filter((r) => r.severity === 'error'), ...v.reasons.filter((r) => r.severity !== 'error')];
}

function firstError(v: Verdict | undefined): string {
  return v?.reasons.find((r) => r.severity === 'error')?.message ?? 'it cannot be loaded';
}

/**
 * The state of every module name on one kernel. Pure: the kernel's model, its links and every
 * copy were read beforehand. What loads is judged in two worlds: first the kernel as it is
 * (modules modprobe picks today, judged together, so a broken provider breaks its users), then
 * that world plus one hypothetical copy per name nothing provides yet.
 */
export function kernelCells(input: KernelCellsInput): Map<string, JudgedCell> {
  const { model, release } = input;
  const judge = (cands: readonly Candidate[]) => checkAgainstKernel(cands, model, { semantics: input.semantics });
  const out = new Map<string, JudgedCell>();
  const mk = (state: Cell['state'], copy: ModuleCopy, o: CellOptions): Cell => cellFrom(release, state, copy, o);

  // The world as it is: the out-of-tree file modprobe picks for each name.
  const live: Candidate[] = [];
  const liveCopy = new Map<string, ModuleCopy>();
  for (const name of input.names) {
    const chosen = model.chosen.get(name);
    if (!chosen || !isOutOfTree(chosen)) continue;
    const copy = isWeakLink(chosen)
      ? input.links.get(name)?.find((l) => l.link === chosen.path)?.copy
      : input.own.get(name)?.find((c) => c.path === chosen.path);
    if (copy?.module) {
      live.push({ path: chosen.path, module: copy.module });
      liveCopy.set(name, copy);
    }
  }
  const liveVerdicts = new Map(judge(live).map((v) => [v.module, v]));
  const alone = (path: string, copy: ModuleCopy): Verdict | undefined =>
    copy.module ? judge([...live.filter((c) => c.module.name !== copy.module!.name), { path, module: copy.module }]).find((v) => v.module === path) : undefined;

  const shadowNote = (by: ModuleFile): CellNote => ({
    kind: 'shadowed',
    by: by.path,
    message: `${by.path} wins under this kernel's depmod search order`,
  });

  const hypothetical: string[] = [];
  for (const name of input.names) {
    const chosen = model.chosen.get(name);
    const own = input.own.get(name) ?? [];
    const links = input.links.get(name) ?? [];
    const ownChosen = chosen && !isWeakLink(chosen) ? own.find((c) => c.path === chosen.path) : undefined;
    if (ownChosen) {
      const v = liveVerdicts.get(ownChosen.path);
      out.set(name, { world: live, cell: mk('built', ownChosen, { active: true, verdict: v, notes: ownChosen.module ? [] : [unreadable(ownChosen)] }) });
      continue;
    }
    if (links.length > 0) {
      const li = links.find((l) => l.link === chosen?.path) ?? links[0]!;
      const active = chosen?.path === li.link;
      const base = { link: li.link, target: li.target };
      if (!li.copy) {
        out.set(name, {
          world: live,
          cell: { ...emptyCell(release, 'stale'), ...base, notes: [{ kind: 'target-gone', message: `the link points at ${li.target}, which does not exist` }] },
        });
        continue;
      }
      if (!li.copy.module) {
        out.set(name, { world: live, cell: mk('stale', li.copy, { ...base, active, verdict: undefined, notes: [unreadable(li.copy)] }) });
        continue;
      }
      const v = active ? liveVerdicts.get(li.link) : alone(li.link, li.copy);
      if (v && !v.compatible) {
        const note: CellNote = { kind: 'target-changed', message: `${li.copy.path} changed since it was linked and no longer loads here` };
        out.set(name, { world: live, cell: mk('stale', li.copy, { ...base, active, verdict: v, notes: [note] }) });
      } else if (active) {
        out.set(name, { world: live, cell: mk('weak-linked', li.copy, { ...base, active, verdict: v, notes: [] }) });
      } else {
        out.set(name, { world: live, cell: mk('compatible', li.copy, { ...base, active, verdict: v, notes: chosen ? [shadowNote(chosen)] : [] }) });
      }
      continue;
    }
    if (own.length > 0) {
      const c = own[0]!;
      const v = alone(c.path, c);
      const notes = [...(chosen ? [shadowNote(chosen)] : []), ...(c.module ? [] : [unreadable(c)])];
      out.set(name, { world: live, cell: mk('built', c, { active: false, verdict: v, notes }) });
      continue;
    }
    hypothetical.push(name);
  }

  // What would load if linked: the preferred copy of each unprovided name, all at once.
  const order = preferenceOrder(release);
  const options = new Map<string, ModuleCopy[]>();
  for (const name of hypothetical) {
    const copies = [...(input.elsewhere.get(name) ?? [])].sort(order);
    options.set(name, copies);
  }
  const firstPick: Candidate[] = [];
  for (const [, copies] of options) {
    const c = copies.find((x) => x.module);
    if (c) firstPick.push({ path: c.path, module: c.module! });
  }
  const firstVerdicts = new Map(judge([...live, ...firstPick]).map((v) => [v.module, v]));
  const accepted = firstPick.filter((c) => firstVerdicts.get(c.path)?.compatible);
  for (const name of hypothetical) {
    const copies = options.get(name)!;
    const readable = copies.filter((c) => c.module);
    const preferred = readable[0];
    if (!preferred) {
      const c = copies[0];
      const none: CellNote = { kind: 'no-copy', message: 'no file of this module exists (only a dangling weak-updates link names it)' };
      out.set(name, { world: live, cell: c ? mk('incompatible', c, { active: false, verdict: undefined, notes: [unreadable(c)] }) : { ...emptyCell(release, 'incompatible'), notes: [none] } });
      continue;
    }
    let pick = preferred;
    let verdict = firstVerdicts.get(preferred.path);
    let world: Candidate[] = [...live, ...firstPick];
    if (!verdict?.compatible) {
      const others = accepted.filter((c) => c.module.name !== preferred.module!.name);
      for (const alt of readable.slice(1)) {
        const w = [...live, ...others, { path: alt.path, module: alt.module! }];
        const v = judge(w).find((x) => x.module === alt.path);
        if (v?.compatible) {
          pick = alt;
          verdict = v;
          world = w;
          break;
        }
      }
    }
    if (!verdict?.compatible) {
      out.set(name, { world, cell: mk('incompatible', preferred, { active: false, verdict: firstVerdicts.get(preferred.path), notes: [] }) });
      continue;
    }
    const notes: CellNote[] = [];
    if (pick !== preferred && pick.version !== undefined && preferred.version !== undefined && rpmvercmp(pick.version, preferred.version) < 0) {
      notes.push({ kind: 'older-version', message: `version ${preferred.version} cannot load here (${firstError(firstVerdicts.get(preferred.path))}); ${pick.version} can` });
    }
    if (pick.origin === 'dkms' && pick.dkms?.kernel === release) {
      notes.push({ kind: 'not-installed', message: `DKMS built ${pick.dkms.module}/${pick.dkms.version} for this kernel but it is not installed (dkms install)` });
    }
    if (pick.builtFor !== undefined && rpmvercmp(pick.builtFor, release) > 0) {
      notes.push({ kind: 'newer-build', message: `built for the newer kernel ${pick.builtFor}: forward-only linking skips it` });
    }
    const rel = weakLinkPath(pick.path, pick.builtFor, release).slice(posix.join('/lib/modules', release).length + 1);
    const chosen = model.chosen.get(name);
    const virtual: ModuleFile = { name, path: posix.join(model.kernel.moduleDir, rel), relPath: rel, host: pick.host, isLink: true, external: false, virtual: true };
    if (chosen && keepsPriority(model.depmodConfig, chosen, virtual)) notes.push(shadowNote(chosen));
    if (notes.length === 0) notes.push({ kind: 'not-linked', message: `nothing links it in (kabi link --add-kernel ${release} would)` });
    out.set(name, { world, cell: mk('compatible', pick, { active: false, verdict, notes }) });
  }
  return out;
}

function unreadable(c: ModuleCopy): CellNote {
  return { kind: 'unreadable', message: `${c.path} cannot be read: ${c.error ?? 'unknown error'}` };
}

function emptyCell(kernel: string, state: Cell['state']): Cell {
  return { kernel, state, file: undefined, link: undefined, target: undefined, builtFor: undefined, version: undefined, active: false, loads: undefined, notes: [], reasons: [] };
}

interface CellOptions {
  active: boolean;
  verdict: Verdict | undefined;
  notes: CellNote[];
  link?: string;
  target?: string;
}

function cellFrom(kernel: string, state: Cell['state'], copy: ModuleCopy, o: CellOptions): Cell {
  return {
    kernel,
    state,
    file: copy.path,
    link: o.link,
    target: o.target,
    builtFor: copy.builtFor,
    version: copy.version,
    active: o.active,
    loads: o.verdict?.compatible,
    notes: o.notes,
    reasons: sortedReasons(o.verdict),
  };
}
