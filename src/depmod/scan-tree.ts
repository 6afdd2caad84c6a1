import type { KabiFs } from '../fs.js';
import { childPath as child, directoryStamp, followEntry, listDirectory, MAX_DEPTH, ScanBudget, type DirListing, type ModuleFile, type ScanListings, type ScannedEntry, type ScanRoot } from '../kernel/module-tree.js';
import { moduleNameFromPath } from '../module/read-module.js';
import type { DepmodConfig } from './config.js';
import { Grow, SectionReader, SectionWriter, StringColumn, StringColumnBuilder } from './sections.js';
import { identityOfStat, sameIdentity, type FileIdentity } from './summary-store.js';

/**
 * The directory listings of a depmod scan laid out flat in the order the scan walks them
 * (scanModuleFiles of kernel/module-tree.ts): every directory's entries, each subdirectory's
 * block right after its entry, the module directory first, then each `external` directory,
 * last configured first. A module file's place in the scan is its item index, and a
 * directory whose identity is unchanged keeps its block as it is, so an incremental run
 * checks every directory's identity but lists again only the ones that changed.
 *
 * Listing a directory here does what scanModuleFiles' listing does (raw readdir order,
 * symlinks followed within the root, the same messages for what cannot be read); the full
 * path scans with scanModuleFiles and lays its listings out with fromListings().
 *
 * A directory's identity says nothing of where its links lead: a weak-updates link's target
 * replaced in another kernel's tree, or appearing after the link dangled, leaves the link's
 * directory as it was. So every link is followed again each run (staleLinkDirs()), and a
 * directory with a link that now leads elsewhere, or to a file other than the one summarised,
 * is listed again.
 */

const ITEM_DIR = 1;
const ITEM_LINK = 2;
const ITEM_SKIPPED = 4;
const ITEM_MODULE = 8;

export interface ScanTree {
  /** System path of each directory, as the scan reached it (through links, if any). */
  readonly dirPath: StringColumn;
  /** Host path it was read at. */
  readonly dirHost: StringColumn;
  /** ino, mtime in ns, size per directory when it was read. */
  readonly dirStamp: BigUint64Array;
  /** The item that is its entry in its parent, -1 for the module directory and external roots. */
  readonly dirParent: Int32Array;
  /** Its block: items [dirFirst, dirEnd), subdirectories' blocks included. */
  readonly dirFirst: Uint32Array;
  readonly dirEnd: Uint32Array;
  /** Directories in its subtree, itself included (directories are numbered in walk order). */
  readonly dirSpan: Uint32Array;
  readonly dirDepth: Uint8Array;
  readonly dirExternal: Uint8Array;
  readonly itemName: StringColumn;
  /** Host path of an entry's contents, '' where it is its directory's host plus its name; depmod's message for a skipped one. */
  readonly itemHost: StringColumn;
  readonly itemFlags: Uint8Array;
  readonly itemDir: Uint32Array;
}

export interface TreeContext {
  readonly fs: KabiFs;
  readonly root: string;
  readonly moduleDir: string;
  readonly config: DepmodConfig;
  readonly extensions: readonly string[];
  readonly externalRoot: string;
  /** The walk's roots (scanRoots() of kernel/module-tree.ts): the module directory, then the external directories last configured first. */
  readonly roots: readonly ScanRoot[];
}

function roots(ctx: TreeContext): readonly ScanRoot[] {
  return ctx.roots;
}

/** The root links below a directory of the tree are followed under. */
function linkRootOf(ctx: TreeContext, external: boolean): string {
  return external ? ctx.externalRoot : (ctx.roots.find((r) => !r.external)?.linkRoot ?? ctx.root);
}

/** Host paths of the directories above d, from its walk's start down. */
function hostsAbove(t: ScanTree, d: number): string[] {
  const out: string[] = [];
  for (let p = t.dirParent[d]!; p >= 0; ) {
    const up = t.itemDir[p]!;
    out.push(t.dirHost.get(up));
    p = t.dirParent[up]!;
  }
  return out.reverse();
}

/** Builds a tree directory by directory, item by item, or by copying blocks of another tree. */
class TreeBuilder {
  readonly dirPath = new StringColumnBuilder();
  readonly dirHost = new StringColumnBuilder();
  readonly dirStamp: bigint[] = [];
  readonly dirParent = new Grow(Int32Array);
  readonly dirFirst = new Grow(Uint32Array);
  readonly dirEnd = new Grow(Uint32Array);
  readonly dirSpan = new Grow(Uint32Array);
  readonly dirDepth = new Grow(Uint8Array);
  readonly dirExternal = new Grow(Uint8Array);
  readonly itemName = new StringColumnBuilder();
  readonly itemHost = new StringColumnBuilder();
  readonly itemFlags = new Grow(Uint8Array, 4096);
  readonly itemDir = new Grow(Uint32Array, 4096);
  private readonly stamps: BigUint64Array[] = [];

