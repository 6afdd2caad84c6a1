import { availableParallelism } from 'node:os';
import { mapPool } from '../src/util/pool.js';
import { corrupt, u32le } from './common.js';
import { lz4BlockLength, Lz4BlockError } from './lz4-block.js';
import { LEGACY_MAGIC, lz4Compress, lz4DecompressAll, walkLegacy } from './lz4-legacy.js';
import { planSplice, type Splice } from './splice-plan.js';

/*
 * Recompressing an edited legacy lz4 stream (the only lz4 the kernel reads) without
 * recompressing what did not change. Its chunks are independent LZ4 blocks, 8 MiB of output
 * each as lz4 -l writes them; the kernel's unlz4 and lz4 -d decode each into a fresh buffer,
 * so a chunk may also hold less, anywhere in the stream. A chunk whose decoded bytes still
 * appear unchanged in the new content is copied with its size word (see splice-plan.ts);
 * the stretches between are compressed as lz4 -l would, in pieces encoded side by side, and
 * decoded back before use.
 */

/** One chunk's output, as lz4 -l cuts it. */
const CHUNK = 8 << 20;
const MIN_PIECE = 1 << 20;

/**
 * `old` is exactly one legacy stream (an initramfs segment as the kernel delimits it), which
 * decodes to `oldData`; `newData` is the content wanted. Undefined when no chunk can be kept.
 */
export const spliceLz4Legacy: Splice = async (old, oldData, newData, shifts, level, where) => {
  const walk = walkLegacy(old, 0, where);
  if (walk.end !== old.length) return undefined;
  let from = 0;
  const oldChunks = [];
  for (const c of walk.chunks) {
    let length: number;
    try {
      length = lz4BlockLength(old, c.start, c.start + c.size);
    } catch (e) {
      if (e instanceof Lz4BlockError) return undefined;
      throw e;
    }
    oldChunks.push({ chunk: c, decodedStart: from, length });
    from += length;
  }
  if (from !== oldData.length) return undefined;
  const pieces = planSplice(oldChunks, oldData, newData, shifts);
  if (pieces === undefined) return undefined;

  // Each gap cut into as many pieces as there are cores (each lz4 -l runs on one), none under
  // 1 MiB nor over one 8 MiB chunk: one round of processes, each started from this big
  // process at a cost (about 10 ms apiece), and few short chunks (each compresses alone).
  const cores = Math.max(1, Math.min(availableParallelism(), 4));
  const cut = ([from, to]: readonly [number, number]) => Math.min(CHUNK, Math.max(MIN_PIECE, Math.ceil((to - from) / cores)));
  const jobs: Array<[number, number]> = [];
  for (const p of pieces) {
    if (!('gap' in p)) continue;
    const piece = cut(p.gap);
    for (let a = p.gap[0]; a < p.gap[1]; a += piece) jobs.push([a, Math.min(p.gap[1], a + piece)]);
  }
  // A stream of many small gaps must not start hundreds of processes at once.
  const encoded = await mapPool(jobs, cores, async ([a, b]) => {
    const data = newData.subarray(a, b);
    const bytes = await lz4Compress(data, level, where);
    const back = lz4DecompressAll(bytes, Math.max(data.length, 1), where);
    if (Buffer.compare(back, data) !== 0) throw corrupt('lz4', 'compressed piece does not decode to its input', where);
    return walkLegacy(bytes, 0, where).chunks.map((c) => bytes.subarray(c.start - 4, c.start + c.size));
  });

  // Kept chunks and the encoded pieces' chunks, in the order of the pieces (jobs were made in that order).
  const parts: Uint8Array[] = [u32le(LEGACY_MAGIC)];
  let kept = 0;
  let count = 0;
  let encodedBytes = 0;
  let job = 0;
  for (const p of pieces) {
    if ('keep' in p) {
      parts.push(old.subarray(p.keep.chunk.start - 4, p.keep.chunk.start + p.keep.chunk.size));
      kept++;
      continue;
    }
    for (let a = p.gap[0], piece = cut(p.gap); a < p.gap[1]; a += piece) {
      const chunks = encoded[job++]!;
      parts.push(...chunks);
      count += chunks.length;
    }
    encodedBytes += p.gap[1] - p.gap[0];
  }
  const bytes = Buffer.concat(parts);
  if (walkLegacy(bytes, 0, where).end !== bytes.length) throw corrupt('lz4', 'the spliced stream does not add up (internal error)', where);
  return { bytes, kept, encoded: count, encodedBytes };
};
