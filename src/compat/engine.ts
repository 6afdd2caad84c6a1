import type { KernelModule } from '../module/read-module.js';
import { DEPMOD_FAKE_SYMBOLS, depmodReasons, type DepmodSymbol } from './depmod.js';
import { loaderReasons, proprietaryByLicence, type LoaderOutcome, type LoaderSymbols, type ProvidedSymbol } from './loader.js';
import type { Candidate, KernelModel, Reason, Semantics, TreeModule, Verdict } from './types.js';

export interface CheckOptions {
  semantics?: Semantics;
  /**
   * depmod semantics only: compare CRCs (`depmod -E`). Defaults to true when the kernel has a
   * Module.symvers, as weak-modules always passes one.
   */
  checkSymvers?: boolean;
  /**
   * Take every module of the tree as a fixed provider, checking only the candidates (what
   * weak-modules does: only weak-updates links can be dropped; extra/ and updates/ stay).
   */
  fixedTree?: boolean;
  /**
   * Drop modules that cannot load and judge again until nothing changes (a module that
   * cannot load provides nothing). Default: on for the loader; off for depmod semantics,
   * where one pass is exactly what `depmod -e -E` reports (weak-modules' cascade turns it on).
   */
  cascade?: boolean;
}

/** A module whose own loadability is in question: a candidate, or an out-of-tree module already in the tree. */
interface Member {
  readonly name: string;
  readonly path: string;
  readonly module: KernelModule;
  readonly candidate: boolean;
}

/**
 * Decide, for each candidate, whether it loads on this kernel. Candidates are taken as
 * installed together and ahead of same-named modules of the tree (as weak-modules
 * validates them). Out-of-tree modules depend on each other, so the set is resolved to a
 * fixpoint: a module that cannot load provides nothing, which can break the next one.
 * Pure: all I/O happened when the KernelModel was built.
 */
export function checkAgainstKernel(candidates: readonly Candidate[], model: KernelModel, opts: CheckOptions = {}): Verdict[] {
  const semantics = opts.semantics ?? 'loader';
  const checkSymvers = opts.checkSymvers ?? model.exportSource === 'symvers';
  const cascade = opts.cascade ?? semantics === 'loader';
  const candidateNames = new Set(candidates.map((c) => c.module.name));

  const members: Member[] = candidates.map((c) => ({ name: c.module.name, path: c.path, module: c.module, candidate: true }));
  const inTree: TreeModule[] = [];
  for (const tm of model.modules.values()) {
    if (candidateNames.has(tm.name)) continue; // shadowed by the candidate
    if (tm.inTree || tm.module === undefined || opts.fixedTree) inTree.push(tm);
    else members.push({ name: tm.name, path: tm.path, module: tm.module, candidate: false });
  }

  const dropped = new Map<string, { member: Member; reason: string }>();
  // Loader: which members carry the proprietary taint. It starts from each licence; a member
  // inherits it from a proprietary provider it uses, so it is settled together with the drops.
  const taint = new Map(members.map((m) => [m.path, proprietaryByLicence(m.name, m.module.license)]));
  // The tree's exports do not change between rounds: tabled once, each round adding only its live members.
  const evaluatorFor = semantics === 'loader' ? loaderEvaluator(model, inTree, dropped, taint) : depmodEvaluator(model, inTree, dropped, checkSymvers);
  let reasons = new Map<Member, Reason[]>();
  for (let round = 0; round <= 2 * members.length; round++) {
    const live = members.filter((m) => !dropped.has(m.path));
    const evaluate = evaluatorFor(live);
    const outcomes = new Map<Member, LoaderOutcome>();
    reasons = new Map(
      members.map((m) => {
        const outcome: LoaderOutcome = { proprietary: taint.get(m.path)! };
        outcomes.set(m, outcome);
        return [m, evaluate(m, outcome)];
      }),
    );
    let changed = false;
    for (const m of live) {
      const first = reasons.get(m)!.find((r) => r.severity === 'error');
      if (first) {
        dropped.set(m.path, { member: m, reason: first.message });
        changed = true;
      }
    }
    let tainted = false;
    if (semantics === 'loader') {
      for (const [m, o] of outcomes) {
        if (o.proprietary !== taint.get(m.path)) {
          taint.set(m.path, o.proprietary);
          tainted = true;
        }
      }
    }
    // A newly tainted provider changes its users' verdicts even without cascading drops.
    if (!tainted && (!changed || !cascade)) break;
  }

  return members
    .filter((m) => m.candidate)
    .map((m) => {
      const rs = reasons.get(m)!;
      return { module: m.path, name: m.name, kernel: model.release, compatible: !rs.some((r) => r.severity === 'error'), reasons: rs };
    });
}

