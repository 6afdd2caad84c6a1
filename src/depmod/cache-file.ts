import { createHash } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import type { ByteSource } from './sections.js';

/**
 * modules.kabi-cache, kabi's one file beside depmod's outputs (distro scripts remove
 * `modules.*` with a kernel, and kabi's own tooling knows this one name). A sequence of
 * frames, each a 16-byte head (kind, length, checksum, zero) and a payload padded to 8 bytes:
 *
 *   1 summaries   the module summaries a full run used (summary-store.ts); always first
 *   2 additions   summaries parsed by an incremental run, numbered on from the ones before
 *   3 state       what a run left for the next one to build on (run-state.ts)
 *
 * A full run writes the file anew (summaries, state) by atomic replacement. An incremental
 * run, after replacing the outputs, writes its additions and its state over the previous
 * state and cuts the file there, so that the file only grows by what was parsed. Frames
 * written in place carry a checksum: a torn or damaged one is not used (a missing state
 * makes the next run a full one, which writes the file anew).
 */

export const CACHE_FILE = 'modules.kabi-cache';

const FrameKind = { Summaries: 1, Additions: 2, State: 3 } as const;

const HEAD = 16;
/** Past this many bytes of additions the next run writes the file anew instead. */
const APPEND_LIMIT = 4 << 20;

export interface CacheFrames {
  /** Read as asked for (the file stays open until close()). */
  readonly summaries: ByteSource | undefined;
  readonly additions: readonly Uint8Array[];
  /** The last state written. */
  readonly state: Uint8Array | undefined;
  /** Where more frames go (after the additions, over the state), when they can (the file is sound and not too long). */
  readonly tail: number | undefined;
  close(): void;
}

const NONE: CacheFrames = { summaries: undefined, additions: [], state: undefined, tail: undefined, close: () => {} };

export async function readCacheFrames(fs: KabiFs, dirHost: string): Promise<CacheFrames> {
  const path = posix.join(dirHost, CACHE_FILE);
  let file: RandomAccess;
  try {
    file = fs === nodeFs ? openSyncFile(path) : await wholeFile(fs, path);
  } catch {
    return NONE;
  }
  let keep = false;
  try {
    if (file.size < HEAD) return NONE;
    const head = file.read(0, HEAD);
    if (head.readUInt32LE(0) !== FrameKind.Summaries) return NONE;
    const summariesEnd = HEAD + padded(head.readUInt32LE(4));
    if (summariesEnd > file.size) return NONE;
    // Replaced atomically, never appended to: no checksum to check.
    const summaryLength = head.readUInt32LE(4);
    const summaries: ByteSource = { size: summaryLength, read: (at, len) => file.read(HEAD + at, len) };
    // The appended frames' heads; of their payloads only the additions and the last state are read.
    const frames: { kind: number; at: number; len: number; check: number }[] = [];
    let p = summariesEnd;
    while (p + HEAD <= file.size) {
      const h = file.read(p, HEAD);
      const kind = h.readUInt32LE(0);
      const len = h.readUInt32LE(4);
      if ((kind !== FrameKind.Additions && kind !== FrameKind.State) || h.readUInt32LE(12) !== 0 || p + HEAD + padded(len) > file.size) break;
      frames.push({ kind, at: p + HEAD, len, check: h.readUInt32LE(8) });
      p += HEAD + padded(len);
    }
    let clean = p === file.size;
    const payload = (f: (typeof frames)[number]): Uint8Array | undefined => {
      const b = file.read(f.at, padded(f.len));
      if (checksum(b) === f.check) return b.subarray(0, f.len);
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
    keep = true;
    return { summaries, additions, state, tail: clean && tail - summariesEnd < APPEND_LIMIT ? tail : undefined, close: () => file.close() };
  } finally {
    if (!keep) file.close();
  }
}

interface RandomAccess {
  readonly size: number;
  read(at: number, len: number): Buffer;
  close(): void;
}

function openSyncFile(path: string): RandomAccess {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    return {
      size,
      read: (at, len) => {
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
  const bytes = await fs.readFile(path);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { size: b.length, read: (at, len) => b.subarray(at, at + len), close: () => {} };
}

/** A whole new cache file. */
export function cacheImage(summaries: Uint8Array, state: Uint8Array | undefined): Uint8Array {
  return Buffer.concat([frame(FrameKind.Summaries, summaries, false), ...(state ? [frame(FrameKind.State, state, true)] : [])]);
}

/** What an incremental run writes at the tail. */
export function tailFrames(additions: Uint8Array | undefined, state: Uint8Array): Uint8Array {
  return Buffer.concat([...(additions ? [frame(FrameKind.Additions, additions, true)] : []), frame(FrameKind.State, state, true)]);
}

/** Writes `data` at `at` and cuts the file after it. */
export async function writeTail(fs: KabiFs, dirHost: string, at: number, data: Uint8Array): Promise<void> {
  const path = posix.join(dirHost, CACHE_FILE);
  if (fs === nodeFs) {
    const fd = openSync(path, 'r+');
    try {
      writeSync(fd, data, 0, data.length, at);
      ftruncateSync(fd, at + data.length);
    } finally {
      closeSync(fd);
    }
    return;
  }
  const h = await fs.open(path, 'r+');
  try {
    await h.write(data, 0, data.length, at);
    await h.truncate(at + data.length);
  } finally {
    await h.close();
  }
}

function padded(n: number): number {
  return (n + 7) & ~7;
}

function frame(kind: number, payload: Uint8Array, check: boolean): Buffer {
  const len = payload.length;
  const out = Buffer.alloc(HEAD + padded(len));
  out.writeUInt32LE(kind, 0);
  out.writeUInt32LE(len, 4);
  out.set(payload, HEAD);
  if (check) out.writeUInt32LE(checksum(out.subarray(HEAD)), 8);
  return out;
}

/** 32 bits of the payload's SHA-1 (native, whatever the JIT has warmed up): tells a torn or zero-filled write from a complete one. */
function checksum(b: Uint8Array): number {
  return createHash('sha1').update(b).digest().readUInt32LE(0);
}
