import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isDirectory, isNotFound, nodeFs, READ_BUDGETS } from '../fs.js';
import { holdsKernel } from '../kernel/discover.js';
import { confinedPath } from '../kernel/paths.js';
import { replaceFilesAtomically } from './atomic-write.js';
import { CacheDamaged } from './cache-damage.js';
import { crc32 } from './checksum.js';
import type { ByteSource } from './sections.js';

/**
 * kabi's depmod cache: one file per kernel, /var/cache/kabi/depmod/<release> in the root.
 * Not in the module directory: no package manager's removal path knows a file of kabi's
 * there (RPM's %ghost lists, kernel-install's 50-depmod.install, Debian's postrm remove
 * depmod's own outputs), so it kept a removed kernel's directory alive, and tools counted it
 * as an installed kernel. Here it is pruned by the next run once its kernel is gone
 * (pruneCaches), and the root's /var/cache is the place a system expects to be able to
 * empty. A root with no /var/cache (a package's staging tree) gets no cache at all, so that
 * `kabi depmod -b BUILDROOT` adds nothing to what gets packaged.
 *
 * The file is a sequence of frames, each a 16-byte head (kind, length, checksum, zero) and a
 * payload padded to 8 bytes:
 *
 *   4 summaries   the module summaries a full run used (summary-store.ts); always first
 *   2 additions   summaries parsed by an incremental run, numbered on from the ones before
 *   3 state       what a run left for the next one to build on (run-state.ts)
 *
 * A full run writes the file anew (summaries, state) by atomic replacement. An incremental
 * run, after replacing the outputs, writes its additions and its state over the previous
 * state and cuts the file there, so that the file only grows by what was parsed. Every frame
 * carries a CRC-32: a torn or damaged one is not used. The summaries are read in pieces (an
 * incremental run looks at a few of them), so theirs is one CRC per 16 KiB chunk, checked
 * when a read first touches the chunk: damage found then is thrown (CacheDamaged), which
 * makes runDepmod start over without the cache. (Kind 1 was the summaries without chunk
 * CRCs: such a file is not used.)
 */

/** System path of the directory holding every kernel's cache file. */
export const CACHE_DIR = '/var/cache/kabi/depmod';
/** Where kabi up to 0.1 kept the cache: beside the outputs. Removed by every run that writes them. */
export const LEGACY_CACHE_FILE = 'modules.kabi-cache';

/** A kernel's cache file: its directory (host path, resolved inside the root) and name. */
export interface CacheLocation {
  readonly dir: string;
  readonly name: string;
  readonly path: string;
}

/**
 * Where the cache of `release` is kept under `root`, or undefined when it has none: no
 * /var/cache in the root, a release that cannot be a file name, or a path that cannot be
 * resolved.
 */
export async function cacheLocation(fs: KabiFs, root: string, release: string): Promise<CacheLocation | undefined> {
  if (release === '' || release === '.' || release === '..' || release.includes('/') || release.includes('\0') || release.startsWith('.') || Buffer.byteLength(release) > 200) return undefined;
  try {
    if (!(await isDirectory(fs, await confinedPath(fs, root, posix.dirname(posix.dirname(CACHE_DIR)))))) return undefined;
    const dir = await confinedPath(fs, root, CACHE_DIR);
    return { dir, name: release, path: posix.join(dir, release) };
  } catch {
    // A loop of links, a name too long: no cache, which no run needs to succeed.
    return undefined;
  }
}

const FrameKind = { Summaries: 4, Additions: 2, State: 3 } as const;

const HEAD = 16;
const CHUNK = 16384;
/** Past this many bytes of additions the next run writes the file anew instead. */
const APPEND_LIMIT = 4 << 20;

/** Which file a cache was read from, so that writing at its tail never lands in another. */
export interface CacheFileId {
  readonly dev: bigint;
  readonly ino: bigint;
}

export interface CacheFrames {
  /** Read as asked for (the file stays open until close()); reads of damaged chunks throw. */
  readonly summaries: ByteSource | undefined;
  readonly additions: readonly Uint8Array[];
  /** The last state written. */
  readonly state: Uint8Array | undefined;
  /** Where more frames go (after the additions, over the state), when they can (the file is sound and not too long). */
  readonly tail: number | undefined;
  readonly file: CacheFileId | undefined;
  close(): void;
}

export const NO_CACHE: CacheFrames = { summaries: undefined, additions: [], state: undefined, tail: undefined, file: undefined, close: () => {} };

