import type { ModuleFile } from '../kernel/module-tree.js';
import { fgetsLines } from './c-text.js';
import { HOST_ENDIAN, MODULES_BUCKETS, SYMBOLS_BUCKETS, hashIterationOrder, type HostEndian } from './kmod-hash.js';
import type { KernelSymbols } from './kernel-symbols.js';
import type { Interner } from './interner.js';
import type { ModuleSummary } from './module-summary.js';

/**
 * depmod's model of one kernel, computed exactly as kmod 30's depmod does it (pure; no I/O):
 * the module array in depmod's order, each module's direct dependencies, the topological
 * numbering that orders dependency lists, the symbol table, and every message depmod prints
 * on the way. Rendering the files from it is in render.ts.
 */

export type DepmodLevel = 'FATAL' | 'ERROR' | 'WARNING';

export interface DepmodMessage {
  readonly level: DepmodLevel;
  /** The text after "depmod: LEVEL: ", ending in a newline as depmod's format strings do. */
  readonly text: string;
}

export interface ModuleEntry {
  readonly file: ModuleFile;
  readonly summary: ModuleSummary;
}

export interface ComputeInput {
  /** kmod's cfg->dirname: "<basedir>/lib/modules/<release>", used in messages only. */
  readonly dirname: string;
  /** The strings the summaries' numbers stand for. */
  readonly strings: Interner;
  /** The file chosen for each module name (any order). */
  readonly modules: readonly ModuleEntry[];
  /** Text of modules.order, or undefined when there is none. */
  readonly modulesOrder: string | undefined;
  readonly kernelSymbols?: KernelSymbols | undefined;
  /** depmod -e (only meaningful with kernel symbols; the caller warns otherwise). */
  readonly errsyms?: boolean;
  /** depmod -v: the "X needs "sym": Y" lines on stdout. */
  readonly verbose?: boolean;
  readonly endian?: HostEndian;
}

export interface ModelModule {
  readonly name: string;
  readonly file: ModuleFile;
  /** What modules.dep calls it: the path relative to the module directory, or the full path. */
  readonly outPath: string;
  /** What depmod's messages call it. */
  readonly displayPath: string;
  readonly summary: ModuleSummary;
  /** Direct dependencies (module indices), ordered by their topological number. */
  deps: number[];
  /** The same in the order the module's symbols first needed them (what the numbering walks). */
  needed: readonly number[];
  /** depmod's dep_sort_idx: position in the topological order (users before what they use). */
  depSortIdx: number;
}

export interface DepmodModel {
  readonly strings: Interner;
  readonly modules: readonly ModelModule[];
  /** Symbols exported by modules, in the order depmod's symbol hash iterates them. */
  readonly symbols: readonly { readonly name: string; readonly owner: number }[];
  readonly messages: readonly DepmodMessage[];
  /** What -v prints on stdout. */
  readonly stdout: string;
  /** Dependency cycles: depmod stops before writing anything and exits 1. */
  readonly failed: boolean;
}

/** The symbols the kernel's loader provides itself; depmod adds them after -E/-F's table. */
export const FAKE_SYMBOLS = ['__this_module', '_GLOBAL_OFFSET_TABLE_'];

