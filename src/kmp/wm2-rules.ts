import type { KernelState } from './kernel-state.js';
import type { Kmp } from './kmp.js';
import { packageNameOf } from './nvr.js';
import type { Planner } from './planner.js';

/*
 * weak-modules2's own rules, as SUSE ships them: one version of a KMP per kernel, chosen by
 * the order packages arrive; an older version linked into a kernel is replaced by a newer one
 * of the same package name; a kernel whose updates/ or extra/ already holds a file of the same
 * name is left alone.
 */

/**
 * Would the kernel accept `kmp` in place of `old` (either may be absent)? The names must be
 * free once `old` is gone, and the kernel's tree must judge well with the links. On success
 * the kernel's planned links are changed.
 */
export async function replaceIfFits(p: Planner, old: Kmp | undefined, kmp: Kmp, state: KernelState): Promise<boolean> {
  if (!p.eligible(kmp, state.release)) {
    p.dlog(`can_replace_kmp: ${kmp.nvr} was built for ${kmp.buildRelease ?? 'an unknown kernel'}, not linked into the older ${state.release}`);
    return false;
  }
  const links = new Map(state.links);
  if (old) for (const l of state.linksOf(old)) links.delete(l);
  if (!state.namesAreFree(kmp, links)) {
    p.dlog(`basenames_are_unique: found name overlap for ${kmp.nvr} in ${state.release}`);
    return false;
  }
  const focus = state.linksOf(kmp);
  kmp.modules.forEach((m, i) => links.set(focus[i]!, m));
  const j = await p.judge(state, links, focus);
  if (!j.ok) {
    for (const l of j.lines) p.debug(l);
    p.dlog(`can_replace_kmp: old=${old?.nvr ?? ''} new=${kmp.nvr} krel=${state.release} => 1`);
    return false;
  }
  state.links = links;
  return true;
}

/**
 * The older version of the same package whose links `kmp` would take over in this kernel:
 * every existing link at one of `kmp`'s link paths must be a symlink to a module of one and
 * the same package name, older than `kmp`.
 */
export async function previousVersion(kmp: Kmp, state: KernelState, kmps: readonly Kmp[]): Promise<Kmp | undefined> {
  let old: Kmp | undefined;
  for (const m of kmp.modules) {
    const link = state.linkFor(m);
    if (state.isRegularFileAt(link)) return undefined;
    const target = state.links.get(link);
    if (target === undefined) continue;
    let owner: Kmp | undefined;
    for (const k of kmps) {
      for (const km of k.modules) if (target === km || (await state.pointsAt(link, km))) owner = k;
      if (owner) break;
    }
    if (!owner || owner === kmp || packageNameOf(owner.nvr) !== packageNameOf(kmp.nvr)) return undefined;
    // kmps is newest first: the owner must come after kmp.
    if (kmps.indexOf(owner) < kmps.indexOf(kmp)) return undefined;
    old = owner;
  }
  return old;
}

/** Try to bring one KMP into a kernel (add_kmp's body, and walk_kmps' step): true when it is there now. */
async function bringIn(p: Planner, kmp: Kmp, state: KernelState, kmps: readonly Kmp[]): Promise<'present' | 'added' | 'skipped'> {
  if (await state.isPresent(kmp)) {
    p.log(`Package ${kmp.nvr} does not need to be added to kernel ${state.release}`);
    return 'present';
  }
  const old = await previousVersion(kmp, state, kmps);
  if (!(await replaceIfFits(p, old, kmp, state))) return 'skipped';
  if (old) {
    p.log(`Package ${old.nvr} replaced by package ${kmp.nvr} in kernel ${state.release}`);
    p.refreshFor(state, old, kmp);
  } else {
    p.log(`Package ${kmp.nvr} added to kernel ${state.release}`);
    p.refreshFor(state, kmp);
  }
  return 'added';
}