/** The cache's frames; NO_CACHE for anything missing, foreign, damaged or not a plain file. Never throws. */
export async function readCacheFrames(fs: KabiFs, at: CacheLocation): Promise<CacheFrames> {
  const path = at.path;
  let file: RandomAccess;
  try {
    file = fs === nodeFs ? openSyncFile(path) : await wholeFile(fs, path);
  } catch {
    return NO_CACHE;
  }
  try {
    const frames = parseFrames(file, path);
    if (frames !== undefined) return frames;
  } catch {
    /* anything unexpected in the file: as if there were none */
  }
  file.close();
  return NO_CACHE;
}

function parseFrames(file: RandomAccess, path: string): CacheFrames | undefined {
  if (file.size < HEAD) return undefined;
  const head = file.read(0, HEAD);
  const summaryLength = head.readUInt32LE(4);
  const summariesEnd = HEAD + padded(summaryLength);
  if (head.readUInt32LE(0) !== FrameKind.Summaries || head.readUInt32LE(12) !== 0 || summariesEnd > file.size) return undefined;
  const summaries = chunkChecked(file, HEAD, summaryLength, head.readUInt32LE(8), path);
  if (summaries === undefined) return undefined;
  // The appended frames' heads; of their payloads only the additions and the last state are read.
  const frames: { kind: number; at: number; len: number; check: number }[] = [];
  let p = summariesEnd;
  while (p + HEAD <= file.size) {
    const h = file.read(p, HEAD);
    const kind = h.readUInt32LE(0);
    const len = h.readUInt32LE(4);
    const end = p + HEAD + padded(len);
    if ((kind !== FrameKind.Additions && kind !== FrameKind.State) || h.readUInt32LE(12) !== 0 || end > file.size) break;
    frames.push({ kind, at: p + HEAD, len, check: h.readUInt32LE(8) });
    p = end;
  }
  let clean = p === file.size;
  const payload = (f: (typeof frames)[number]): Uint8Array | undefined => {
    const b = file.read(f.at, padded(f.len));
    if (crc32(b) === f.check) return b.subarray(0, f.len);
    clean = false;
    return undefined;
  };
  const additions: Uint8Array[] = [];
  let tail = summariesEnd;
  for (const f of frames) {
    if (f.kind !== FrameKind.Additions) continue;
    const b = payload(f);
    if (b === undefined) break;
    additions.push(b);
    tail = f.at + padded(f.len);
  }
  let last: (typeof frames)[number] | undefined;
  for (const f of frames) if (f.kind === FrameKind.State) last = f;
  const state = last && payload(last);
  return { summaries, additions, state, tail: clean && tail - summariesEnd < APPEND_LIMIT ? tail : undefined, file: file.id, close: () => file.close() };
}

/**
 * The summaries frame's data, each chunk's CRC checked when first read. Its payload: u32
 * chunk count, the chunks' CRCs, padding to 8 bytes, the data; the head's checksum is the
 * CRC of the count and the CRCs.
 */
function chunkChecked(file: RandomAccess, at: number, len: number, check: number, path: string): ByteSource | undefined {
  if (len < 4) return undefined;
  const count = file.read(at, 4).readUInt32LE(0);
  const tableLen = padded(4 + 4 * count);
  const size = len - tableLen;
  if (tableLen > len || count !== Math.ceil(size / CHUNK)) return undefined;
  const table = file.read(at, 4 + 4 * count);
  if (crc32(table) !== check) return undefined;
  const crcs = new Uint32Array(count);
  for (let c = 0; c < count; c++) crcs[c] = table.readUInt32LE(4 + 4 * c);
  const start = at + tableLen;
  const checked = new Uint8Array(count);
  const damaged = (detail: string) => new CacheDamaged(path, detail);
  return {
    size,
    read: (from, n) => {
      if (!(Number.isInteger(from) && Number.isInteger(n) && from >= 0 && n >= 0 && from + n <= size)) throw damaged(`read past the cached summaries (${from}+${n} of ${size})`);
      if (n === 0) return file.read(start, 0);
      const first = Math.floor(from / CHUNK);
      const last = Math.floor((from + n - 1) / CHUNK);
      let known = true;
      for (let c = first; c <= last && known; c++) known = checked[c] === 1;
      if (known) return file.read(start + from, n);
      // The chunks whole, once: checked, then the part asked for cut out (at the same
      // alignment as `from`, which typed views of it need).
      const a = first * CHUNK;
      const b = file.read(start + a, Math.min(size, (last + 1) * CHUNK) - a);
      for (let c = first; c <= last; c++) {
        if (checked[c]) continue;
        if (crc32(b.subarray((c - first) * CHUNK, Math.min(b.length, (c - first + 1) * CHUNK))) !== crcs[c]) throw damaged(`cached summaries damaged in chunk ${c}`);
        checked[c] = 1;
      }
      return b.subarray(from - a, from - a + n);
    },
  };
}