export function computeDepmod(input: ComputeInput): DepmodModel {
  const endian = input.endian ?? HOST_ENDIAN;
  const strings = input.strings;
  const messages: DepmodMessage[] = [];
  const err = (text: string) => messages.push({ level: 'ERROR', text });
  const warn = (text: string) => messages.push({ level: 'WARNING', text });
  let stdout = '';

  // Module array: modules_by_name's hash order, then a stable sort on modules.order position.
  let ordered = hashIterationOrder(input.modules, (m) => m.file.name, MODULES_BUCKETS, endian);
  if (input.modulesOrder === undefined) {
    warn(`could not open modules.order at ${input.dirname}: No such file or directory\n`);
  } else {
    ordered = sortByModulesOrder(ordered, input.modulesOrder, input.dirname, err);
  }

  const modules: ModelModule[] = ordered.map((m) => ({
    name: m.file.name,
    file: m.file,
    outPath: m.file.relPath ?? m.file.path,
    displayPath: m.file.relPath !== undefined ? `${input.dirname}/${m.file.relPath}` : m.file.path,
    summary: m.summary,
    deps: [],
    needed: [],
    depSortIdx: 0x7fffffff,
  }));

  // The symbol table, indexed by string number: the kernel's first (-E/-F), then every
  // module's exports in array order, a later definition replacing an earlier one.
  const ABSENT = -2;
  const KERNEL = -1;
  if (input.kernelSymbols) {
    for (const [name] of input.kernelSymbols.entries) strings.id(name);
    for (const name of [...FAKE_SYMBOLS, 'TOC.']) strings.id(name);
  }
  const owner = new Int32Array(strings.size).fill(ABSENT);
  const crc = new BigUint64Array(strings.size);
  if (input.kernelSymbols) {
    for (const m of input.kernelSymbols.messages) err(m);
    for (const [name, c] of input.kernelSymbols.entries) {
      const id = strings.id(name);
      owner[id] = KERNEL;
      crc[id] = BigInt.asUintN(64, c);
    }
    for (const name of FAKE_SYMBOLS) {
      const id = strings.id(name);
      owner[id] = KERNEL;
      crc[id] = 0n;
    }
    const toc = strings.id('TOC.');
    if (owner[toc] === ABSENT) {
      owner[toc] = KERNEL;
      crc[toc] = 0n;
    }
  }
  for (let i = 0; i < modules.length; i++) {
    const m = modules[i]!;
    if (m.summary.error !== undefined) err(`failed to load symbols from ${m.displayPath}: ${m.summary.error}\n`);
    const { exports, exportCrcs } = m.summary;
    for (let k = 0; k < exports.length; k++) {
      owner[exports[k]!] = i;
      crc[exports[k]!] = exportCrcs[k]!;
    }
  }

  // Dependencies, with -e's warnings in module order.
  const errsyms = input.errsyms === true && input.kernelSymbols !== undefined;
  const checkCrcs = input.kernelSymbols?.source === 'symvers';
  const users = new Uint32Array(modules.length);
  for (const m of modules) {
    const { deps, depCrcs, depWeak } = m.summary;
    for (let k = 0; k < deps.length; k++) {
      let id: number | undefined = deps[k]!;
      const name = strings.strings[id]!;
      // PPC64 function descriptors: ".foo" resolves as "foo".
      if (name.charCodeAt(0) === 0x2e) id = strings.find(name.slice(1));
      const o = id === undefined ? ABSENT : owner[id]!;
      const weak = depWeak[k] === 1;
      if (o === ABSENT) {
        if (errsyms && !weak) warn(`${m.displayPath} needs unknown symbol ${name}\n`);
        continue;
      }
      if (checkCrcs && errsyms && !weak && crc[id!] !== depCrcs[k]) warn(`${m.displayPath} disagrees about version of symbol ${name}\n`);
      if (o < 0 || m.deps.includes(o)) continue;
      m.deps.push(o);
      users[o]!++;
      if (input.verbose) stdout += `${m.displayPath} needs "${strings.strings[id!]}": ${modules[o]!.displayPath}\n`;
    }
  }

  const failed = !topologicalOrder(modules, users, err);

  const owned: { name: string; owner: number }[] = [];
  for (let id = 0; id < owner.length; id++) if (owner[id]! >= 0) owned.push({ name: strings.strings[id]!, owner: owner[id]! });
  return {
    strings,
    modules,
    symbols: hashIterationOrder(owned, (s) => s.name, SYMBOLS_BUCKETS, endian),
    messages,
    stdout,
    failed,
  };
}

/**
 * depmod_modules_sort(): modules listed in modules.order (matched on their path with the
 * compression suffix cut) get negative sort keys in file order, all others the same key 1;
 * glibc's qsort is a stable merge sort for this size, so unlisted modules keep hash order.
 * A last line without a newline makes depmod give up sorting altogether.
 */
function sortByModulesOrder(ordered: ModuleEntry[], text: string, dirname: string, err: (t: string) => void): ModuleEntry[] {
  const lines = modulesOrderLines(text, dirname, err);
  if (lines === undefined) return ordered;
  const key = new Map<ModuleEntry, number>();
  for (const m of ordered) {
    const line = lines.get(modulesOrderKey(m.file) ?? '');
    if (line !== undefined) key.set(m, line);
  }
  const UNLISTED = Number.MAX_SAFE_INTEGER;
  return [...ordered].sort((a, b) => (key.get(a) ?? UNLISTED) - (key.get(b) ?? UNLISTED));
}

/**
 * The line of modules.order (from 0) each listed path is on, the last one when listed twice;
 * undefined (after depmod's error) when a line lacks its newline and depmod sorts nothing.
 */
