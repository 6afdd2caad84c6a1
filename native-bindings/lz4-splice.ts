import { corrupt, u32le } from './common.js';
import { lz4BlockLength, Lz4BlockError } from './lz4-block.js';
import { LEGACY_MAGIC, walkLegacy } from './lz4-legacy.js';
import { readSequences, reencodeGaps } from './lz4-reencode.js';
import { planSplice, type Splice } from './splice-plan.js';

/*
 * Recompressing an edited legacy lz4 stream (the only lz4 the kernel reads) without
 * recompressing what did not change. Its chunks are independent LZ4 blocks, 8 MiB of output
 * each as lz4 -l writes them; the kernel's unlz4 and lz4 -d decode each into a fresh buffer,
 * so a chunk may also hold less, anywhere in the stream. A chunk whose decoded bytes still
 * appear unchanged in the new content is copied with its size word (see splice-plan.ts);
 * the stretches between are cut into chunks as lz4 -l would, and encoded from the old
 * chunks' own sequences where those still hold (see lz4-reencode.ts).
 */

/**
 * `old` is exactly one legacy stream (an initramfs segment as the kernel delimits it), which
 * decodes to `oldData` (which the caller vouches for: only its length is checked here);
 * `newData` is the content wanted. Undefined when `old` is not one stream of well-formed
 * chunks whose output is as long as `oldData`.
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
  // Read once (`shifts` may be a one-shot iterable); a move is a whole number of bytes.
  const moves = [...new Set(shifts)].filter((d) => Number.isInteger(d));
  // With no chunk kept whole, the old sequences may still hold for most of the content.
  const pieces = planSplice(oldChunks, oldData, newData, moves) ?? [{ gap: [0, newData.length] as const }];

  // The gaps' content, encoded again mostly from the old sequences of the chunks not kept.
  const keptChunks = new Set(pieces.flatMap((p) => ('keep' in p ? [p.keep] : [])));
  const reusable = oldChunks.filter((c) => !keptChunks.has(c)).map((c) => ({ ...c.chunk, decodedStart: c.decodedStart }));
  const gaps = pieces.flatMap((p) => ('gap' in p ? [p.gap] : []));
  const re = await reencodeGaps(readSequences(old, reusable), oldData, newData, gaps, moves, level, where);

  // Kept chunks and the new ones, in the order of the pieces.
  const parts: Uint8Array[] = [u32le(LEGACY_MAGIC)];
  let kept = 0;
  let gap = 0;
  for (const p of pieces) {
    if ('keep' in p) {
      parts.push(old.subarray(p.keep.chunk.start - 4, p.keep.chunk.start + p.keep.chunk.size));
      kept++;
    } else {
      parts.push(...re.chunks[gap++]!);
    }
  }
  const encoded = re.chunks.reduce((n, g) => n + g.length, 0);
  const bytes = Buffer.concat(parts);
  if (walkLegacy(bytes, 0, where).end !== bytes.length) throw corrupt('lz4', 'the spliced stream does not add up (internal error)', where);
  return { bytes, kept, encoded, encodedBytes: re.compressedBytes };
};
