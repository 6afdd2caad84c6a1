import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import { nodeFs } from '../fs.js';
import { keepsPriority, type ModuleFile } from '../kernel/module-tree.js';
import { moduleNameFromPath } from '../module/read-module.js';
import { modulesOrderKey, type DepmodMessage } from './compute.js';
import { computeColumnar } from './columnar-model.js';
import { updateDependencies, type Dependencies } from './model-update.js';
import { IndexReader, type IndexValue } from './index-format.js';
import { indexTables, patchIndex, type IndexEdit } from './index-patch.js';
import type { KernelSymbols } from './kernel-symbols.js';
import type { KmodFlavor } from './kmod-flavor.js';
import { compareHashOrder, MODULES_BUCKETS } from './kmod-hash.js';
import { builtinFingerprints, depLine, DEPMOD_OUTPUTS, devnameEntry, INFO_FILES, normalizeAlias, renderBuiltin, renderBuiltinAliases, TEXT_HEADERS, type ModuleMessage } from './render.js';
import { crc32 } from './checksum.js';
import { identityKey, identityOf, readFileSyncOrUndefined, readOptionalBytes, readOptionalText, readSummary } from './run-io.js';
import { nameHash, outputCrc, type Fingerprint, type RunState } from './run-state.js';
import { isModuleItem, moduleFileAt, refreshTree, scanMessages, type TreeContext } from './scan-tree.js';
import { NO_IDENTITY, type FileIdentity, type SummaryStore } from './summary-store.js';
import { patchSymbolsText, runsOf, spliceParts } from './text-patch.js';

/**
 * An incremental run: the previous run's state (run-state.ts) plus what changed gives the
 * new outputs without looking at anything else. Every directory's identity is checked, but
 * only those named by a change or whose identity changed are listed again (scan-tree.ts),
 * and only the module names found there are chosen again; only new or changed module files
 * are read. The module array and every dependency are computed again in full
 * (columnar-model.ts: a few milliseconds), and the outputs are patched where the modules
 * that came, went or changed their dependency lists are: per-module parts of the text files
 * spliced, index keys edited (index-patch.ts), module indexes renumbered. The result is what
 * a full run gives, byte for byte; what this path does not handle (dependency cycles, a
 * modules.order changed since) makes the caller take the full one.
 */

export interface IncrementalInput extends TreeContext {
  readonly moduleDirHost: string;
  readonly dirname: string;
  readonly kmod: KmodFlavor;
  readonly errsyms: boolean;
  readonly kernelSymbols: KernelSymbols | undefined;
  readonly store: SummaryStore;
  readonly state: RunState;
  /** Directories to list again whatever their identity. */
  readonly reread: ReadonlySet<string>;
  readonly lap: (phase: string) => void;
}

export interface OutputFile {
  readonly name: string;
  readonly data: Uint8Array;
  /** Left as it was on disk. */
  readonly reused: boolean;
}

export interface IncrementalOutcome {
  readonly messages: DepmodMessage[];
  /** In depmod's order; unchanged ones read from disk when first looked at. */
  readonly files: OutputFile[];
  readonly parsed: number;
  /** The next state, less what only writing tells (output identities; `records` as of now). */
  readonly next: RunState;
}

interface Added {
  readonly file: ModuleFile;
  readonly item: number;
  readonly rec: number;
  line: number;
}

