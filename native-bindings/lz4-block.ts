/*
 * Decoder for one LZ4 block (the raw sequence format, no framing), written from the LZ4 block
 * format description. Each legacy-format chunk is one independent block: matches may not
 * reach before the chunk's first output byte, as in the kernel, which decodes every chunk
 * into a fresh buffer.
 *
 * The end-of-block rules are the ones LZ4_decompress_safe enforces (the kernel's unlz4 and
 * lz4 -d), so that a block is refused here exactly where it is refused there: a literal run
 * ending within LAST_SEQUENCE_INPUT bytes of the block's end, or within MF_LIMIT bytes of the
 * output's capacity, must end the block; a match may not reach into the output's last
 * LAST_LITERALS bytes.
 */

/** LZ4's MFLIMIT, LASTLITERALS, and the input margin 2 + 1 + LASTLITERALS. */
const MF_LIMIT = 12;
const LAST_LITERALS = 5;
const LAST_SEQUENCE_INPUT = 8;

export class Lz4BlockError extends Error {
  constructor(
    message: string,
    /** Offset in the source buffer where decoding failed. */
    readonly at: number,
    /** True when the only problem is that the output would not fit in the space given. */
    readonly overflow = false,
  ) {
    super(message);
  }
}

/**
 * Decodes src[from, to) into dst starting at dstStart, writing nothing at or past dstLimit.
 * `capacity` is the output space the kernel gives the block (8 MiB for a legacy chunk), for
 * the end-of-block rules. Returns the output position after the block.
 */
export function decodeLz4Block(src: Uint8Array, from: number, to: number, dst: Uint8Array, dstStart: number, dstLimit: number, capacity = dstLimit - dstStart): number {
  const capEnd = dstStart + capacity;
  let ip = from;
  let op = dstStart;
  for (;;) {
    if (ip >= to) throw new Lz4BlockError('block ends before its last literals', ip);
    const token = src[ip++] as number;

    let litLen = token >>> 4;
    if (litLen === 15) {
      let s: number;
      do {
        if (ip >= to) throw new Lz4BlockError('truncated literal length', ip);
        s = src[ip++] as number;
        litLen += s;
      } while (s === 255);
    }
    if (litLen > to - ip) throw new Lz4BlockError('literal run extends past the block', ip);
    if (litLen > dstLimit - op) throw new Lz4BlockError('output does not fit', ip, true);
    if (mustBeLast(op + litLen, capEnd, ip + litLen, to) && ip + litLen !== to) throw lastSequence(ip);
    if (litLen < 32) {
      for (let i = 0; i < litLen; i++) dst[op + i] = src[ip + i] as number;
    } else {
      dst.set(src.subarray(ip, ip + litLen), op);
    }
    ip += litLen;
    op += litLen;
    // The last sequence of a block is literals only.
    if (ip === to) return op;

    if (to - ip < 2) throw new Lz4BlockError('truncated match offset', ip);
    const offset = (src[ip] as number) | ((src[ip + 1] as number) << 8);
    if (offset === 0 || offset > op - dstStart) throw new Lz4BlockError(`match offset ${offset} points outside the block's output`, ip);
    ip += 2;

    let matchLen = token & 15;
    if (matchLen === 15) {
      let s: number;
      do {
        if (ip >= to) throw new Lz4BlockError('truncated match length', ip);
        s = src[ip++] as number;
        matchLen += s;
      } while (s === 255);
    }
    matchLen += 4;
    if (matchLen > dstLimit - op) throw new Lz4BlockError('output does not fit', ip, true);
    if (op + matchLen > capEnd - LAST_LITERALS) throw lastLiterals(ip);

    let m = op - offset;
    if (matchLen < 32) {
      // Short matches dominate; a byte loop beats a native call here, and handles overlap.
      const end = op + matchLen;
      while (op < end) dst[op++] = dst[m++] as number;
    } else if (offset >= matchLen) {
      dst.copyWithin(op, m, m + matchLen);
      op += matchLen;
    } else {
      // Overlapping match: the output repeats the last `offset` bytes. Copy the part that is
      // already periodic, doubling each time; `done` stays a multiple of `offset`, so the
      // phase is right.
      let done = 0;
      while (done < matchLen) {
        const n = Math.min(offset + done, matchLen - done);
        dst.copyWithin(op + done, m, m + n);
        done += n;
      }
      op += matchLen;
    }
  }
}

/**
 * How many bytes src[from, to) decodes to, from its sequence headers alone (no output is
 * written), within `capacity` (a legacy chunk's 8 MiB). Agrees with decodeLz4Block: throws
 * wherever it would.
 */
export function lz4BlockLength(src: Uint8Array, from: number, to: number, capacity = 8 << 20): number {
  const c = { ip: from };
  let n = 0;
  for (;;) {
    if (c.ip >= to) throw new Lz4BlockError('block ends before its last literals', c.ip);
    const token = src[c.ip++] as number;
    const literals = extendedLength(src, c, to, token >>> 4, 'literal length');
    if (literals > to - c.ip) throw new Lz4BlockError('literal run extends past the block', c.ip);
    if (n + literals > capacity) throw new Lz4BlockError('output does not fit', c.ip, true);
    if (mustBeLast(n + literals, capacity, c.ip + literals, to) && c.ip + literals !== to) throw lastSequence(c.ip);
    c.ip += literals;
    n += literals;
    if (c.ip === to) return n;
    if (to - c.ip < 2) throw new Lz4BlockError('truncated match offset', c.ip);
    const offset = (src[c.ip] as number) | ((src[c.ip + 1] as number) << 8);
    if (offset === 0 || offset > n) throw new Lz4BlockError(`match offset ${offset} points outside the block's output`, c.ip);
    c.ip += 2;
    const match = extendedLength(src, c, to, token & 15, 'match length') + 4;
    if (n + match > capacity) throw new Lz4BlockError('output does not fit', c.ip, true);
    if (n + match > capacity - LAST_LITERALS) throw lastLiterals(c.ip);
    n += match;
  }
}

/** A literal run ending this near the end of the input or of the output space can only end the block. */
function mustBeLast(outEnd: number, capEnd: number, inEnd: number, to: number): boolean {
  return outEnd > capEnd - MF_LIMIT || inEnd > to - LAST_SEQUENCE_INPUT;
}

function lastSequence(at: number): Lz4BlockError {
  return new Lz4BlockError('a sequence this close to the end of the block must be the last one, literals only', at);
}

function lastLiterals(at: number): Lz4BlockError {
  return new Lz4BlockError(`a match reaches into the last ${LAST_LITERALS} bytes of the output, which must be literals`, at);
}

/** A 4-bit length from a token, continued by bytes of 255 when it is 15. */
function extendedLength(src: Uint8Array, c: { ip: number }, to: number, nibble: number, what: string): number {
  let len = nibble;
  if (len !== 15) return len;
  let s: number;
  do {
    if (c.ip >= to) throw new Lz4BlockError(`truncated ${what}`, c.ip);
    s = src[c.ip++] as number;
    len += s;
  } while (s === 255);
  return len;
}