  constructor(private readonly isModule: (name: string) => boolean) {}

  get items(): number {
    return this.itemFlags.length;
  }

  get dirs(): number {
    return this.dirFirst.length;
  }

  openDir(path: string, host: string, stamp: readonly bigint[], parent: number, depth: number, external: boolean): number {
    const d = this.dirs;
    this.dirPath.push(path);
    this.dirHost.push(host);
    this.stamps.push(BigUint64Array.from(stamp));
    this.dirParent.push(parent);
    this.dirFirst.push(this.items);
    this.dirEnd.push(this.items);
    this.dirSpan.push(1);
    this.dirDepth.push(depth);
    this.dirExternal.push(external ? 1 : 0);
    return d;
  }

  closeDir(d: number): void {
    this.dirEnd.set(d, this.items);
    this.dirSpan.set(d, this.dirs - d);
  }

  item(d: number, e: ScannedEntry, hostDir: string): number {
    const x = this.items;
    this.itemName.push(e.name);
    this.itemHost.push(e.kind !== 'skipped' && e.host === child(hostDir, e.name) ? '' : e.host);
    this.itemFlags.push((e.kind === 'dir' ? ITEM_DIR : 0) | (e.isLink ? ITEM_LINK : 0) | (e.kind === 'skipped' ? ITEM_SKIPPED : 0) | (e.kind === 'file' && this.isModule(e.name) ? ITEM_MODULE : 0));
    this.itemDir.push(d);
    return x;
  }

  /** Another tree's directory `d` with its whole block, its entry now item `parent`; returns how far its items moved. */
  copyBlock(t: ScanTree, d: number, parent: number): number {
    const dirShift = this.dirs - d;
    const itemShift = this.items - t.dirFirst[d]!;
    const dEnd = d + t.dirSpan[d]!;
    this.dirPath.pushRange(t.dirPath, d, dEnd);
    this.dirHost.pushRange(t.dirHost, d, dEnd);
    this.stamps.push(t.dirStamp.subarray(3 * d, 3 * dEnd));
    this.dirParent.push(parent);
    this.dirParent.pushRange(t.dirParent, d + 1, dEnd, itemShift);
    this.dirFirst.pushRange(t.dirFirst, d, dEnd, itemShift);
    this.dirEnd.pushRange(t.dirEnd, d, dEnd, itemShift);
    this.dirSpan.pushRange(t.dirSpan, d, dEnd);
    this.dirDepth.pushRange(t.dirDepth, d, dEnd);
    this.dirExternal.pushRange(t.dirExternal, d, dEnd);
    const a = t.dirFirst[d]!;
    const b = t.dirEnd[d]!;
    this.itemName.pushRange(t.itemName, a, b);
    this.itemHost.pushRange(t.itemHost, a, b);
    this.itemFlags.pushRange(t.itemFlags, a, b);
    this.itemDir.pushRange(t.itemDir, a, b, dirShift);
    return itemShift;
  }

  /** One item of another tree (of a directory listed again around it). */
  copyItem(t: ScanTree, x: number, d: number): number {
    const n = this.items;
    this.itemName.pushRange(t.itemName, x, x + 1);
    this.itemHost.pushRange(t.itemHost, x, x + 1);
    this.itemFlags.push(t.itemFlags[x]!);
    this.itemDir.push(d);
    return n;
  }

  finish(): ScanTree {
    let n = 0;
    for (const s of this.stamps) n += s.length;
    const dirStamp = new BigUint64Array(n);
    let at = 0;
    for (const s of this.stamps) {
      dirStamp.set(s, at);
      at += s.length;
    }
    return {
      dirPath: this.dirPath.finish(),
      dirHost: this.dirHost.finish(),
      dirStamp,
      dirParent: this.dirParent.finish(),
      dirFirst: this.dirFirst.finish(),
      dirEnd: this.dirEnd.finish(),
      dirSpan: this.dirSpan.finish(),
      dirDepth: this.dirDepth.finish(),
      dirExternal: this.dirExternal.finish(),
      itemName: this.itemName.finish(),
      itemHost: this.itemHost.finish(),
      itemFlags: this.itemFlags.finish(),
      itemDir: this.itemDir.finish(),
    };
  }
}