/** The depmod verdict's warning about a tree that is broken before anything is linked. */
export async function warnIfInconsistent(p: Planner, state: KernelState): Promise<{ inconsistent: boolean; lines: readonly string[] }> {
  if (p.policy.verdict !== 'depmod') return { inconsistent: false, lines: [] };
  const j = await p.judge(state, state.links, [], 'depmod');
  return { inconsistent: !j.ok, lines: j.lines };
}

/** --add-kmp under weak-modules2's rules. */
export async function addKmpWm2(p: Planner, kmp: Kmp, kmps: readonly Kmp[]): Promise<void> {
  for (const k of p.kernelsOf(kmp.flavor)) {
    p.dlog(`add_kmp: processing ${kmp.nvr} for ${k.release}`);
    const state = await p.state(k);
    const pre = await warnIfInconsistent(p, state);
    if (pre.inconsistent) {
      for (const l of pre.lines) p.warn(l);
      p.warn(`Warning: ${await p.displayDir(k.release)} is inconsistent`);
      p.warn('Warning: weak-updates symlinks might not be created');
    }
    const r = await bringIn(p, kmp, state, kmps);
    if (r === 'present') p.refreshFor(state, kmp);
    else if (r === 'skipped') p.dlog(`add_kmp: skipped ${kmp.nvr}`);
  }
}

/** --remove-kmp under weak-modules2's rules: the removed package's links go, the newest other version that fits takes over. */
export async function removeKmpWm2(p: Planner, kmp: Kmp, kmps: readonly Kmp[]): Promise<void> {
  for (const k of p.kernelsOf(kmp.flavor)) {
    const state = await p.state(k);
    p.dlog(`remove_kmp: processing ${kmp.nvr} for ${k.release}`);
    if (!(await state.isPresent(kmp))) continue;
    const pre = await warnIfInconsistent(p, state);
    if (!(kmp.layout === 'tree' && kmp.buildRelease === k.release)) for (const l of state.linksOf(kmp)) state.links.delete(l);
    let other: Kmp | undefined;
    let otherFound = false;
    for (const o of kmps) {
      if (o.nvr === kmp.nvr && o.origin !== 'preserved') continue;
      otherFound = true;
      p.dlog(`remove_kmp: checking other KMP ${o.nvr}`);
      if (await replaceIfFits(p, undefined, o, state)) {
        other = o;
        break;
      }
    }
    if (other) {
      p.log(`Package ${kmp.nvr} replaced by package ${other.nvr}${other.origin === 'preserved' ? ' (the copy kabi kept)' : ''} in kernel ${k.release}`);
      p.refreshFor(state, kmp, other);
      continue;
    }
    p.log(`Package ${kmp.nvr} removed from kernel ${k.release}`);
    if (otherFound) {
      p.log(`Weak-updates symlinks to no other ${kmp.name} package could be created`);
      if (pre.inconsistent) {
        p.warn(`Warning: ${await p.displayDir(k.release)} was inconsistent before removal of ${kmp.nvr}`);
        for (const l of pre.lines) p.warn(l);
      }
    }
    p.refreshFor(state, kmp);
  }
}

/** walk_kmps: link every KMP of the kernel's flavor that fits, newest first, until a pass adds nothing. */
export async function walkKmpsWm2(p: Planner, state: KernelState, kmps: readonly Kmp[]): Promise<void> {
  const todo: (Kmp | undefined)[] = [...kmps];
  for (;;) {
    let added = false;
    let skipped = false;
    for (let i = 0; i < todo.length; i++) {
      const kmp = todo[i];
      if (!kmp) continue;
      p.dlog(`walk_kmps: checking ${kmp.nvr} for ${state.release}`);
      const r = await bringIn(p, kmp, state, kmps);
      if (r === 'skipped') {
        p.dlog(`walk_kmps: skipped ${kmp.nvr}`);
        skipped = true;
        continue;
      }
      if (r === 'added') added = true;
      todo[i] = undefined;
    }
    if (!(added && skipped)) break;
  }
}