export function modulesOrderLines(text: string, dirname: string, err: (t: string) => void): Map<string, number> | undefined {
  const lines = fgetsLines(text, 4096);
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.endsWith('\n')) {
      err(`${dirname}/modules.order:${i + 1} corrupted line misses '\\n'\n`);
      return undefined;
    }
  }
  const out = new Map<string, number>();
  lines.forEach((line, i) => out.set(line.slice(0, -1), i));
  return out;
}

/** What modules.order calls a module file: its path with the compression suffix cut (none for external files). */
export function modulesOrderKey(file: ModuleFile): string | undefined {
  const rel = file.relPath;
  return rel === undefined ? undefined : rel.slice(0, rel.lastIndexOf('/') + 1 + file.name.length + 3);
}

/**
 * depmod_calculate_dependencies(): Kahn's algorithm with a LIFO of ready modules, seeded
 * with the unused modules in array order; each module gets the next number as it is taken.
 * Returns false (after depmod's cycle report) when some modules are never freed.
 */
function topologicalOrder(modules: ModelModule[], users: Uint32Array, err: (t: string) => void): boolean {
  const left = Uint32Array.from(users);
  const roots: number[] = [];
  for (let i = 0; i < modules.length; i++) if (left[i] === 0) roots.push(i);
  let sorted = 0;
  while (roots.length > 0) {
    const src = modules[roots.pop()!]!;
    src.depSortIdx = sorted++;
    for (const dst of src.deps) {
      if (--left[dst]! === 0) roots.push(dst);
    }
  }
  if (sorted < modules.length) {
    reportCycles(modules, left, err);
    return false;
  }
  for (const m of modules) {
    m.needed = m.deps;
    if (m.deps.length > 1) m.deps = [...m.deps].sort((a, b) => modules[a]!.depSortIdx - modules[b]!.depSortIdx);
  }
  return true;
}

/**
 * depmod_report_cycles() of kmod 30, step for step: a depth-first walk from each module
 * still holding users, reporting a cycle when the walk comes back to its start. kmod's walk
 * re-expands modules already seen, so when it can reach a cycle that does not pass through
 * its start it never ends (or its stack outgrows the space it allocated and it crashes);
 * there the report stops early, with the cycles found so far.
 */
function reportCycles(modules: ModelModule[], users: Uint32Array, err: (t: string) => void): void {
  let roots: number[] = [];
  for (let i = 0; i < modules.length; i++) if (users[i]! > 0) roots.push(i);
  const stackSize = roots.length;
  const visited = new Uint8Array(modules.length);
  const loopSet = new Set<string>();
  interface Vertex {
    readonly mod: number;
    readonly parent: Vertex | undefined;
  }
  const removeRoot = (m: number) => {
    const at = roots.indexOf(m);
    if (at >= 0) roots.splice(at, 1);
  };
  const MAX_STEPS = 1_000_000;
  let steps = 0;
  outer: while (roots.length > 0) {
    const root = roots.shift()!;
    const stack: Vertex[] = [{ mod: root, parent: undefined }];
    while (stack.length > 0) {
      if (++steps > MAX_STEPS) break outer;
      const v = stack.pop()!;
      if (visited[v.mod] && v.mod === root) {
        const path: number[] = [];
        for (let p = v.parent; p !== undefined; p = p.parent) {
          path.push(p.mod);
          loopSet.add(modules[p.mod]!.name);
        }
        path.reverse();
        for (const m of path) removeRoot(m);
        err(`Cycle detected: ${[...path, v.mod].map((m) => modules[m]!.name).join(' -> ')}\n`);
        continue;
      }
      visited[v.mod] = 1;
      const deps = modules[v.mod]!.deps;
      if (deps.length === 0) {
        removeRoot(v.mod);
        continue;
      }
      for (const d of deps) {
        if (stack.length >= stackSize) break outer;
        stack.push({ mod: d, parent: v });
      }
    }
  }
  roots = [];
  err(`Found ${loopSet.size} modules in dependency cycles!\n`);
}

/** Every module `m` needs, directly or not, ordered by topological number (mod_get_all_sorted_dependencies). */
export function allDependencies(model: DepmodModel, m: number): number[] {
  const mods = model.modules;
  const seen = new Set<number>();
  const visit = (i: number) => {
    for (const d of mods[i]!.deps) {
      if (seen.has(d)) continue;
      seen.add(d);
      visit(d);
    }
  };
  visit(m);
  return [...seen].sort((a, b) => mods[a]!.depSortIdx - mods[b]!.depSortIdx);
}
