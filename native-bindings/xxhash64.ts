/*
 * XXH64 with seed 0, for the zstd content checksum (its low 32 bits) on the pure-JS path:
 * fzstd skips the checksum, and without it a damaged raw/RLE block or literal run decodes
 * "successfully". 64-bit lanes are kept as (hi, lo) uint32 pairs because BigInt arithmetic
 * is an order of magnitude slower. Written from the XXH64 specification.
 */

// Primes as [hi, lo].
const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;

// Results of the helpers below (avoids allocating a pair per operation).
let rh = 0;
let rl = 0;

function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33, exact in a double
  const low = a0 * b0 + (mid % 0x10000) * 0x10000; // < 2^33
  rl = low >>> 0;
  const carry = low >= 0x1_0000_0000 ? 1 : 0;
  rh = (a1 * b1 + Math.floor(mid / 0x10000) + carry + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  rl = lo >>> 0;
  rh = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** Rotate left by n, 0 < n < 32. */
function rotl(h: number, l: number, n: number): void {
  rh = ((h << n) | (l >>> (32 - n))) >>> 0;
  rl = ((l << n) | (h >>> (32 - n))) >>> 0;
}

/** acc = rotl(acc + lane * P2, 31) * P1 */
function round(acch: number, accl: number, lh: number, ll: number): void {
  mul(lh, ll, P2H, P2L);
  add(acch, accl, rh, rl);
  rotl(rh, rl, 31);
  mul(rh, rl, P1H, P1L);
}

/**
 * round() for the bulk loop with every step inlined on locals: the helpers above go through
 * module-level result slots, which V8 cannot keep in registers (about 4x slower).
 */
function stripeRound(st: Uint32Array, i: number, lh: number, ll: number): void {
  // t = lane * P2
  let a0 = ll & 0xffff, a1 = ll >>> 16;
  let mid = a0 * (P2L >>> 16) + a1 * (P2L & 0xffff);
  let low = a0 * (P2L & 0xffff) + (mid % 0x10000) * 0x10000;
  const tl = low >>> 0;
  const th = (a1 * (P2L >>> 16) + Math.floor(mid / 0x10000) + (low >= 0x1_0000_0000 ? 1 : 0) + Math.imul(lh, P2L) + Math.imul(ll, P2H)) >>> 0;
  // acc += t
  const sl = (st[i + 1] as number) + tl;
  const al = sl >>> 0;
  const ah = ((st[i] as number) + th + (sl > 0xffffffff ? 1 : 0)) >>> 0;
  // rotl 31
  const rhh = ((ah << 31) | (al >>> 1)) >>> 0;
  const rll = ((al << 31) | (ah >>> 1)) >>> 0;
  // * P1
  a0 = rll & 0xffff;
  a1 = rll >>> 16;
  mid = a0 * (P1L >>> 16) + a1 * (P1L & 0xffff);
  low = a0 * (P1L & 0xffff) + (mid % 0x10000) * 0x10000;
  st[i + 1] = low >>> 0;
  st[i] = (a1 * (P1L >>> 16) + Math.floor(mid / 0x10000) + (low >= 0x1_0000_0000 ? 1 : 0) + Math.imul(rhh, P1L) + Math.imul(rll, P1H)) >>> 0;
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24)) >>> 0;
}

/** Low 32 bits of XXH64(data, seed 0), which is what a zstd frame stores. */
export function xxh64Low32(data: Uint8Array): number {
  return xxh64(data)[1];
}

/** XXH64(data, 0) as [hi, lo]. */
export function xxh64(data: Uint8Array): [number, number] {
  const len = data.length;
  let p = 0;
  let hh: number, hl: number;
  if (len >= 32) {
    // v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1 (mod 2^64)
    add(P1H, P1L, P2H, P2L);
    let v1h = rh, v1l = rl;
    let v2h = P2H, v2l = P2L;
    let v3h = 0, v3l = 0;
    add(~P1H >>> 0, ~P1L >>> 0, 0, 1);
    let v4h = rh, v4l = rl;
    const limit = len - 32;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const st = new Uint32Array([v1h, v1l, v2h, v2l, v3h, v3l, v4h, v4l]);
    while (p <= limit) {
      stripeRound(st, 0, view.getUint32(p + 4, true), view.getUint32(p, true));
      stripeRound(st, 2, view.getUint32(p + 12, true), view.getUint32(p + 8, true));
      stripeRound(st, 4, view.getUint32(p + 20, true), view.getUint32(p + 16, true));
      stripeRound(st, 6, view.getUint32(p + 28, true), view.getUint32(p + 24, true));
      p += 32;
    }
    v1h = st[0] as number; v1l = st[1] as number;
    v2h = st[2] as number; v2l = st[3] as number;
    v3h = st[4] as number; v3l = st[5] as number;
    v4h = st[6] as number; v4l = st[7] as number;
    rotl(v1h, v1l, 1);
    let ah = rh, al = rl;
    rotl(v2h, v2l, 7);
    add(ah, al, rh, rl); ah = rh; al = rl;
    rotl(v3h, v3l, 12);
    add(ah, al, rh, rl); ah = rh; al = rl;
    rotl(v4h, v4l, 18);
    add(ah, al, rh, rl); ah = rh; al = rl;
    for (const [vh, vl] of [[v1h, v1l], [v2h, v2l], [v3h, v3l], [v4h, v4l]] as const) {
      round(0, 0, vh, vl);
      ah = (ah ^ rh) >>> 0; al = (al ^ rl) >>> 0;
      mul(ah, al, P1H, P1L);
      add(rh, rl, P4H, P4L);
      ah = rh; al = rl;
    }
    hh = ah; hl = al;
  } else {
    hh = P5H; hl = P5L;
  }
  // h += len (len < 2^53: split into hi/lo words)
  add(hh, hl, Math.floor(len / 0x1_0000_0000) >>> 0, len >>> 0);
  hh = rh; hl = rl;

  while (p + 8 <= len) {
    round(0, 0, u32(data, p + 4), u32(data, p));
    hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
    rotl(hh, hl, 27);
    mul(rh, rl, P1H, P1L);
    add(rh, rl, P4H, P4L);
    hh = rh; hl = rl;
    p += 8;
  }
  if (p + 4 <= len) {
    mul(0, u32(data, p), P1H, P1L);
    hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
    rotl(hh, hl, 23);
    mul(rh, rl, P2H, P2L);
    add(rh, rl, P3H, P3L);
    hh = rh; hl = rl;
    p += 4;
  }
  while (p < len) {
    mul(0, data[p] as number, P5H, P5L);
    hh = (hh ^ rh) >>> 0; hl = (hl ^ rl) >>> 0;
    rotl(hh, hl, 11);
    mul(rh, rl, P1H, P1L);
    hh = rh; hl = rl;
    p++;
  }
  // Avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32
  hl = (hl ^ (hh >>> 1)) >>> 0;
  mul(hh, hl, P2H, P2L);
  hh = rh; hl = rl;
  hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0;
  hh = (hh ^ (hh >>> 29)) >>> 0;
  mul(hh, hl, P3H, P3L);
  hh = rh; hl = rl;
  hl = (hl ^ hh) >>> 0;
  return [hh, hl];
}
