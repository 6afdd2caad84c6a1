import * as zlib from 'node:zlib';

/**
 * CRC-32 (zlib's): tells a torn, zero-filled or bit-flipped cache frame or output from the
 * one written. zlib's own is native and several GB/s; Node before 20.15 has none, and gets
 * the same function computed here, so a file's checksums read the same on either.
 */
export const crc32: (data: Uint8Array, value?: number) => number = typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (d, v) => zlib.crc32(d, v) : tableCrc32;

let table: Uint32Array | undefined;

function tableCrc32(data: Uint8Array, value = 0): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Exported for the test that both give the same numbers. */
export const crc32InJs = tableCrc32;
