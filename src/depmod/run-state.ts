import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import type { IndexTables } from './index-patch.js';
import type { ModuleMessage } from './render.js';
import { identityKey, identityOf } from './run-io.js';
import { readTree, writeTree, type ScanTree } from './scan-tree.js';
import { SectionReader, SectionWriter } from './sections.js';

/**
 * The run state, the depmod cache's last frame (cache-file.ts): what the last successful
 * run left, for the next one to build on instead of starting over. Written after the
 * outputs, with their identities; trusted only while every output still has that identity
 * (nobody else ran depmod since), the configuration digests the same, and the summary
 * records it names are all there.
 *
 *   - the scan, laid out flat (scan-tree.ts);
 *   - the module array in depmod's order: each module's file (an item of the scan), summary
 *     record and line in modules.order, and the files of the scan that lost to another;
 *   - how the outputs are made of it: each module's dependency list as modules.dep has it,
 *     where each module's part of every per-module text file starts, the messages rendering
 *     printed about single modules;
 *   - identities of the outputs and of modules.order (identityKey()), digests of the builtin
 *     inputs, and each output's CRC-32: an output whose blocks a crash left unwritten (zeros
 *     under the same size, mtime and inode) is not built on.
 */

const VERSION = 6;

export type OutputIdentity = readonly [name: string, identity: string, crc: number];
export type Fingerprint = readonly [name: string, fingerprint: string, quiet: boolean];

/** The per-module text files, whose parts the state locates. */
export const PART_FILES = ['modules.dep', 'modules.alias', 'modules.softdep', 'modules.weakdep', 'modules.devname'] as const;

export interface StateModules {
  /** The item of the scan each module's file is. */
  readonly item: Uint32Array;
  /** Summary record (see SummaryStore). */
  readonly rec: Uint32Array;
  /** Line of modules.order naming the module (depmod's sort key), -1 for modules it does not name. */
  readonly line: Int32Array;
  /** nameHash() of each module's name, to find a module by name without a map. */
  readonly nameHash: Uint32Array;
  /** Direct dependencies in the order first needed: deps[depOff[i], depOff[i + 1]). */
  readonly depOff: Uint32Array;
  readonly deps: Uint32Array;
  /** All dependencies, as modules.dep lists them. */
  readonly closureOff: Uint32Array;
  readonly closure: Uint32Array;
  /** Module files of the scan that are not the module's chosen file. */
  readonly losers: Uint32Array;
}

export interface RunState {
  readonly key: string;
  /** Summary records the modules refer to. */
  readonly records: number;
  readonly outputs: readonly OutputIdentity[];
  readonly fingerprints: readonly Fingerprint[];
  /** identityKey() of modules.order. */
  readonly order: string;
  readonly tree: ScanTree;
  readonly modules: StateModules;
  /** Per text file in PART_FILES: where module i's part starts (n+1 entries; [0] is the header's length). */
  readonly segments: ReadonlyMap<string, Uint32Array>;
  /** Per module index file: where its offset words and priorities are (index-patch.ts). */
  readonly tables: ReadonlyMap<string, IndexTables>;
  readonly moduleMessages: readonly ModuleMessage[];
}

interface Meta {
  version: number;
  key: string;
  records: number;
  outputs: OutputIdentity[];
  fingerprints: Fingerprint[];
  order: string;
  moduleMessages: ModuleMessage[];
  segments: string[];
  tables: string[];
}

const S = {
  meta: 1,
  item: 2,
  rec: 3,
  line: 4,
  nameHash: 5,
  closureOff: 6,
  closure: 7,
  losers: 8,
  depOff: 9,
  deps: 10,
  segments: 20,
  tables: 40,
  tree: 100,
} as const;

/**
 * The state stored in `payload`, when it can be trusted with the current configuration
 * (`key`) and the summary records there are; otherwise undefined.
 */