function blockedIndex(dropped: Map<string, { member: Member; reason: string }>, exportsOf: (m: KernelModule) => Iterable<string>) {
  const idx = new Map<string, { name: string; reason: string }>();
  for (const { member, reason } of dropped.values()) {
    for (const s of exportsOf(member.module)) if (!idx.has(s)) idx.set(s, { name: member.name, reason });
  }
  return idx;
}

/** The loader's judge for a set of live members: in-tree providers (the first module exporting a symbol wins), then the live members'. */
function loaderEvaluator(model: KernelModel, inTree: readonly TreeModule[], dropped: Map<string, { member: Member; reason: string }>, taint: ReadonlyMap<string, boolean>) {
  const tree = new Map<string, ProvidedSymbol>();
  for (const tm of inTree) {
    // In-tree providers use only vmlinux and other in-tree modules: their licence is their taint.
    const proprietary = tm.licenseKnown ? proprietaryByLicence(tm.name, tm.license) : undefined;
    for (const e of tm.exports) if (!tree.has(e.symbol)) tree.set(e.symbol, { exp: e, proprietary });
  }
  return (live: readonly Member[]) => {
    // After the tree's, the live members' exports: again the first one wins.
    const liveExports = new Map<string, ProvidedSymbol>();
    for (const m of live) {
      for (const e of m.module.exports) {
        if (!liveExports.has(e.symbol)) {
          liveExports.set(e.symbol, {
            exp: { symbol: e.symbol, crc: e.crc, gplOnly: e.gplOnly, namespace: e.namespace, owner: m.name, certain: true },
            proprietary: taint.get(m.path)!,
          });
        }
      }
    }
    const blocked = blockedIndex(dropped, (mod) => mod.exports.map((e) => e.symbol));
    const symbols: LoaderSymbols = {
      find: (s: string) => {
        const v = model.vmlinux.get(s);
        return v ? { exp: v, proprietary: false } : (tree.get(s) ?? liveExports.get(s));
      },
      blockedProvider: (s: string) => blocked.get(s),
    };
    return (m: Member, outcome: LoaderOutcome) => loaderReasons(m.module, model, symbols, outcome);
  };
}

const FAKE_SYMBOL: DepmodSymbol = { crc: 0n, owner: undefined };
const FAKE_SYMBOLS = new Set(DEPMOD_FAKE_SYMBOLS);

/** depmod's judge for a set of live members; the in-tree part of its symbol hash (a later module's export replaces an earlier one's: hash_add) is tabled once. */
function depmodEvaluator(model: KernelModel, inTree: readonly TreeModule[], dropped: Map<string, { member: Member; reason: string }>, checkSymvers: boolean) {
  const tree = new Map<string, DepmodSymbol>();
  for (const tm of inTree) for (const e of tm.depmodExports) tree.set(e.symbol, { crc: e.crc, owner: tm.name });
  const fromVmlinux = (s: string): DepmodSymbol | undefined => {
    if (FAKE_SYMBOLS.has(s)) return FAKE_SYMBOL;
    const crc = model.depmodVmlinux.get(s);
    return crc === undefined ? undefined : { crc, owner: undefined };
  };
  return (live: readonly Member[]) => {
    // depmod's symbol hash is filled with vmlinux's lines, its fake symbols, then every module
    // in turn, a later addition replacing an earlier one: so a symbol is looked up in the
    // reverse order, live members first. vmlinux's table is read in place, not copied for
    // every kernel and round: in `weak-modules --add-modules` over 8 kernels the copies took
    // 156 ms of checkAgainstKernel's 174, the judging 5.
    const liveTable = new Map<string, DepmodSymbol>();
    for (const m of live) for (const e of kmodExports(m.module)) liveTable.set(e.symbol, { crc: e.crc, owner: m.name });
    const blocked = blockedIndex(dropped, (mod) => kmodExports(mod).map((e) => e.symbol));
    const symbols = { get: (s: string) => liveTable.get(s) ?? tree.get(s) ?? fromVmlinux(s), blockedProvider: (s: string) => blocked.get(s) };
    return (m: Member) => depmodReasons(m.module, m.path, symbols, checkSymvers);
  };
}

/** kmod_module_get_symbols(): the `__crc_` symbols, or `__ksymtab_strings` with CRC 0 when there are none. */
export function kmodExports(mod: Pick<KernelModule, 'crcSymbols' | 'ksymtabStrings'>): { symbol: string; crc: bigint }[] {
  if (mod.crcSymbols.length > 0) return mod.crcSymbols.map((c) => ({ symbol: c.symbol, crc: c.crc }));
  return mod.ksymtabStrings.map((s) => ({ symbol: s, crc: 0n }));
}