const moduleTest = (extensions: readonly string[]) => (name: string) => extensions.some((ext) => name.endsWith(ext));

/** The listings of a scan by scanModuleFiles, laid out in its walk order. */
export function fromListings(listings: ScanListings, ctx: TreeContext): ScanTree {
  const b = new TreeBuilder(moduleTest(ctx.extensions));
  const walk = (path: string, host: string, depth: number, external: boolean, parent: number) => {
    const listing = listings.get(path);
    if (listing === undefined) return;
    const d = b.openDir(path, host, parseStamp(listing.stamp), parent, depth, external);
    for (const e of listing.entries) {
      const x = b.item(d, e, host);
      if (e.kind === 'dir') walk(child(path, e.name), e.host, depth + 1, external, x);
    }
    b.closeDir(d);
  };
  for (const r of roots(ctx)) walk(r.path, r.host, 0, r.external, -1);
  return b.finish();
}

/** The tree's listings as scanModuleFiles takes them (`previous`). */
export function toListings(t: ScanTree): ScanListings {
  const out: ScanListings = new Map();
  for (let d = 0; d < t.dirFirst.length; d++) {
    const entries: ScannedEntry[] = [];
    forDirectItems(t, d, (x) => entries.push(entryAt(t, x)));
    const s = t.dirStamp;
    const listing: DirListing = { entries, stamp: `${s[3 * d]}:${s[3 * d + 1]}:${s[3 * d + 2]}` };
    out.set(t.dirPath.get(d), listing);
  }
  return out;
}

function entryAt(t: ScanTree, x: number): ScannedEntry {
  const f = t.itemFlags[x]!;
  const name = t.itemName.get(x);
  return { name, kind: f & ITEM_SKIPPED ? 'skipped' : f & ITEM_DIR ? 'dir' : 'file', isLink: (f & ITEM_LINK) !== 0, host: itemHost(t, x) };
}

/** The items of d itself, in order (its subdirectories' blocks skipped). */
function forDirectItems(t: ScanTree, d: number, f: (x: number) => void): void {
  const end = t.dirEnd[d]!;
  let x = t.dirFirst[d]!;
  let sub = d + 1;
  while (x < end) {
    f(x);
    // A subdirectory's block, if it was listed, follows its entry.
    if (t.itemFlags[x]! & ITEM_DIR && sub < t.dirFirst.length && t.dirParent[sub] === x) {
      x = t.dirEnd[sub]!;
      sub += t.dirSpan[sub]!;
    } else x++;
  }
}

export function itemHost(t: ScanTree, x: number): string {
  const h = t.itemHost.get(x);
  return h !== '' ? h : child(t.dirHost.get(t.itemDir[x]!), t.itemName.get(x));
}

export function isModuleItem(t: ScanTree, x: number): boolean {
  return (t.itemFlags[x]! & ITEM_MODULE) !== 0;
}

/** The module file an item is. */
export function moduleFileAt(t: ScanTree, x: number, moduleDir: string): ModuleFile {
  const d = t.itemDir[x]!;
  const name = t.itemName.get(x);
  const dirPath = t.dirPath.get(d);
  const path = child(dirPath, name);
  const external = t.dirExternal[d] === 1;
  const rel = dirPath === moduleDir ? '' : dirPath.slice(moduleDir.length + 1);
  return {
    name: moduleNameFromPath(name),
    path,
    relPath: external ? undefined : rel === '' ? name : `${rel}/${name}`,
    host: itemHost(t, x),
    isLink: (t.itemFlags[x]! & ITEM_LINK) !== 0,
    external,
  };
}

/** depmod's messages about the scan, in the order it prints them. */
export function scanMessages(t: ScanTree, ctx: TreeContext): string[] {
  const out: string[] = [];
  const byPath = new Map<string, number>();
  for (let d = 0; d < t.dirFirst.length; d++) if (t.dirParent[d] === -1) byPath.set(t.dirPath.get(d), d);
  for (const r of roots(ctx)) {
    const d = byPath.get(r.path);
    if (d === undefined) {
      if (r.external) out.push(`could not open directory ${r.path}: No such file or directory`);
      continue;
    }
    for (let x = t.dirFirst[d]!; x < t.dirEnd[d]!; x++) if (t.itemFlags[x]! & ITEM_SKIPPED) out.push(t.itemHost.get(x));
  }
  return out;
}

