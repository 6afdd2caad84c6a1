import { readU32LE, type Compression } from './common.js';

/*
 * Magics as the kernel's lib/decompress.c and kmod recognise them, tightened to full
 * signatures where the kernel only checks two bytes: a caller walking an initramfs asks
 * at every non-NUL, non-cpio offset, and two-byte matches (e.g. 5D 00) would fire on junk.
 */
const MAGICS: ReadonlyArray<readonly [Compression, readonly number[]]> = [
  // The kernel's gunzip insists on CM=8 (deflate); 1F 9E ("old gzip") is rejected there anyway.
  ['gzip', [0x1f, 0x8b, 0x08]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  // Legacy lz4 only (0x184C2102 LE): the kernel never learned the lz4 frame format.
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  // lzop's file magic; the kernel's unlzo checks the same nine bytes.
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a]],
];

export function detectCompression(bytes: Uint8Array, offset = 0): Compression | undefined {
  if (!Number.isInteger(offset) || offset < 0 || offset >= bytes.length) return undefined;
  for (const [format, magic] of MAGICS) {
    if (matches(bytes, offset, magic)) {
      if (format === 'bzip2') {
        // "BZh" is followed by the block size digit 1-9.
        const d = bytes[offset + 3];
        if (d === undefined || d < 0x31 || d > 0x39) continue;
      }
      return format;
    }
  }
  if (looksLikeLzmaAlone(bytes, offset)) return 'lzma';
  return undefined;
}

/**
 * .lzma ("LZMA alone") has no real magic. The kernel accepts 5D 00 (lc=3 lp=0 pb=2 and the
 * low byte of the dictionary size); we also require a whole 13-byte header with a dictionary of
 * at least 4 KiB (liblzma's minimum) and a size field that is either "unknown" (all FF) or below
 * 2^48, which keeps random data from matching.
 */
function looksLikeLzmaAlone(b: Uint8Array, at: number): boolean {
  if (at + 13 > b.length || b[at] !== 0x5d || b[at + 1] !== 0x00) return false;
  const dict = readU32LE(b, at + 1);
  if (dict < 4096) return false;
  let allFF = true;
  for (let i = 5; i < 13; i++) if (b[at + i] !== 0xff) allFF = false;
  if (allFF) return true;
  return b[at + 11] === 0 && b[at + 12] === 0;
}

function matches(b: Uint8Array, at: number, magic: readonly number[]): boolean {
  if (at + magic.length > b.length) return false;
  for (let i = 0; i < magic.length; i++) if (b[at + i] !== magic[i]) return false;
  return true;
}
