import * as zlib from 'node:zlib';

/*
 * CRC-32 (IEEE, reflected), as used by the gzip trailer and the xz headers/index.
 * node:zlib has a native crc32 from Node 20.15 on; older 20.x get the table version.
 */

type Crc32Fn = (data: Uint8Array, value?: number) => number;

const nativeCrc32 = (zlib as unknown as { crc32?: Crc32Fn }).crc32;

let table: Uint32Array | undefined;

function makeTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

function tableCrc32(data: Uint8Array, value = 0): number {
  const t = (table ??= makeTable());
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = (t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  const view = start === 0 && end === data.length ? data : data.subarray(start, end);
  return crc32Update(view, 0);
}

/** The CRC of the bytes before, `value`, carried on over `data` (a stream checked piece by piece). */
export function crc32Update(data: Uint8Array, value: number): number {
  return nativeCrc32 ? nativeCrc32(data, value) >>> 0 : tableCrc32(data, value);
}

/** Exposed so the table path is tested even on a Node that has zlib.crc32. */
export const crc32ForTest = tableCrc32;
