import type { KernelState } from './kernel-state.js';
import type { Kmp } from './kmp.js';
import type { Planner } from './planner.js';

/*
 * kabi's rule (KABI_KMP_NEWEST): each kernel gets, of every KMP, the newest installed version
 * that fits it, whichever kernel that version was built for and in whatever order the packages
 * arrived. A version that sits in the kernel's own tree (a tree KMP built for it) is used there
 * as it is: depmod ranks updates/ above weak-updates/, so nothing else could win. With
 * forwardOnly, versions built for newer kernels are not considered.
 */

/** The version a kernel uses now: in its own tree, or the one all of whose modules it links to. */
async function inUse(state: KernelState, versions: readonly Kmp[]): Promise<Kmp | undefined> {
  for (const v of versions) if (await state.isPresent(v)) return v;
  return undefined;
}

/**
 * Settle one KMP (all `versions` of it, newest first, plus `gone`: a version just erased) in
 * one kernel: the version it used before, and the one it uses now.
 */
export async function settleKmp(p: Planner, state: KernelState, versions: readonly Kmp[], gone?: Kmp): Promise<{ before: Kmp | undefined; chosen: Kmp | undefined }> {
  const all = gone ? [...versions, gone] : [...versions];
  const before = await inUse(state, gone ? [gone, ...versions] : versions);
  // Every link any version of this KMP has, or would have, here.
  const mine = new Set<string>();
  for (const v of all) for (const l of state.linksOf(v)) mine.add(l);
  for (const [link] of state.links) {
    for (const v of all) for (const m of v.modules) if (await state.pointsAt(link, m)) mine.add(link);
  }
  const base = new Map([...state.links].filter(([l]) => !mine.has(l)));

  let chosen: Kmp | undefined = versions.find((v) => v.layout === 'tree' && v.buildRelease === state.release);
  if (chosen) {
    state.links = base;
  } else {
    state.links = base;
    for (const v of versions) {
      if (!p.eligible(v, state.release)) {
        p.dlog(`${v.nvr} was built for ${v.buildRelease ?? 'an unknown kernel'}: not for the older ${state.release}`);
        continue;
      }
      if (!state.namesAreFree(v, base)) {
        p.dlog(`basenames_are_unique: found name overlap for ${v.nvr} in ${state.release}`);
        continue;
      }
      const proposal = new Map(base);
      const focus = state.linksOf(v);
      v.modules.forEach((m, i) => proposal.set(focus[i]!, m));
      const j = await p.judge(state, proposal, focus);
      if (!j.ok) {
        for (const l of j.lines) p.debug(l);
        p.dlog(`${v.nvr} does not fit ${state.release}`);
        continue;
      }
      chosen = v;
      state.links = proposal;
      break;
    }
  }

  const same = before !== undefined && chosen !== undefined && before.nvr === chosen.nvr && before.origin === chosen.origin;
  if (same) return { before, chosen };
  const label = (k: Kmp) => (k.origin === 'preserved' ? `${k.nvr} (the copy kabi kept)` : k.nvr);
  if (before && chosen) {
    p.log(`Package ${label(before)} replaced by package ${label(chosen)} in kernel ${state.release}`);
    p.refreshFor(state, before, chosen);
  } else if (chosen) {
    p.log(`Package ${label(chosen)} added to kernel ${state.release}`);
    p.refreshFor(state, chosen);
  } else if (before) {
    p.log(`Package ${label(before)} removed from kernel ${state.release}`);
    if (versions.length > 0) p.log(`Weak-updates symlinks to no other ${before.name} package could be created`);
    p.refreshFor(state, before);
  }
  return { before, chosen };
}

/** Group KMPs by what makes them versions of one driver: family and flavor. */
export function byKmp(kmps: readonly Kmp[]): Map<string, Kmp[]> {
  const out = new Map<string, Kmp[]>();
  for (const k of kmps) {
    const key = `${k.family}-kmp-${k.flavor}`;
    const list = out.get(key);
    if (list) list.push(k);
    else out.set(key, [k]);
  }
  return out;
}
