import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import type { IndexTables } from './index-patch.js';
import type { ModuleMessage } from './render.js';
import { readTree, writeTree, type ScanTree } from './scan-tree.js';
import { SectionReader, SectionWriter } from './sections.js';

/**
 * The run state, modules.kabi-cache's last frame (cache-file.ts): what the last successful
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
 *   - identities of the outputs and of modules.order, digests of the builtin inputs.
 */

const VERSION = 5;

export type OutputIdentity = readonly [name: string, size: number, mtimeMs: number, ino: number];
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
  /** size, mtimeMs, ino of modules.order. */
  readonly order: readonly [number, number, number];
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
  order: [number, number, number];
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
    return {
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
  } catch {
    return undefined;
  }
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
    order: [...st.order],
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
  for (const [name, size, mtimeMs, ino] of outputs) {
    try {
      const st = await fs.stat(posix.join(dirHost, name));
      if (st.size !== size || st.mtimeMs !== mtimeMs || st.ino !== ino) return false;
    } catch {
      return false;
    }
  }
  return true;
}
