import { FAKE_SYMBOLS, type DepmodMessage } from './compute.js';
import type { KernelSymbols } from './kernel-symbols.js';
import type { Dependencies } from './model-update.js';
import type { SummaryStore } from './summary-store.js';

/**
 * computeDepmod() over summaries as they lie in the summary store's columns, for a module
 * array already in depmod's order: the same symbol table, dependencies, topological
 * numbering, dependency lists and messages, without an object per module or symbol, so
 * that an incremental run can afford to redo it whole. (No -v output: such runs take the
 * full path.)
 */

export const ABSENT = -2;
export const KERNEL = -1;

export interface ColumnarInput {
  readonly store: SummaryStore;
  /** The summary record of each module, in depmod's order. */
  readonly rec: Uint32Array;
  /** What depmod's messages call module i. */
  readonly displayPath: (i: number) => string;
  readonly kernelSymbols?: KernelSymbols | undefined;
  readonly errsyms: boolean;
}

export interface ColumnarModel extends Dependencies {
  readonly messages: DepmodMessage[];
}

interface Span {
  names: Uint32Array;
  crcs: BigUint64Array;
  weak: Uint8Array | undefined;
  a: number;
  b: number;
}

export function computeColumnar(input: ColumnarInput): ColumnarModel {
  const { store, rec } = input;
  const strings = store.strings;
  const n = rec.length;
  const base = store.columns;
  const cached = store.cached;
  const messages: DepmodMessage[] = [];
  const span: Span = { names: new Uint32Array(0), crcs: new BigUint64Array(0), weak: undefined, a: 0, b: 0 };
  const exportsOf = (r: number): Span => {
    if (r < cached) {
      span.names = base!.expName;
      span.crcs = base!.expCrc;
      span.a = base!.expOff[r]!;
      span.b = base!.expOff[r + 1]!;
    } else {
      const s = store.summary(r);
      span.names = s.exports;
      span.crcs = s.exportCrcs;
      span.a = 0;
      span.b = s.exports.length;
    }
    return span;
  };
  const needsOf = (r: number): Span => {
    if (r < cached) {
      span.names = base!.depName;
      span.crcs = base!.depCrc;
      span.weak = base!.depWeak;
      span.a = base!.depOff[r]!;
      span.b = base!.depOff[r + 1]!;
    } else {
      const s = store.summary(r);
      span.names = s.deps;
      span.crcs = s.depCrcs;
      span.weak = s.depWeak;
      span.a = 0;
      span.b = s.deps.length;
    }
    return span;
  };

  // The kernel's symbols first (-E/-F), then every module's exports in array order.
  const size = strings.size;
  const owner = new Int32Array(size).fill(ABSENT);
  const ks = input.kernelSymbols;
  const checkCrcs = input.errsyms && ks?.source === 'symvers';
  const crc = checkCrcs ? new BigUint64Array(size) : undefined;
  // Kernel symbols no module mentions are not interned; ".foo" can still resolve to one.
  let kernel: Map<string, bigint> | undefined;
  if (ks) {
    kernel = new Map(ks.entries.map(([name, c]) => [name, BigInt.asUintN(64, c)]));
    for (const name of FAKE_SYMBOLS) kernel.set(name, 0n);
    if (!kernel.has('TOC.')) kernel.set('TOC.', 0n);
    for (let id = 0; id < size; id++) {
      const c = kernel.get(strings.get(id));
      if (c === undefined) continue;
      owner[id] = KERNEL;
      if (crc) crc[id] = c;
    }
  }
  for (let i = 0; i < n; i++) {
    const r = rec[i]!;
    const error = store.error(r);
    if (error !== undefined) messages.push({ level: 'ERROR', text: `failed to load symbols from ${input.displayPath(i)}: ${error}\n` });
    const e = exportsOf(r);
    for (let k = e.a; k < e.b; k++) {
      owner[e.names[k]!] = i;
      if (crc) crc[e.names[k]!] = e.crcs[k]!;
    }
  }

  // Direct dependencies in the order first needed, with -e's warnings in module order.
  const errsyms = input.errsyms && ks !== undefined;
  /** PPC64 function descriptors: ".foo" resolves as "foo". */
  const resolveDotted = (id: number): number => {
    const bare = strings.get(id).slice(1);
    const found = strings.find(bare);
    return found !== undefined ? owner[found]! : kernel?.has(bare) ? KERNEL : ABSENT;
  };
  const depOff = new Uint32Array(n + 1);
  let deps = new Uint32Array(4096);
  let nd = 0;
  const users = new Uint32Array(n);
  const seenBy = new Int32Array(n).fill(-1);
  const first = strings.firstChars();
  for (let i = 0; i < n; i++) {
    const d = needsOf(rec[i]!);
    const { names, crcs, weak } = d;
    if (nd + d.b - d.a > deps.length) {
      const grown = new Uint32Array(Math.max(deps.length * 2, nd + d.b - d.a));
      grown.set(deps.subarray(0, nd));
      deps = grown;
    }
    if (!errsyms) {
      // Without -e nothing is printed: only resolved symbols matter.
      for (let k = d.a; k < d.b; k++) {
        const id = names[k]!;
        const o = first[id] === 0x2e ? resolveDotted(id) : owner[id]!;
        if (o < 0 || seenBy[o] === i) continue;
        seenBy[o] = i;
        deps[nd++] = o;
        users[o]!++;
      }
      depOff[i + 1] = nd;
      continue;
    }
    for (let k = d.a; k < d.b; k++) {
      let id: number | undefined = names[k]!;
      let o: number;
      let symCrc: bigint | undefined;
      if (first[id] === 0x2e) {
        // PPC64 function descriptors: ".foo" resolves as "foo".
        const bare = strings.get(id).slice(1);
        id = strings.find(bare);
        if (id !== undefined) {
          o = owner[id]!;
          symCrc = crc?.[id];
        } else {
          symCrc = kernel?.get(bare);
          o = symCrc === undefined ? ABSENT : KERNEL;
        }
      } else {
        o = owner[id]!;
        symCrc = crc?.[id];
      }
      const isWeak = weak![k] === 1;
      if (o === ABSENT) {
        if (errsyms && !isWeak) messages.push({ level: 'WARNING', text: `${input.displayPath(i)} needs unknown symbol ${strings.get(names[k]!)}\n` });
        continue;
      }
      if (checkCrcs && !isWeak && symCrc !== crcs[k]) messages.push({ level: 'WARNING', text: `${input.displayPath(i)} disagrees about version of symbol ${strings.get(names[k]!)}\n` });
      if (o < 0 || seenBy[o] === i) continue;
      seenBy[o] = i;
      deps[nd++] = o;
      users[o]!++;
    }
    depOff[i + 1] = nd;
  }

  // Kahn's algorithm with a LIFO of ready modules, seeded in array order (as computeDepmod).
  const left = Uint32Array.from(users);
  const depSortIdx = new Int32Array(n).fill(0x7fffffff);
  const roots: number[] = [];
  for (let i = 0; i < n; i++) if (left[i] === 0) roots.push(i);
  let sorted = 0;
  while (roots.length > 0) {
    const src = roots.pop()!;
    depSortIdx[src] = sorted++;
    for (let k = depOff[src]!; k < depOff[src + 1]!; k++) {
      const dst = deps[k]!;
      if (--left[dst]! === 0) roots.push(dst);
    }
  }
  const ownerOf = (s: number) => owner[s] ?? ABSENT;
  if (sorted < n) return { depOff, deps: deps.slice(0, nd), ownerOf, closureOff: new Uint32Array(n + 1), closure: new Uint32Array(0), messages, failed: true };

  // Each module's transitive dependencies, ordered by topological number: collected as
  // numbers, sorted as numbers, turned back into modules.
  const byNumber = new Int32Array(n);
  for (let i = 0; i < n; i++) byNumber[depSortIdx[i]!] = i;
  const closureOff = new Uint32Array(n + 1);
  let closure = new Uint32Array(Math.max(1024, nd * 4));
  let len = 0;
  const mark = new Int32Array(n).fill(-1);
  const stack = new Int32Array(n + 1);
  const found = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (depOff[i + 1] !== depOff[i]) {
      let nf = 0;
      let sp = 0;
      stack[sp++] = i;
      while (sp > 0) {
        const m = stack[--sp]!;
        for (let k = depOff[m]!; k < depOff[m + 1]!; k++) {
          const d = deps[k]!;
          if (mark[d] === i) continue;
          mark[d] = i;
          found[nf++] = depSortIdx[d]!;
          stack[sp++] = d;
        }
      }
      if (len + nf > closure.length) {
        const grown = new Uint32Array(Math.max(closure.length * 2, len + nf));
        grown.set(closure.subarray(0, len));
        closure = grown;
      }
      const sorted = found.subarray(0, nf).sort();
      for (let k = 0; k < nf; k++) closure[len++] = byNumber[sorted[k]!]!;
    }
    closureOff[i + 1] = len;
  }
  return { depOff, deps: deps.slice(0, nd), ownerOf, closureOff, closure: closure.slice(0, len), messages, failed: false };
}
