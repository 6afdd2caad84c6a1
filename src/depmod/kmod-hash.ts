import { endianness } from 'node:os';

/**
 * kmod's hash table (shared/hash.c), reproduced only as far as its iteration order goes:
 * depmod lists modules outside modules.order, and every line of modules.symbols, in the
 * order a hash_iter walks its table. That order is fully determined by the set of keys:
 * buckets in index order, and inside a bucket the keys sorted by strcmp (hash_add keeps
 * each bucket sorted), whatever order they were added in.
 *
 * Strings here are Latin-1 (one char per byte), as everything kabi reads out of ELF files.
 */

export type HostEndian = 'little' | 'big';

/** The endianness of the machine depmod runs on: hash_superfast loads 16-bit words natively. */
export const HOST_ENDIAN: HostEndian = endianness() === 'LE' ? 'little' : 'big';

/** depmod's table sizes (depmod_init): modules by name, and symbols. */
export const MODULES_BUCKETS = 512;
export const SYMBOLS_BUCKETS = 2048;

/** C `char` is signed on the hosts kmod is built for here (x86, s390x…): bytes ≥ 0x80 sign-extend. */
function signedChar(c: number): number {
  return (c << 24) >> 24;
}

/** Paul Hsieh's SuperFastHash as kmod's hash_superfast() computes it, as an unsigned 32-bit value. */
export function hashSuperfast(key: string, endian: HostEndian = HOST_ENDIAN): number {
  const len = key.length;
  const le = endian === 'little';
  let hash = len >>> 0;
  const rem = len & 3;
  let p = 0;
  for (let n = len >>> 2; n > 0; n--) {
    const a = key.charCodeAt(p) & 0xff;
    const b = key.charCodeAt(p + 1) & 0xff;
    const c = key.charCodeAt(p + 2) & 0xff;
    const d = key.charCodeAt(p + 3) & 0xff;
    hash = (hash + (le ? a | (b << 8) : (a << 8) | b)) >>> 0;
    const tmp = (((le ? c | (d << 8) : (c << 8) | d) << 11) ^ hash) >>> 0;
    hash = ((hash << 16) ^ tmp) >>> 0;
    p += 4;
    hash = (hash + (hash >>> 11)) >>> 0;
  }
  if (rem >= 2) {
    const a = key.charCodeAt(p) & 0xff;
    const b = key.charCodeAt(p + 1) & 0xff;
    hash = (hash + (le ? a | (b << 8) : (a << 8) | b)) >>> 0;
    if (rem === 3) {
      hash = (hash ^ (hash << 16)) >>> 0;
      hash = (hash ^ (signedChar(key.charCodeAt(p + 2) & 0xff) << 18)) >>> 0;
      hash = (hash + (hash >>> 11)) >>> 0;
    } else {
      hash = (hash ^ (hash << 11)) >>> 0;
      hash = (hash + (hash >>> 17)) >>> 0;
    }
  } else if (rem === 1) {
    hash = (hash + signedChar(key.charCodeAt(p) & 0xff)) >>> 0;
    hash = (hash ^ (hash << 10)) >>> 0;
    hash = (hash + (hash >>> 1)) >>> 0;
  }
  hash = (hash ^ (hash << 3)) >>> 0;
  hash = (hash + (hash >>> 5)) >>> 0;
  hash = (hash ^ (hash << 4)) >>> 0;
  hash = (hash + (hash >>> 17)) >>> 0;
  hash = (hash ^ (hash << 25)) >>> 0;
  hash = (hash + (hash >>> 6)) >>> 0;
  return hash;
}

/** hash_new() rounds the bucket count up to a power of two. */
function bucketMask(buckets: number): number {
  let n = 1;
  while (n < buckets) n <<= 1;
  return n - 1;
}

/** The bucket hash_iter finds `key` in, in a table of `buckets` buckets. */
export function hashBucket(key: string, buckets: number, endian: HostEndian = HOST_ENDIAN): number {
  return hashSuperfast(key, endian) & bucketMask(buckets);
}

/** hash_iter's order: negative when `a` comes first. */
export function compareHashOrder(a: string, b: string, buckets: number, endian: HostEndian = HOST_ENDIAN): number {
  return hashBucket(a, buckets, endian) - hashBucket(b, buckets, endian) || strcmp(a, b);
}

/** strcmp over Latin-1 strings: JS compares UTF-16 code units, which here are the bytes. */
export function strcmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The keys in the order kmod's hash_iter visits them in a table of `buckets` buckets:
 * bucket by bucket, strcmp order inside each (keys are unique in depmod's tables).
 */
export function hashIterationOrder<T>(items: readonly T[], keyOf: (t: T) => string, buckets: number, endian: HostEndian = HOST_ENDIAN): T[] {
  const mask = bucketMask(buckets);
  const byBucket: { key: string; item: T }[][] = Array.from({ length: mask + 1 }, () => []);
  for (const item of items) {
    const key = keyOf(item);
    byBucket[hashSuperfast(key, endian) & mask]!.push({ key, item });
  }
  const out: T[] = [];
  for (const b of byBucket) {
    if (b.length > 1) b.sort((x, y) => strcmp(x.key, y.key));
    for (const e of b) out.push(e.item);
  }
  return out;
}
