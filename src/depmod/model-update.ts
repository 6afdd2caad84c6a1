import type { SummaryStore } from './summary-store.js';

/**
 * depmod's dependencies after an incremental change, from the previous run's, for the usual
 * run (no -e, no PPC64 '.' symbols: otherwise computeColumnar() redoes them whole). Only the
 * modules that came, and those needing a symbol whose owner may have changed (one exported by
 * a module that came or went), resolve their symbols again, through the summary store's
 * symbol index. The topological numbering is redone whole (it is cheap, and adding one
 * module can renumber everything); dependency lists are collected again only for modules
 * that reach a module whose direct dependencies changed, the others keep theirs, sorted
 * again if the numbering reordered them. Same results as computeDepmod(), which the tests
 * hold it to.
 */

export interface ModelUpdateInput {
  readonly store: SummaryStore;
  /** The summary record of each module, in depmod's order. */
  readonly rec: Uint32Array;
  /** Per module: its index in the previous array, or < 0 for a module new to it. */
  readonly source: Int32Array;
  /** Per previous module: its new index, or -1 for a module gone. */
  readonly remap: Int32Array;
  readonly old: DependencyLists;
  /** Strings whose owner may have changed. */
  readonly changed: readonly number[];
}

export interface DependencyLists {
  /** Direct dependencies in the order first needed: deps[depOff[i], depOff[i + 1]). */
  readonly depOff: Uint32Array;
  readonly deps: Uint32Array;
  /** All dependencies, as modules.dep lists them. */
  readonly closureOff: Uint32Array;
  readonly closure: Uint32Array;
}

export interface Dependencies extends DependencyLists {
  /** The module owning a symbol (the last to export it), < 0 for none. */
  readonly ownerOf: (s: number) => number;
  /** 1 where a module's dependency list is the previous one's (renumbered), when that is known. */
  readonly sameClosure?: Uint8Array;
  /** Dependency cycles (left to the full path, which reports them). */
  readonly failed: boolean;
}

