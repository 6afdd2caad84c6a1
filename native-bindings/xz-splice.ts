import { runTool } from './cli.js';
import { corrupt, writeU32LE, type Where } from './common.js';
import { crc32 } from './crc32.js';
import { xzDecompressAll } from './xz.js';
import { mapPool } from '../src/util/pool.js';
import { planSplice, type Splice } from './splice-plan.js';
import { walkXzStream } from './xz-stream.js';

/*
 * Recompressing an edited xz stream without recompressing what did not change. The blocks of
 * one xz stream are independent (each starts with a fresh LZMA2 dictionary and state), and
 * multi-threaded xz (dracut and initramfs-tools both pass -T0) cuts its output into blocks of
 * 3 MiB. A block whose decoded bytes still appear, unchanged, in the new content is copied
 * as it is (see splice-plan.ts); only the stretches between such blocks go through the
 * encoder. The result is one stream, so the kernel, xz -d, lsinitrd and unmkinitramfs read it
 * as before.
 */

/** xz(1)'s --check names, by stream check type. SHA-256 is left out: the kernel cannot verify it, so such a stream is rewritten whole. */
const CHECK_FLAG: Record<number, string> = { 0: 'none', 1: 'crc32', 4: 'crc64' };

/** New blocks are cut small, so that a later edit re-encodes less; 1 MiB blocks cost about 1.4 % of size against 3 MiB ones on a dracut image. */
export const SPLICE_BLOCK_SIZE = 1 << 20;

/**
 * The preset for what is encoded between kept blocks, unless the caller asks for one: on the
 * 3.1 MiB that replacing one module of a Debian 6.1 dracut image touches, 0.15 s against 0.62 s
 * at the generators' preset 6, for 7.7 % more on those blocks (1.3 % on the image). The
 * blocks kept keep the generator's preset.
 */
export const SPLICE_PRESET = 3;

/**
 * `old` is exactly one xz stream, which decodes to `oldData`; `newData` is the content wanted.
 * `shifts` are candidate moves (new offset minus old offset) of unchanged content, from the
 * caller's knowledge of its edits; each block is tried at each shift and reused only where its
 * decoded bytes match exactly. Returns undefined when nothing can be reused (the caller then
 * compresses the whole content its usual way).
 */
export const spliceXzStream: Splice = async (old, oldData, newData, shifts, level, where) => {
  const stream = walkXzStream(old, 0, where);
  const check = CHECK_FLAG[stream.checkType];
  if (check === undefined || stream.end !== old.length || stream.uncompressedSize !== oldData.length) return undefined;
  let from = 0;
  const oldBlocks = stream.blockList.map((block) => {
    const b = { block, decodedStart: from, length: block.uncompressed };
    from += block.uncompressed;
    return b;
  });
  const pieces = planSplice(oldBlocks, oldData, newData, shifts);
  if (pieces === undefined) return undefined;
  // A few at a time: each xz -T0 already uses every core, and a stream of many small blocks
  // (a hostile image chooses its block size) must not start hundreds of encoders at once.
  const encoded = await mapPool(pieces, PARALLEL, async (p) => ('gap' in p ? encodeBlocks(newData.subarray(p.gap[0], p.gap[1]), check, level ?? SPLICE_PRESET, where) : undefined));

  const blocks: Array<{ bytes: Uint8Array; unpadded: number; uncompressed: number }> = [];
  let encodedBlocks = 0;
  let encodedBytes = 0;
  let kept = 0;
  pieces.forEach((p, i) => {
    if ('keep' in p) {
      const b = p.keep.block;
      blocks.push({ bytes: old.subarray(b.start, b.end), unpadded: b.unpadded, uncompressed: b.uncompressed });
      kept++;
      return;
    }
    const e = encoded[i]!;
    for (const b of e.walk.blockList) blocks.push({ bytes: e.bytes.subarray(b.start, b.end), unpadded: b.unpadded, uncompressed: b.uncompressed });
    encodedBlocks += e.walk.blocks;
    encodedBytes += p.gap[1] - p.gap[0];
  });

  const bytes = assemble(old.subarray(0, 12), blocks);
  // Every block is now known to decode to its part of newData (kept ones matched byte for
  // byte, new ones were decoded back); what was assembled must also walk as one stream.
  const back = walkXzStream(bytes, 0, where);
  if (back.end !== bytes.length || back.uncompressedSize !== newData.length) {
    throw corrupt('xz', 'the spliced stream does not add up (internal error)', where);
  }
  return { bytes, kept, encoded: encodedBlocks, encodedBytes };
};

const PARALLEL = 2;

async function encodeBlocks(data: Uint8Array, check: string, level: number, where: Where) {
  const lzma2 = `preset=${level},dict=1MiB`;
  const bytes = await runTool('xz', [`--check=${check}`, `--lzma2=${lzma2}`, `--block-size=${SPLICE_BLOCK_SIZE}`, '-T0', '-c', '-q'], data, {
    format: 'xz',
    mode: 'compress',
    where,
  });
  const walk = walkXzStream(bytes, 0, where);
  // Decoded back here, so that the caller's check of the whole stream need not decode the blocks it kept.
  const back = await xzDecompressAll(bytes, data.length, where);
  if (walk.uncompressedSize !== data.length || Buffer.compare(back, data) !== 0) throw corrupt('xz', 'xz(1) output does not decode to its input', where);
  return { bytes, walk };
}

/** Stream header (the old one: same flags), blocks, then an index and footer for them. */
function assemble(header: Uint8Array, blocks: ReadonlyArray<{ bytes: Uint8Array; unpadded: number; uncompressed: number }>): Uint8Array {
  const index: number[] = [0];
  vli(index, blocks.length);
  for (const b of blocks) {
    vli(index, b.unpadded);
    vli(index, b.uncompressed);
  }
  while (index.length % 4 !== 0) index.push(0);
  const indexBytes = new Uint8Array(index.length + 4);
  indexBytes.set(index);
  writeU32LE(indexBytes, index.length, crc32(indexBytes, 0, index.length));

  const footer = new Uint8Array(12);
  writeU32LE(footer, 4, indexBytes.length / 4 - 1);
  footer[8] = header[6]!;
  footer[9] = header[7]!;
  writeU32LE(footer, 0, crc32(footer, 4, 10));
  footer[10] = 0x59;
  footer[11] = 0x5a;

  const total = header.length + blocks.reduce((n, b) => n + b.bytes.length, 0) + indexBytes.length + footer.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of [header, ...blocks.map((b) => b.bytes), indexBytes, footer]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function vli(out: number[], n: number): void {
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}