interface RandomAccess {
  readonly size: number;
  readonly id: CacheFileId;
  read(at: number, len: number): Buffer;
  close(): void;
}

// A link in its place is not followed: the file is kabi's, written only by kabi. Nor is a
// FIFO waited on: it is opened without blocking, then refused by its type.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const WRITE_FLAGS = constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** A larger file is not used (and is written anew): see READ_BUDGETS.cache. */
const MAX_CACHE = READ_BUDGETS.cache.maxBytes;

function openSyncFile(path: string): RandomAccess {
  const fd = openSync(path, READ_FLAGS);
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile() || st.size > BigInt(MAX_CACHE)) throw new Error('not a file, or too large');
    const size = Number(st.size);
    return {
      size,
      id: { dev: st.dev, ino: st.ino },
      read: (at, len) => {
        if (at < 0 || len < 0 || at + len > size) throw new Error('read past the end');
        // Not from the shared pool: typed views of it need its start aligned.
        const b = Buffer.allocUnsafeSlow(len);
        if (len > 0 && readSync(fd, b, 0, len, at) !== len) throw new Error('short read');
        return b;
      },
      close: () => closeSync(fd),
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

async function wholeFile(fs: KabiFs, path: string): Promise<RandomAccess> {
  const h = await fs.open(path, READ_FLAGS);
  let bytes: Uint8Array;
  let id: CacheFileId;
  try {
    const st = await h.stat({ bigint: true });
    if (!st.isFile() || st.size > BigInt(MAX_CACHE)) throw new Error('not a file, or too large');
    id = { dev: st.dev, ino: st.ino };
    bytes = await h.readFile();
  } finally {
    await h.close();
  }
  // Typed views need their element alignment: a misplaced buffer is copied once.
  const b = bytes.byteOffset % 8 === 0 ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.from(Uint8Array.from(bytes).buffer);
  return {
    size: b.length,
    id,
    read: (at, len) => {
      if (at < 0 || len < 0 || at + len > b.length) throw new Error('read past the end');
      return b.subarray(at, at + len);
    },
    close: () => {},
  };
}

/** A whole new cache file. */
export function cacheImage(summaries: Uint8Array, state: Uint8Array | undefined): Uint8Array {
  return Buffer.concat([summariesFrame(summaries), ...(state ? [frame(FrameKind.State, state)] : [])]);
}

/** What an incremental run writes at the tail. */
export function tailFrames(additions: Uint8Array | undefined, state: Uint8Array): Uint8Array {
  return Buffer.concat([...(additions ? [frame(FrameKind.Additions, additions)] : []), frame(FrameKind.State, state)]);
}

/**
 * Writes `data` at `at` and cuts the file after it, only into the very file the cache was
 * read from (not a link, not one another run has put in its place since): otherwise throws,
 * and the caller writes the file anew.
 */
export async function writeTail(fs: KabiFs, loc: CacheLocation, at: number, data: Uint8Array, expected: CacheFileId): Promise<void> {
  const path = loc.path;
  const stale = () => new KabiError('IO', 'the cache file is not the one read', { file: path });
  if (fs === nodeFs) {
    const fd = openSync(path, WRITE_FLAGS);
    try {
      const st = fstatSync(fd, { bigint: true });
      if (!st.isFile() || st.dev !== expected.dev || st.ino !== expected.ino || st.size < BigInt(at)) throw stale();
      writeSync(fd, data, 0, data.length, at);
      ftruncateSync(fd, at + data.length);
    } finally {
      closeSync(fd);
    }
    return;
  }
  const h = await fs.open(path, WRITE_FLAGS);
  try {
    const st = await h.stat({ bigint: true });
    if (!st.isFile() || st.dev !== expected.dev || st.ino !== expected.ino || st.size < BigInt(at)) throw stale();
    await h.write(data, 0, data.length, at);
    await h.truncate(at + data.length);
  } finally {
    await h.close();
  }
}

function padded(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function frame(kind: number, payload: Uint8Array): Buffer {
  const len = payload.length;
  const out = Buffer.alloc(HEAD + padded(len));
  out.writeUInt32LE(kind, 0);
  out.writeUInt32LE(len, 4);
  out.set(payload, HEAD);
  out.writeUInt32LE(crc32(out.subarray(HEAD)), 8);
  return out;
}

function summariesFrame(data: Uint8Array): Buffer {
  const count = Math.ceil(data.length / CHUNK);
  const tableLen = padded(4 + 4 * count);
  const len = tableLen + data.length;
  const out = Buffer.alloc(HEAD + padded(len));
  out.writeUInt32LE(FrameKind.Summaries, 0);
  out.writeUInt32LE(len, 4);
  out.writeUInt32LE(count, HEAD);
  for (let c = 0; c < count; c++) out.writeUInt32LE(crc32(data.subarray(c * CHUNK, Math.min(data.length, (c + 1) * CHUNK))), HEAD + 4 + 4 * c);
  out.writeUInt32LE(crc32(out.subarray(HEAD, HEAD + 4 + 4 * count)), 8);
  out.set(data, HEAD + tableLen);
  return out;
}

/**
 * The cache goes after the outputs, its state recording their identities: at the tail of
 * the file read (when it is still that file), else written anew. If it cannot be written it
 * is removed, so that a stale state is never taken for the current one. Then the caches of
 * kernels that are gone are removed (pruneCaches).
 */
export async function saveCache(fs: KabiFs, root: string, loc: CacheLocation, whole: () => Promise<Uint8Array>, tail?: { at: number; file: CacheFileId; make: () => Promise<Uint8Array> }): Promise<void> {
  // Written only into kabi's own directories: one that is a link names someone else's files.
  if (!(await ownCacheDirs(fs, root, loc, true))) return;
  let done = false;
  if (tail !== undefined) {
    try {
      await writeTail(fs, loc, tail.at, await tail.make(), tail.file);
      done = true;
    } catch {
      /* another file in its place, or a link: written anew below */
    }
  }
  if (!done) {
    try {
      await replaceFilesAtomically(fs, loc.dir, [{ name: loc.name, data: await whole() }]);
    } catch {
      try {
        await fs.unlink(loc.path);
      } catch {
        /* nothing to remove */
      }
    }
  }
  await pruneCaches(fs, root, loc).catch(() => {});
}

/**
 * Whether kabi's cache directories (kabi/depmod under the system's /var/cache, which may
 * itself be a link: that is the system's choice) are real directories of its own, with `loc`
 * inside them; made one at a time where missing when `create`. A link in place of either
 * names someone else's files: nothing is written, pruned or removed through it.
 */
async function ownCacheDirs(fs: KabiFs, root: string, loc: CacheLocation, create: boolean): Promise<boolean> {
  const base = posix.dirname(posix.dirname(CACHE_DIR));
  let dir: string;
  try {
    dir = await confinedPath(fs, root, base);
  } catch {
    return false;
  }
  for (const part of CACHE_DIR.slice(base.length + 1).split('/')) {
    dir = posix.join(dir, part);
    if (create) {
      try {
        await fs.mkdir(dir, { mode: 0o755 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      }
    }
    try {
      if (!(await fs.lstat(dir)).isDirectory()) return false;
    } catch {
      return false;
    }
  }
  return dir === loc.dir;
}

/**
 * A kernel's removal path: its cache goes (the host's removal lists do not know it), and so
 * do the caches of kernels already gone.
 */
export async function forgetCache(fs: KabiFs, root: string, release: string): Promise<void> {
  const loc = await cacheLocation(fs, root, release);
  // Only kabi's own directories are touched: a link put in place of either names someone else's files.
  if (loc === undefined || !(await ownCacheDirs(fs, root, loc, false))) return;
  try {
    await fs.unlink(loc.path);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  await pruneOwnCaches(fs, root, loc);
  try {
    // depmod/ is kabi's too: gone with the last kernel's cache. Its parent stays: a kabi
    // package owns /var/cache/kabi (kabi.spec's %dir), and the system is then as installed.
    await fs.rmdir(loc.dir);
  } catch {
    /* other kernels' caches are still there */
  }
}

/** Remove the cache files of kernels no longer installed (holdsKernel false in both module directories). */
export async function pruneCaches(fs: KabiFs, root: string, keep: CacheLocation): Promise<string[]> {
  return (await ownCacheDirs(fs, root, keep, false)) ? pruneOwnCaches(fs, root, keep) : [];
}

async function pruneOwnCaches(fs: KabiFs, root: string, keep: CacheLocation): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(keep.dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    // Temporary files are replaceFilesAtomically's to recover or remove.
    if (name === keep.name || name.startsWith('.') || name.includes('.kabi-tmp-')) continue;
    if ((await holdsKernel(fs, root, name, `/lib/modules/${name}`)) || (await holdsKernel(fs, root, name, `/usr/lib/modules/${name}`))) continue;
    try {
      await fs.unlink(posix.join(keep.dir, name));
      removed.push(name);
    } catch {
      /* another run removed it, or it is not a file: left alone */
    }
  }
  return removed;
}

/** The cache file older kabi kept in the module directory, removed when it is kabi's (a plain file or a link, never a directory). */
export async function removeLegacyCache(fs: KabiFs, moduleDirHost: string): Promise<void> {
  try {
    await fs.unlink(posix.join(moduleDirHost, LEGACY_CACHE_FILE));
  } catch {
    /* none there, or not removable: nothing of ours to do */
  }
}