export function updateDependencies(input: ModelUpdateInput): Dependencies {
  const { store, rec, source, remap, old } = input;
  const n = rec.length;

  // Records to modules (two links to one file are two modules with one record).
  const moduleOf = new Int32Array(store.size).fill(-1);
  const alsoOf = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const r = rec[i]!;
    if (moduleOf[r]! < 0) moduleOf[r] = i;
    else alsoOf.set(r, [...(alsoOf.get(r) ?? []), i]);
  }
  const owners = new Map<number, number>();
  const ownerOf = (s: number): number => {
    let o = owners.get(s);
    if (o === undefined) {
      o = -1;
      for (const r of store.exporters(s)) {
        o = Math.max(o, moduleOf[r]!);
        for (const m of alsoOf.get(r) ?? []) o = Math.max(o, m);
      }
      owners.set(s, o);
    }
    return o;
  };

  // Who resolves again: new modules, and those needing a symbol that may have moved.
  const again = new Uint8Array(n);
  for (let i = 0; i < n; i++) if (source[i]! < 0) again[i] = 1;
  for (const s of input.changed) {
    for (const r of store.needers(s)) {
      if (moduleOf[r]! >= 0) again[moduleOf[r]!] = 1;
      for (const m of alsoOf.get(r) ?? []) again[m] = 1;
    }
  }

  const depOff = new Uint32Array(n + 1);
  const deps: number[] = [];
  const seenBy = new Int32Array(n).fill(-1);
  const depsChanged = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const j = source[i]!;
    const start = deps.length;
    let kept = again[i] === 0;
    if (kept) {
      for (let k = old.depOff[j]!; k < old.depOff[j + 1]!; k++) {
        const d = remap[old.deps[k]!]!;
        if (d < 0) {
          // Cannot happen (its symbol's owner went, so it resolves again); but if it did, resolve.
          kept = false;
          deps.length = start;
          break;
        }
        deps.push(d);
      }
    }
    if (!kept) {
      for (const s of store.summary(rec[i]!).deps) {
        const o = ownerOf(s);
        if (o < 0 || seenBy[o] === i) continue;
        seenBy[o] = i;
        deps.push(o);
      }
      let same = j >= 0 && old.depOff[j + 1]! - old.depOff[j]! === deps.length - start;
      for (let k = 0; same && k < deps.length - start; k++) same = remap[old.deps[old.depOff[j]! + k]!] === deps[start + k];
      if (!same) depsChanged[i] = 1;
    }
    depOff[i + 1] = deps.length;
  }

  const flatDeps = Uint32Array.from(deps);
  if (isolatedChange(input, depOff, depsChanged)) return keptLists(input, depOff, flatDeps, ownerOf);

  // Kahn's algorithm with a LIFO of ready modules, seeded in array order (as computeDepmod).
  const users = new Uint32Array(n);
  for (const d of deps) users[d]!++;
  const depSortIdx = new Int32Array(n).fill(0x7fffffff);
  const roots: number[] = [];
  for (let i = 0; i < n; i++) if (users[i] === 0) roots.push(i);
  let sorted = 0;
  while (roots.length > 0) {
    const src = roots.pop()!;
    depSortIdx[src] = sorted++;
    for (let k = depOff[src]!; k < depOff[src + 1]!; k++) if (--users[deps[k]!]! === 0) roots.push(deps[k]!);
  }
  if (sorted < n) return { depOff, deps: flatDeps, closureOff: new Uint32Array(n + 1), closure: new Uint32Array(0), ownerOf, failed: true };

  // Modules whose dependency lists may hold other modules now: those reaching a changed one.
  const userOff = new Uint32Array(n + 1);
  for (const d of deps) userOff[d + 1]!++;
  for (let i = 0; i < n; i++) userOff[i + 1]! += userOff[i]!;
  const fill = userOff.slice(0, n);
  const userList = new Uint32Array(deps.length);
  for (let i = 0; i < n; i++) for (let k = depOff[i]!; k < depOff[i + 1]!; k++) userList[fill[deps[k]!]!++] = i;
  const dirty = new Uint8Array(n);
  const queue: number[] = [];
  for (let i = 0; i < n; i++) if (depsChanged[i]) queue.push(i);
  for (const i of queue) dirty[i] = 1;
  while (queue.length > 0) {
    const m = queue.pop()!;
    for (let k = userOff[m]!; k < userOff[m + 1]!; k++) {
      const u = userList[k]!;
      if (!dirty[u]) {
        dirty[u] = 1;
        queue.push(u);
      }
    }
  }

  const byNumber = new Int32Array(n);
  for (let i = 0; i < n; i++) byNumber[depSortIdx[i]!] = i;
  const closureOff = new Uint32Array(n + 1);
  const closure: number[] = [];
  const sameClosure = new Uint8Array(n);
  const mark = new Int32Array(n).fill(-1);
  const stack: number[] = [];
  let keys = new Int32Array(64);
  for (let i = 0; i < n; i++) {
    const start = closure.length;
    if (depOff[i + 1] !== depOff[i]) {
      const j = source[i]!;
      let reuse = !dirty[i] && j >= 0;
      if (reuse) {
        for (let k = old.closureOff[j]!; k < old.closureOff[j + 1]!; k++) {
          const d = remap[old.closure[k]!]!;
          if (d < 0) {
            reuse = false;
            closure.length = start;
            break;
          }
          closure.push(d);
        }
      }
      if (!reuse) {
        stack.push(i);
        while (stack.length > 0) {
          const m = stack.pop()!;
          for (let k = depOff[m]!; k < depOff[m + 1]!; k++) {
            const d = deps[k]!;
            if (mark[d] === i) continue;
            mark[d] = i;
            closure.push(d);
            stack.push(d);
          }
        }
      }
      // Ordered by topological number: sorted as numbers, turned back into modules.
      const len = closure.length - start;
      let inOrder = true;
      for (let k = start + 1; k < closure.length && inOrder; k++) inOrder = depSortIdx[closure[k - 1]!]! < depSortIdx[closure[k]!]!;
      if (!inOrder) {
        if (keys.length < len) keys = new Int32Array(len * 2);
        for (let k = 0; k < len; k++) keys[k] = depSortIdx[closure[start + k]!]!;
        const ordered = keys.subarray(0, len).sort();
        for (let k = 0; k < len; k++) closure[start + k] = byNumber[ordered[k]!]!;
      }
      if (reuse && inOrder) sameClosure[i] = 1;
    } else if (source[i]! >= 0 && old.closureOff[source[i]! + 1] === old.closureOff[source[i]!]) sameClosure[i] = 1;
    closureOff[i + 1] = closure.length;
  }
  return { depOff, deps: flatDeps, closureOff, closure: Uint32Array.from(closure), ownerOf, sameClosure, failed: false };
}

/**
 * Only modules without dependencies came or went, and no other module's dependencies
 * changed. Such a module has no users either (they would have changed), so the numbering
 * takes it from the stack and releases nothing: the others are numbered in the same order
 * as before, and every dependency list is the previous one, renumbered.
 */
function isolatedChange(input: ModelUpdateInput, depOff: Uint32Array, depsChanged: Uint8Array): boolean {
  const { source, remap, old } = input;
  for (let i = 0; i < source.length; i++) if (depsChanged[i] && (source[i]! >= 0 || depOff[i + 1] !== depOff[i])) return false;
  for (let j = 0; j < remap.length; j++) if (remap[j]! < 0 && old.depOff[j + 1] !== old.depOff[j]) return false;
  return true;
}

function keptLists(input: ModelUpdateInput, depOff: Uint32Array, deps: Uint32Array, ownerOf: (s: number) => number): Dependencies {
  const { source, remap, old } = input;
  const n = source.length;
  const closureOff = new Uint32Array(n + 1);
  const closure = new Uint32Array(old.closure.length);
  const sameClosure = new Uint8Array(n);
  let len = 0;
  for (let i = 0; i < n; i++) {
    const j = source[i]!;
    if (j >= 0) {
      sameClosure[i] = 1;
      for (let k = old.closureOff[j]!; k < old.closureOff[j + 1]!; k++) closure[len++] = remap[old.closure[k]!]!;
    }
    closureOff[i + 1] = len;
  }
  return { depOff, deps, closureOff, closure: closure.subarray(0, len), ownerOf, sameClosure, failed: false };
}
