import type { Where } from './common.js';

/*
 * Which blocks of an old compressed stream an edited content can keep. Used for the formats
 * whose blocks decode independently (xz blocks, legacy lz4 chunks): a block is kept where its
 * decoded bytes appear, unchanged, in the new content; what lies between kept blocks is
 * encoded anew.
 */

export interface OldBlock {
  /** Where the block's content starts in the old decoded data, and its length. */
  readonly decodedStart: number;
  readonly length: number;
}

/** A stream rebuilt from kept blocks and new ones. */
export interface SpliceResult {
  readonly bytes: Uint8Array;
  /** Blocks copied from the old stream, and blocks newly encoded. */
  readonly kept: number;
  readonly encoded: number;
  /** Decoded bytes that went through the encoder. */
  readonly encodedBytes: number;
}

/**
 * Rebuild `old` (exactly one stream of the format, decoding to `oldData`) so that it decodes
 * to `newData`, keeping what blocks it can at the candidate `shifts`; undefined when none.
 */
export type Splice = (old: Uint8Array, oldData: Uint8Array, newData: Uint8Array, shifts: Iterable<number>, level: number | undefined, where: Where) => Promise<SpliceResult | undefined>;

export type SplicePiece<B> = { readonly keep: B } | { readonly gap: readonly [number, number] };

/**
 * The new content as kept blocks and gaps, in order. `shifts` are candidate moves (new offset
 * minus old) from the caller's knowledge of its edits; each block is tried at each, in order,
 * and kept only where its bytes match exactly and it starts at or after the previous kept
 * block's end. Undefined when no block can be kept.
 */
export function planSplice<B extends OldBlock>(blocks: readonly B[], oldData: Uint8Array, newData: Uint8Array, shifts: Iterable<number>): SplicePiece<B>[] | undefined {
  const moves = [...new Set(shifts)];
  const pieces: SplicePiece<B>[] = [];
  let cursor = 0;
  let kept = 0;
  for (const block of blocks) {
    if (block.length === 0) continue;
    const content = oldData.subarray(block.decodedStart, block.decodedStart + block.length);
    for (const d of moves) {
      const at = block.decodedStart + d;
      if (at < cursor || at + block.length > newData.length) continue;
      if (Buffer.compare(content, newData.subarray(at, at + block.length)) !== 0) continue;
      if (at > cursor) pieces.push({ gap: [cursor, at] });
      pieces.push({ keep: block });
      cursor = at + block.length;
      kept++;
      break;
    }
  }
  if (kept === 0) return undefined;
  if (cursor < newData.length) pieces.push({ gap: [cursor, newData.length] });
  return pieces;
}