export async function loadRunState(fs: KabiFs, dirHost: string, payload: Uint8Array | undefined, key: string, records: number): Promise<RunState | undefined> {
  if (payload === undefined) return undefined;
  try {
    const r = new SectionReader(payload);
    const meta = r.json<Meta>(S.meta);
    if (meta.version !== VERSION || meta.key !== key || meta.records > records) return undefined;
    if (!(await outputsUnchanged(fs, dirHost, meta.outputs))) return undefined;
    const st: RunState = {
      key,
      records: meta.records,
      outputs: meta.outputs,
      fingerprints: meta.fingerprints,
      order: meta.order,
      tree: readTree(r, S.tree),
      modules: {
        item: r.u32(S.item),
        rec: r.u32(S.rec),
        line: r.i32(S.line),
        nameHash: r.u32(S.nameHash),
        depOff: r.u32(S.depOff),
        deps: r.u32(S.deps),
        closureOff: r.u32(S.closureOff),
        closure: r.u32(S.closure),
        losers: r.u32(S.losers),
      },
      segments: new Map(meta.segments.map((f, i) => [f, r.u32(S.segments + i)])),
      tables: new Map(meta.tables.map((f, i) => [f, { words: r.u32(S.tables + 2 * i), prios: r.u32(S.tables + 2 * i + 1) }])),
      moduleMessages: meta.moduleMessages,
    };
    return soundState(st) ? st : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the state's numbers point where they can: the CRC tells damage from what kabi
 * wrote, this what another writer's (or version's) state would make an incremental run
 * index out of bounds with.
 */
function soundState(st: RunState): boolean {
  const m = st.modules;
  const n = m.item.length;
  const t = st.tree;
  const items = t.itemFlags.length;
  const dirs = t.dirFirst.length;
  const below = (a: ArrayLike<number>, limit: number) => {
    for (let i = 0; i < a.length; i++) if (!(a[i]! < limit)) return false;
    return true;
  };
  const offsets = (o: Uint32Array, total: number) => {
    if (o.length !== n + 1 || o[0] !== 0 || o[n] !== total) return false;
    for (let i = 1; i <= n; i++) if (o[i]! < o[i - 1]!) return false;
    return true;
  };
  if (m.rec.length !== n || m.line.length !== n || m.nameHash.length !== n) return false;
  if (!below(m.item, items) || !below(m.rec, st.records) || !below(m.losers, items) || !below(m.deps, n) || !below(m.closure, n)) return false;
  for (let i = 0; i < n; i++) if (m.line[i]! < -1) return false;
  if (!offsets(m.depOff, m.deps.length) || !offsets(m.closureOff, m.closure.length)) return false;
  for (const seg of st.segments.values()) {
    if (seg.length !== n + 1) return false;
    for (let i = 1; i <= n; i++) if (seg[i]! < seg[i - 1]!) return false;
  }
  if (t.itemName.length !== items || t.itemHost.length !== items || t.itemDir.length !== items || !below(t.itemDir, dirs)) return false;
  for (const col of [t.dirEnd, t.dirSpan, t.dirParent, t.dirDepth, t.dirExternal]) if (col.length !== dirs) return false;
  if (t.dirPath.length !== dirs || t.dirHost.length !== dirs || t.dirStamp.length !== 3 * dirs) return false;
  for (let d = 0; d < dirs; d++) {
    if (!(t.dirFirst[d]! <= t.dirEnd[d]! && t.dirEnd[d]! <= items && t.dirSpan[d]! >= 1 && d + t.dirSpan[d]! <= dirs && t.dirParent[d]! < items && t.dirParent[d]! >= -1)) return false;
  }
  return true;
}

export function encodeRunState(st: RunState): Uint8Array {
  const segments = [...st.segments.keys()];
  const tables = [...st.tables.keys()];
  const meta: Meta = {
    version: VERSION,
    key: st.key,
    records: st.records,
    outputs: [...st.outputs],
    fingerprints: [...st.fingerprints],
    order: st.order,
    moduleMessages: [...st.moduleMessages],
    segments,
    tables,
  };
  const w = new SectionWriter()
    .json(S.meta, meta)
    .add(S.item, st.modules.item)
    .add(S.rec, st.modules.rec)
    .add(S.line, st.modules.line)
    .add(S.nameHash, st.modules.nameHash)
    .add(S.closureOff, st.modules.closureOff)
    .add(S.closure, st.modules.closure)
    .add(S.depOff, st.modules.depOff)
    .add(S.deps, st.modules.deps)
    .add(S.losers, st.modules.losers);
  segments.forEach((f, i) => w.add(S.segments + i, st.segments.get(f)!));
  tables.forEach((f, i) => w.add(S.tables + 2 * i, st.tables.get(f)!.words).add(S.tables + 2 * i + 1, st.tables.get(f)!.prios));
  writeTree(w, st.tree, S.tree);
  return w.finish();
}

/** FNV-1a of a module name. */
export function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

async function outputsUnchanged(fs: KabiFs, dirHost: string, outputs: readonly OutputIdentity[]): Promise<boolean> {
  if (outputs.length === 0) return false;
  for (const [name, id] of outputs) {
    try {
      if (identityKey(await identityOf(fs, posix.join(dirHost, name))) !== id) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** The CRC-32 the state recorded for an output, if any. */
export function outputCrc(st: RunState, name: string): number | undefined {
  return st.outputs.find((o) => o[0] === name)?.[2];
}