export interface Refreshed {
  readonly tree: ScanTree;
  /** The new index of each old item, -1 for items of directories listed again or gone. */
  readonly itemMap: Int32Array;
  /** New items of directories listed again. */
  readonly fresh: readonly number[];
  /** System paths of the directories listed again. */
  readonly relisted: ReadonlySet<string>;
}

/**
 * The tree now: every directory's identity checked, the changed ones (and those in
 * `reread`) listed again, with new subdirectories; unchanged blocks copied as they were.
 */
export async function refreshTree(old: ScanTree, ctx: TreeContext, reread: ReadonlySet<string>, summarised: (x: number) => FileIdentity | undefined): Promise<Refreshed> {
  const nd = old.dirFirst.length;
  const changed = await staleLinkDirs(old, ctx, summarised);
  let any = changed.includes(1);
  for (let d = 0; d < nd; d++) {
    if (changed[d]) continue;
    let same = !reread.has(old.dirPath.get(d));
    if (same) {
      try {
        const st = await directoryStamp(ctx.fs, old.dirHost.get(d));
        same = st[0] === old.dirStamp[3 * d] && st[1] === old.dirStamp[3 * d + 1] && st[2] === old.dirStamp[3 * d + 2];
      } catch {
        same = false;
      }
    }
    if (!same) {
      changed[d] = 1;
      any = true;
    }
  }
  const rs = roots(ctx);
  const oldRoots = new Map<string, number>();
  for (let d = 0; d < nd; d++) if (old.dirParent[d] === -1) oldRoots.set(old.dirPath.get(d), d);
  // A root that could not be listed is tried again each time, as scanModuleFiles does.
  const missing = rs.some((r) => !oldRoots.has(r.path));
  const relisted = new Set<string>();
  if (!any && !missing) return { tree: old, itemMap: identityMap(old.itemFlags.length), fresh: [], relisted };

  const dirty = Uint8Array.from(changed);
  for (let d = 0; d < nd; d++) {
    if (!changed[d]) continue;
    for (let p = old.dirParent[d]!; p >= 0; p = old.dirParent[old.itemDir[p]!]!) {
      const up = old.itemDir[p]!;
      if (dirty[up]) break;
      dirty[up] = 1;
    }
  }
  let oldByPath: Map<string, number> | undefined;
  const findOld = (path: string) => {
    if (oldByPath === undefined) {
      oldByPath = new Map();
      for (let d = 0; d < nd; d++) oldByPath.set(old.dirPath.get(d), d);
    }
    return oldByPath.get(path);
  };
  const b = new TreeBuilder(moduleTest(ctx.extensions));
  const itemMap = new Int32Array(old.itemFlags.length).fill(-1);
  const fresh: number[] = [];
  const exclude = new Set(ctx.config.excludes);

  const budget = new ScanBudget(ctx.moduleDir);
  const list = async (path: string, host: string, depth: number, external: boolean, parent: number, above: readonly string[]): Promise<boolean> => {
    if (depth > MAX_DEPTH) return true;
    const here = [...above, host];
    const listing = await listDirectory(ctx.fs, path, host, depth, { linkRoot: linkRootOf(ctx, external), exclude, above: here, budget });
    if (listing === undefined) return false;
    relisted.add(path);
    const d = b.openDir(path, host, listing.stamp, parent, depth, external);
    for (const e of listing.entries) {
      const x = b.item(d, e, host);
      fresh.push(x);
      if (e.kind !== 'dir') continue;
      const sub = child(path, e.name);
      const o = findOld(sub);
      if (o !== undefined && !changed[o] && old.dirHost.get(o) === e.host && old.dirDepth[o] === depth + 1) await keep(o, x);
      else await list(sub, e.host, depth + 1, external, x, here);
    }
    b.closeDir(d);
    return true;
  };
  /** An old directory whose own listing still holds; some directory below may have changed. */
  const keep = async (o: number, parent: number): Promise<void> => {
    if (!dirty[o]) {
      const shift = b.copyBlock(old, o, parent);
      for (let x = old.dirFirst[o]!; x < old.dirEnd[o]!; x++) itemMap[x] = x + shift;
      return;
    }
    const d = b.openDir(old.dirPath.get(o), old.dirHost.get(o), [old.dirStamp[3 * o]!, old.dirStamp[3 * o + 1]!, old.dirStamp[3 * o + 2]!], parent, old.dirDepth[o]!, old.dirExternal[o] === 1);
    const end = old.dirEnd[o]!;
    let x = old.dirFirst[o]!;
    let sub = o + 1;
    while (x < end) {
      const nx = b.copyItem(old, x, d);
      itemMap[x] = nx;
      if (old.itemFlags[x]! & ITEM_DIR && sub < nd && old.dirParent[sub] === x) {
        const c = sub;
        if (changed[c]) await list(old.dirPath.get(c), old.dirHost.get(c), old.dirDepth[c]!, old.dirExternal[c] === 1, nx, hostsAbove(old, c));
        else await keep(c, nx);
        x = old.dirEnd[c]!;
        sub = c + old.dirSpan[c]!;
      } else x++;
    }
    b.closeDir(d);
  };

  for (const r of rs) {
    const o = oldRoots.get(r.path);
    if (o !== undefined && !changed[o] && old.dirHost.get(o) === r.host) await keep(o, -1);
    else await list(r.path, r.host, 0, r.external, -1, []);
  }
  return { tree: b.finish(), itemMap, fresh, relisted };
}