/** undefined: the state does not fit the tree (modules.order changed, a cycle…): take the full path. */
export async function incrementalRun(input: IncrementalInput): Promise<IncrementalOutcome | undefined> {
  const { fs, state, store, moduleDirHost, dirname, moduleDir } = input;
  const old = state.modules;
  const oldTree = state.tree;
  const oldN = old.item.length;
  const orderPath = posix.join(moduleDirHost, 'modules.order');
  let order: string;
  try {
    order = identityKey(await identityOf(fs, orderPath));
  } catch {
    return undefined;
  }
  if (order !== state.order) return undefined;

  // 1. The tree, listing again only what changed (and where a link now leads elsewhere).
  const moduleOfItem = new Map<number, number>();
  for (let j = 0; j < oldN; j++) moduleOfItem.set(old.item[j]!, j);
  const summarised = (x: number) => {
    const j = moduleOfItem.get(x);
    return j === undefined ? undefined : store.identity(old.rec[j]!);
  };
  const { tree, itemMap, fresh } = await refreshTree(oldTree, input, input.reread, summarised);
  const messages: DepmodMessage[] = scanMessages(tree, input).map((text) => ({ level: 'ERROR', text: text + '\n' }));
  input.lap('scan');

  // 2. Module names whose files came, went or were listed again: chosen again.
  const affected = new Set<string>();
  const oldItemName = (x: number) => moduleNameFromPath(oldTree.itemName.get(x));
  for (let j = 0; j < oldN; j++) if (itemMap[old.item[j]!]! < 0) affected.add(oldItemName(old.item[j]!));
  for (const x of old.losers) if (itemMap[x]! < 0) affected.add(oldItemName(x));
  const freshModules = new Map<string, number[]>();
  for (const x of fresh) {
    if (!isModuleItem(tree, x)) continue;
    const name = moduleNameFromPath(tree.itemName.get(x));
    affected.add(name);
    freshModules.set(name, [...(freshModules.get(name) ?? []), x]);
  }
  const oldByName = (name: string): number => {
    const h = nameHash(name);
    for (let j = 0; j < oldN; j++) if (old.nameHash[j] === h && oldItemName(old.item[j]!) === name) return j;
    return -1;
  };
  const oldLosers = new Map<string, number[]>();
  for (const x of old.losers) {
    const name = oldItemName(x);
    if (affected.has(name) && itemMap[x]! >= 0) oldLosers.set(name, [...(oldLosers.get(name) ?? []), itemMap[x]!]);
  }
  const removedSet = new Set<number>();
  /** Modules that stay, their file found again in a directory listed again. */
  const keptItem = new Map<number, number>();
  const added: Added[] = [];
  const losers: number[] = [];
  for (const x of old.losers) if (itemMap[x]! >= 0 && !affected.has(oldItemName(x))) losers.push(itemMap[x]!);
  let parsed = 0;
  for (const name of affected) {
    const j = oldByName(name);
    const carried = j >= 0 ? itemMap[old.item[j]!]! : -1;
    const candidates = [...(carried >= 0 ? [carried] : []), ...(oldLosers.get(name) ?? []), ...(freshModules.get(name) ?? [])].sort((a, b) => a - b);
    let winner: ModuleFile | undefined;
    let winnerItem = -1;
    for (const x of candidates) {
      const f = moduleFileAt(tree, x, moduleDir);
      if (winner === undefined || !keepsPriority(input.config, winner, f)) {
        winner = f;
        winnerItem = x;
      }
    }
    for (const x of candidates) if (x !== winnerItem) losers.push(x);
    if (winner === undefined) {
      if (j >= 0) removedSet.add(j);
      continue;
    }
    // The same file, carried over from a directory not listed again: the same module.
    if (winnerItem === carried) continue;
    let id: FileIdentity | undefined;
    try {
      id = await identityOf(fs, winner.host);
    } catch {
      id = undefined;
    }
    let rec = id === undefined ? undefined : store.find(winner.host, id);
    if (rec === undefined) {
      rec = store.add(winner.host, id ?? NO_IDENTITY, await readSummary(fs, winner, store.strings));
      parsed++;
    }
    if (j >= 0) {
      const was = moduleFileAt(oldTree, old.item[j]!, moduleDir);
      // Listed again but the same file with the same contents: it stays where it is.
      if (was.path === winner.path && was.host === winner.host && rec === old.rec[j] && was.external === winner.external) {
        keptItem.set(j, winnerItem);
        continue;
      }
      removedSet.add(j);
    }
    added.push({ file: winner, item: winnerItem, rec, line: -1 });
  }
  if (store.damage !== undefined) throw store.damage;
  input.lap('read');

  // 3. The module array: the previous one's order kept, new modules put in their place.
  if (added.some((e) => e.file.relPath !== undefined)) {
    // The state is only written with a modules.order depmod sorts by (every line ends in a
    // newline, none is cut by fgets), and this is that file.
    const text = await readOptionalText(fs, orderPath);
    if (text === undefined) return undefined;
    for (const e of added) e.line = orderLine(text, modulesOrderKey(e.file));
  }
  const oldName = (j: number) => oldItemName(old.item[j]!);
  // depmod's order: modules.order's, then the others in hash order (names only looked at then).
  const before = (la: number, na: () => string, lb: number, nb: () => string): number => {
    if (la >= 0 && lb >= 0) return la - lb;
    if (la >= 0 || lb >= 0) return la >= 0 ? -1 : 1;
    return compareHashOrder(na(), nb(), MODULES_BUCKETS);
  };
  added.sort((a, b) => before(a.line, () => a.file.name, b.line, () => b.file.name));
  // Where each goes among the previous modules (in that order already): before `at[k]`.
  const at = added.map((a) => {
    let lo = 0;
    let hi = oldN;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(a.line, () => a.file.name, old.line[mid]!, () => oldName(mid)) < 0) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  });
  const n = oldN - removedSet.size + added.length;
  /** Per new index: the old index, or -1 - k for added[k]. */
  const source = new Int32Array(n);
  {
    let i = 0;
    let k = 0;
    for (let j = 0; j <= oldN; j++) {
      while (k < added.length && at[k] === j) source[i++] = -1 - k++;
      if (j < oldN && !removedSet.has(j)) source[i++] = j;
    }
  }
  const newItem = new Uint32Array(n);
  const rec = new Uint32Array(n);
  const line = new Int32Array(n);
  const hashes = new Uint32Array(n);
  const remap = new Int32Array(oldN).fill(-1);
  let shifted = false;
  for (let i = 0; i < n; i++) {
    const s = source[i]!;
    if (s >= 0) {
      newItem[i] = keptItem.get(s) ?? itemMap[old.item[s]!]!;
      rec[i] = old.rec[s]!;
      line[i] = old.line[s]!;
      hashes[i] = old.nameHash[s]!;
      remap[s] = i;
      if (s !== i) shifted = true;
    } else {
      const a = added[-1 - s]!;
      newItem[i] = a.item;
      rec[i] = a.rec;
      line[i] = a.line;
      hashes[i] = nameHash(a.file.name);
    }
  }
  const files = new Map<number, ModuleFile>();
  const fileOf = (i: number): ModuleFile => {
    let f = files.get(i);
    if (f === undefined) {
      f = source[i]! < 0 ? added[-1 - source[i]!]!.file : moduleFileAt(tree, newItem[i]!, moduleDir);
      files.set(i, f);
    }
    return f;
  };
  const name = (i: number) => (source[i]! < 0 ? added[-1 - source[i]!]!.file.name : moduleNameFromPath(tree.itemName.get(newItem[i]!)));
  const outPath = (i: number) => fileOf(i).relPath ?? fileOf(i).path;

  // 4. depmod's computation: whole with -e (its messages name every module's unknown
  // symbols) or PPC64 '.' symbols, otherwise from the previous run's where nothing moved.
  const displayPath = (i: number) => (fileOf(i).relPath !== undefined ? `${dirname}/${fileOf(i).relPath}` : fileOf(i).path);
  const changedSymbols = new Set<number>();
  for (const j of removedSet) for (const s of store.summary(old.rec[j]!).exports) changedSymbols.add(s);
  for (const a of added) for (const s of store.summary(a.rec).exports) changedSymbols.add(s);
  let model: Dependencies;
  if ((input.errsyms && input.kernelSymbols !== undefined) || !store.indexed) {
    const full = computeColumnar({ store, rec, displayPath, kernelSymbols: input.kernelSymbols, errsyms: input.errsyms });
    for (const m of full.messages) messages.push(m);
    model = full;
  } else {
    const anyError = store.anyError;
    for (let i = 0; anyError && i < n; i++) {
      const error = store.error(rec[i]!);
      if (error !== undefined) messages.push({ level: 'ERROR', text: `failed to load symbols from ${displayPath(i)}: ${error}\n` });
    }
    model = updateDependencies({ store, rec, source, remap, old, changed: [...changedSymbols] });
  }
  if (model.failed) return undefined;
  input.lap('compute');

  // 5. The outputs, from the previous ones.
  const removed = [...removedSet].sort((a, b) => a - b);
  const addedAt: number[] = [];
  for (let i = 0; i < n; i++) if (source[i]! < 0) addedAt.push(i);
  const changedModules = removed.length > 0 || addedAt.length > 0;
  const addedNames = new Set(added.map((a) => a.file.name));
  const strings = store.strings;
  const layout = input.kmod.layout;
  const idRemap = shifted ? remap : undefined;
  const oldOf = (i: number) => (source[i]! >= 0 ? source[i]! : -1);

  const previous = new Map<string, Buffer>();
  const oldBytes = async (file: string): Promise<Buffer> => {
    let b = previous.get(file);
    if (b === undefined) {
      const path = posix.join(moduleDirHost, file);
      const raw = (await readOptionalBytes(fs, path)) ?? new Uint8Array(0);
      // The same identity but other bytes (blocks a crash left unwritten): nothing to patch.
      if (crc32(raw) !== outputCrc(state, file)) throw new KabiError('DEPMOD_FORMAT', 'not what the last run wrote', { file: path });
      b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      previous.set(file, b);
    }
    return b;
  };
  const made = new Map<string, Uint8Array>();
  const tables = new Map(state.tables);
  const patch = (file: string, bytes: Uint8Array, edits: readonly IndexEdit[]) => {
    const p = patchIndex(bytes, layout, edits, idRemap, state.tables.get(file));
    made.set(file, p.data);
    tables.set(file, p.tables ?? indexTables(p.data));
  };
  const segments = new Map(state.segments);
  const moduleMessages: ModuleMessage[] = [];
  for (const [file, j, text] of state.moduleMessages) if (remap[j]! >= 0) moduleMessages.push([file, remap[j]!, text]);
  const keyIds = new Map<string, number | undefined>();
  const infoValues = (r: number, key: string): string[] => {
    if (!keyIds.has(key)) keyIds.set(key, store.keyId(key));
    const keyId = keyIds.get(key);
    if (keyId === undefined) return [];
    const info = store.summary(r).info;
    const out: string[] = [];
    for (let k = 0; k < info.length; k += 2) if (info[k] === keyId) out.push(strings.get(info[k + 1]!));
    return out;
  };

  // modules.dep and its index: the lines whose dependency lists changed.
  const { closureOff, closure } = model;
  const lineChanged = new Uint8Array(n);
  let anyLine = false;
  const sameClosure = model.sameClosure;
  for (let i = 0; i < n; i++) {
    if (sameClosure?.[i]) continue;
    const j = oldOf(i);
    let same = j >= 0;
    if (same) {
      const a = closureOff[i]!;
      const len = closureOff[i + 1]! - a;
      const oa = old.closureOff[j]!;
      if (old.closureOff[j + 1]! - oa !== len) same = false;
      else for (let k = 0; k < len && same; k++) same = remap[old.closure[oa + k]!] === closure[a + k];
    }
    if (!same) {
      lineChanged[i] = 1;
      anyLine = true;
    }
  }
  const lineOf = (i: number) => {
    const deps: string[] = [];
    for (let k = closureOff[i]!; k < closureOff[i + 1]!; k++) deps.push(outPath(closure[k]!));
    return depLine(outPath(i), deps);
  };
  const keptRuns = runsOf(Int32Array.from(source, (j) => (j >= 0 ? j : -1)));
  if (anyLine || changedModules) {
    const lineRuns = runsOf(Int32Array.from(source, (j, i) => (j >= 0 && !lineChanged[i] ? j : -1)));
    const dep = spliceParts(await oldBytes('modules.dep'), state.segments.get('modules.dep')!, lineRuns, n, lineOf, '');
    made.set('modules.dep', dep.data);
    segments.set('modules.dep', dep.off);
    const edits: IndexEdit[] = [];
    for (let i = 0; i < n; i++) if (lineChanged[i]) edits.push({ key: name(i), values: [{ priority: i, value: lineOf(i).slice(0, -1) }] });
    for (const j of removed) if (!addedNames.has(oldName(j))) edits.push({ key: oldName(j), values: [] });
    patch('modules.dep.bin', await oldBytes('modules.dep.bin'), edits);
  }

  if (changedModules) {
    // Per-module text files: the parts of the modules that came or went.
    for (const [file, key, text] of INFO_FILES) {
      if (file === 'modules.weakdep' && !input.kmod.weakdep) continue;
      const s = spliceParts(await oldBytes(file), state.segments.get(file)!, keptRuns, n, (i) => infoValues(rec[i]!, key).map((v) => text(name(i), v)).join(''), TEXT_HEADERS[file]);
      made.set(file, s.data);
      segments.set(file, s.off);
    }
    const devname = spliceParts(
      await oldBytes('modules.devname'),
      state.segments.get('modules.devname')!,
      keptRuns,
      n,
      (i) => {
        const e = devnameEntry(name(i), infoValues(rec[i]!, 'alias'));
        if (e === undefined) return '';
        if ('error' in e) {
          moduleMessages.push(['modules.devname', i, e.error]);
          return '';
        }
        return e.line;
      },
      TEXT_HEADERS['modules.devname'],
      false,
    );
    made.set('modules.devname', devname.data);
    segments.set('modules.devname', devname.off);

    // modules.alias.bin: every alias key of the modules that came or went, its list redone.
    const keys = new Map<string, number[]>();
    for (const j of removed) {
      for (const v of infoValues(old.rec[j]!, 'alias')) {
        const k = normalizeAlias(v);
        if (k !== undefined && !keys.has(k)) keys.set(k, []);
      }
    }
    for (const i of addedAt) {
      for (const v of infoValues(rec[i]!, 'alias')) {
        const k = normalizeAlias(v);
        if (k === undefined) moduleMessages.push(['modules.alias.bin', i, `Unmatched bracket in ${v}\n`]);
        else keys.set(k, [...(keys.get(k) ?? []), i]);
      }
    }
    if (keys.size > 0 || idRemap) {
      const oldAlias = await oldBytes('modules.alias.bin');
      const reader = new IndexReader(oldAlias);
      const aliasEdits: IndexEdit[] = [];
      for (const [k, adds] of keys) {
        const list: IndexValue[] = [];
        for (const v of reader.get(k)) if (remap[v.priority]! >= 0) list.push({ priority: remap[v.priority]!, value: v.value });
        for (const i of adds) list.push({ priority: i, value: name(i) });
        list.sort((a, b) => a.priority - b.priority);
        aliasEdits.push({ key: k, values: list });
      }
      patch('modules.alias.bin', oldAlias, aliasEdits);
    }

    // modules.symbols and its index: the symbols the modules that came or went export.
    const oldOwner = previousOwners(store, old.rec, changedSymbols);
    const textEdits: { name: string; owner: string | undefined }[] = [];
    const binEdits: IndexEdit[] = [];
    for (const s of changedSymbols) {
      const oo = oldOwner.get(s);
      const no = model.ownerOf(s);
      if (oo !== undefined && no >= 0 && remap[oo] === no) continue;
      const sym = strings.get(s);
      if (!(oo !== undefined && no >= 0 && oldName(oo) === name(no))) textEdits.push({ name: sym, owner: no >= 0 ? name(no) : undefined });
      binEdits.push({ key: `symbol:${sym}`, values: no >= 0 ? [{ priority: no, value: name(no) }] : [] });
    }
    if (textEdits.length > 0) made.set('modules.symbols', patchSymbolsText(await oldBytes('modules.symbols'), TEXT_HEADERS['modules.symbols'].length, textEdits));
    if (binEdits.length > 0 || idRemap) patch('modules.symbols.bin', await oldBytes('modules.symbols.bin'), binEdits);
  }

  // The builtin indexes: rendered again only when their inputs changed (or printed something).
  const builtin = await readOptionalText(fs, posix.join(moduleDirHost, 'modules.builtin'));
  const modinfo = await readOptionalBytes(fs, posix.join(moduleDirHost, 'modules.builtin.modinfo'));
  const fps = builtinFingerprints(layout, builtin, modinfo);
  const fingerprints: Fingerprint[] = [];
  const builtinMessages: DepmodMessage[] = [];
  for (const [file, render] of [
    ['modules.builtin.bin', () => renderBuiltin(builtin, { layout, dirname }, builtinMessages)],
    ['modules.builtin.alias.bin', () => renderBuiltinAliases(modinfo, { layout, dirname }, builtinMessages)],
  ] as const) {
    const fp = fps[file];
    if (state.fingerprints.some(([f, p, quiet]) => f === file && p === fp && quiet)) {
      fingerprints.push([file, fp, true]);
      continue;
    }
    const before = builtinMessages.length;
    made.set(file, render());
    fingerprints.push([file, fp, builtinMessages.length === before]);
  }

  // depmod's messages about single modules, in the order it prints them.
  const rank = (f: string) => (f === 'modules.alias.bin' ? 0 : 1);
  const sortedMessages = moduleMessages
    .map((m, k) => [m, k] as const)
    .sort(([a, ka], [b, kb]) => rank(a[0]) - rank(b[0]) || a[1] - b[1] || ka - kb)
    .map(([m]) => m);
  for (const [file, , text] of sortedMessages) if (file === 'modules.alias.bin') messages.push({ level: 'WARNING', text });
  for (const m of builtinMessages) messages.push(m);
  for (const [file, , text] of sortedMessages) if (file === 'modules.devname') messages.push({ level: 'ERROR', text });
  input.lap('render');

  const out: OutputFile[] = [];
  for (const file of DEPMOD_OUTPUTS) {
    if (file === 'modules.weakdep' && !input.kmod.weakdep) continue;
    const data = made.get(file);
    const prev = previous.get(file);
    if (data !== undefined && !(prev !== undefined && prev.equals(data))) out.push({ name: file, data, reused: false });
    else if (prev !== undefined) out.push({ name: file, data: prev, reused: true });
    else if (fs === nodeFs) out.push(onDisk(file, posix.join(moduleDirHost, file)));
    else out.push({ name: file, data: await oldBytes(file), reused: true });
  }
  return {
    messages,
    files: out,
    parsed,
    next: {
      key: state.key,
      records: store.size,
      outputs: [],
      fingerprints,
      order,
      tree,
      modules: { item: newItem, rec, line, nameHash: hashes, depOff: model.depOff, deps: model.deps, closureOff, closure, losers: Uint32Array.from(losers).sort() },
      segments,
      tables,
      moduleMessages: sortedMessages,
    },
  };
}