function identityMap(n: number): Int32Array {
  const m = new Int32Array(n);
  for (let i = 0; i < n; i++) m[i] = i;
  return m;
}

function parseStamp(s: string): bigint[] {
  return s.split(':').map((v) => BigInt(v));
}

/**
 * Per directory of the tree, 1 where one of its links (dangling ones included) no longer
 * leads where it did, or leads to a module file whose identity is not `summarised(item)`'s
 * (undefined: none to compare). A link that cannot be followed at all counts as changed.
 */
export async function staleLinkDirs(t: ScanTree, ctx: TreeContext, summarised: (x: number) => FileIdentity | undefined): Promise<Uint8Array> {
  const stale = new Uint8Array(t.dirFirst.length);
  for (let x = 0; x < t.itemFlags.length; x++) {
    const flags = t.itemFlags[x]!;
    const d = t.itemDir[x]!;
    if (!(flags & ITEM_LINK) || stale[d]) continue;
    const was = entryAt(t, x);
    try {
      const above = [...hostsAbove(t, d), t.dirHost.get(d)];
      const now = await followEntry(ctx.fs, t.dirPath.get(d), t.dirHost.get(d), t.dirDepth[d]!, { linkRoot: linkRootOf(ctx, t.dirExternal[d] === 1), above }, was.name, true);
      const id = flags & ITEM_MODULE ? summarised(x) : undefined;
      const nowId = now.stat && identityOfStat(now.stat);
      if (now.entry.kind !== was.kind || now.entry.host !== was.host || (id !== undefined && (nowId === undefined || !sameIdentity(id, nowId)))) stale[d] = 1;
    } catch {
      stale[d] = 1;
    }
  }
  return stale;
}

const S = {
  dirPath: 1, // and 2
  dirHost: 3, // and 4
  dirStamp: 5,
  dirParent: 6,
  dirFirst: 7,
  dirEnd: 8,
  dirSpan: 9,
  dirDepth: 10,
  dirExternal: 11,
  itemName: 12, // and 13
  itemHost: 14, // and 15
  itemFlags: 16,
  itemDir: 17,
} as const;

/** Section numbers from `base` on. */
export function writeTree(w: SectionWriter, t: ScanTree, base: number): void {
  w.strings(base + S.dirPath, t.dirPath)
    .strings(base + S.dirHost, t.dirHost)
    .add(base + S.dirStamp, t.dirStamp)
    .add(base + S.dirParent, t.dirParent)
    .add(base + S.dirFirst, t.dirFirst)
    .add(base + S.dirEnd, t.dirEnd)
    .add(base + S.dirSpan, t.dirSpan)
    .add(base + S.dirDepth, t.dirDepth)
    .add(base + S.dirExternal, t.dirExternal)
    .strings(base + S.itemName, t.itemName)
    .strings(base + S.itemHost, t.itemHost)
    .add(base + S.itemFlags, t.itemFlags)
    .add(base + S.itemDir, t.itemDir);
}

export function readTree(r: SectionReader, base: number): ScanTree {
  return {
    dirPath: r.strings(base + S.dirPath),
    dirHost: r.strings(base + S.dirHost),
    dirStamp: r.u64(base + S.dirStamp),
    dirParent: r.i32(base + S.dirParent),
    dirFirst: r.u32(base + S.dirFirst),
    dirEnd: r.u32(base + S.dirEnd),
    dirSpan: r.u32(base + S.dirSpan),
    dirDepth: r.u8(base + S.dirDepth),
    dirExternal: r.u8(base + S.dirExternal),
    itemName: r.strings(base + S.itemName),
    itemHost: r.strings(base + S.itemHost),
    itemFlags: r.u8(base + S.itemFlags),
    itemDir: r.u32(base + S.itemDir),
  };
}