/** The line of modules.order (from 0) a path is last listed on, -1 for none. */
function orderLine(text: string, key: string | undefined): number {
  if (key === undefined) return -1;
  const nl = text.lastIndexOf(`\n${key}\n`);
  if (nl < 0) {
    if (!text.startsWith(`${key}\n`)) return -1;
    return 0;
  }
  let line = 0;
  for (let q = text.indexOf('\n'); q >= 0 && q <= nl; q = text.indexOf('\n', q + 1)) line++;
  return line;
}

/** Which old module owned each of the given symbols (the last to export it). */
function previousOwners(store: SummaryStore, recs: Uint32Array, symbols: ReadonlySet<number>): Map<number, number> {
  const owners = new Map<number, number>();
  if (symbols.size === 0) return owners;
  if (store.indexed) {
    const exporters = new Map<number, number[]>();
    for (const s of symbols) for (const r of store.exporters(s)) exporters.set(r, [...(exporters.get(r) ?? []), s]);
    for (let j = 0; j < recs.length; j++) for (const s of exporters.get(recs[j]!) ?? []) owners.set(s, j);
    return owners;
  }
  for (let j = 0; j < recs.length; j++) for (const s of store.summary(recs[j]!).exports) if (symbols.has(s)) owners.set(s, j);
  return owners;
}

/** An output left as it is: its bytes are read when first asked for. */
function onDisk(name: string, path: string): OutputFile {
  let data: Uint8Array | undefined;
  return {
    name,
    reused: true,
    get data() {
      data ??= readFileSyncOrUndefined(path) ?? new Uint8Array(0);
      return data;
    },
  };
}
