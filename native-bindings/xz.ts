import { KabiError } from '../src/errors.js';
import { findTool, runTool } from './cli.js';
import { checkDeadline, corrupt, errorText, tooLarge, type Where } from './common.js';
import { nativeStatus, xzDecompress, type XzDecompressModule, type XzWasmExports } from './native.js';
import { walkXzFile, walkXzStream, type XzStream } from './xz-stream.js';

/*
 * xz: decoded by xz-decompress (a WASM build of XZ Embedded, the kernel's own decoder) or by the
 * xz CLI; encoded by the xz CLI only, since no JS encoder here can write the CRC32 check the
 * kernel requires at a usable speed.
 */

/** XZ Embedded's enum xz_ret, as the WASM wrapper reports it ("error code N"). */
const XZ_RET: Record<number, string> = {
  2: 'unsupported integrity check',
  3: 'out of memory',
  4: 'memory limit reached',
  5: 'not in xz format',
  6: 'unsupported options',
  7: 'compressed data is corrupt',
  8: 'truncated or corrupt input',
};
/** Codes that mean "this decoder can't" rather than "this data is bad": worth retrying with xz(1). */
const RETRY_WITH_CLI = new Set([2, 3, 4, 6]);
/** XZ Embedded verifies none, CRC32 and CRC64 only. */
const WASM_CHECKS = new Set([0, 1, 4]);

export async function xzDecompressAll(bytes: Uint8Array, limit: number, where: Where): Promise<Uint8Array> {
  const streams = walkXzFile(bytes, where);
  return decode(bytes, streams, limit, where);
}

/**
 * One initramfs segment = one xz stream, like the kernel's unxz, which stops at XZ_STREAM_END
 * (the stream footer) and reports the input used up to there; stream padding is left to the
 * caller's NUL skipping.
 */
export async function xzSegment(image: Uint8Array, offset: number, limit: number, where: Where): Promise<{ data: Uint8Array; consumed: number }> {
  const s = walkXzStream(image, offset, where);
  const at = { ...where, base: where.base + offset };
  const input = image.subarray(offset, s.end);
  if (s.blocks > 1 && s.uncompressedSize >= THREADED_MIN && s.uncompressedSize <= limit && findTool('xz')) {
    const data = await runTool('xz', ['-dc', '-T0'], input, { format: 'xz', mode: 'decompress', where: at, limit });
    if (data.length !== s.uncompressedSize) throw corrupt('xz', `decoded ${data.length} bytes, the index says ${s.uncompressedSize}`, at);
    return { data, consumed: s.end - offset };
  }
  const data = await decode(input, [s], limit, at);
  return { data, consumed: s.end - offset };
}

/**
 * A boot image written by xz -T0 (dracut, initramfs-tools) is a stream of 3 MiB blocks, which
 * xz(1) decodes on every core: on 2 cores an 18.6 MiB dracut image took 0.13 s there against
 * 0.33 s in the WASM decoder, which also holds the main thread while it runs.
 */
const THREADED_MIN = 4 << 20;

async function decode(input: Uint8Array, streams: readonly XzStream[], limit: number, where: Where): Promise<Uint8Array> {
  const total = streams.reduce((n, s) => n + s.uncompressedSize, 0);
  if (total > limit) throw tooLarge('xz', limit, where);
  const wasm = xzDecompress();
  let out: Uint8Array;
  if (wasm && streams.every((s) => WASM_CHECKS.has(s.checkType))) {
    try {
      out = await decodeWasm(wasm, input, total, where);
    } catch (e) {
      const code = wasmErrorCode(e);
      if (code === undefined || !RETRY_WITH_CLI.has(code)) throw e;
      if (!findTool('xz')) {
        throw new KabiError('UNSUPPORTED_COMPRESSION', `xz data needs the 'xz' program: XZ Embedded reports ${XZ_RET[code] ?? `error ${code}`}`, {
          file: where.file,
          offset: where.base === 0 ? undefined : where.base,
          cause: e,
        });
      }
      out = await decodeCli(input, limit, where);
    }
  } else {
    out = await decodeCli(input, limit, where);
  }
  if (out.length !== total) throw corrupt('xz', `decoded ${out.length} bytes, the index says ${total}`, where);
  return out;
}

class WasmError extends Error {
  constructor(
    readonly xzCode: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

function wasmErrorCode(e: unknown): number | undefined {
  return e instanceof KabiError && e.cause instanceof WasmError ? e.cause.xzCode : undefined;
}

async function decodeWasm(m: XzDecompressModule, input: Uint8Array, total: number, where: Where): Promise<Uint8Array> {
  const glue = await wasmGlue(m);
  return glue ? decodeWasmSync(glue, input, total, where) : decodeWasmStream(m, input, total, where);
}

let glueLoad: Promise<XzWasmExports | undefined> | undefined;

/**
 * XZ Embedded's WASM exports, driven directly: the package's web stream costs a promise,
 * a stream chunk and a copy per 64 KiB and a context behind a mutex per file, about a
 * quarter of the time on a tree of small .ko.xz files. The exports are not the package's
 * documented API, so anything unexpected leaves the stream in use.
 */
function wasmGlue(m: XzDecompressModule): Promise<XzWasmExports | undefined> {
  glueLoad ??= (async () => {
    try {
      const cls = m.XzReadableStream;
      if (cls._moduleInstance === undefined && typeof cls._getModuleInstance === 'function') await cls._getModuleInstance();
      const x = cls._moduleInstance?.exports;
      const ok =
        x !== undefined &&
        typeof x.memory === 'object' && x.memory.buffer instanceof ArrayBuffer &&
        (['create_context', 'destroy_context', 'supply_input', 'get_next_output'] as const).every((f) => typeof x[f] === 'function');
      return ok ? (x as XzWasmExports) : undefined;
    } catch {
      return undefined;
    }
  })();
  return glueLoad;
}

/** The C glue's context, in 32-bit words: buffer size, then struct xz_buf. */
const CTX_BUF_SIZE = 0;
const CTX_IN = 1;
const CTX_IN_POS = 2;
const CTX_IN_SIZE = 3;
const CTX_OUT = 4;
const CTX_OUT_POS = 5;
const XZ_OK = 0;
const XZ_STREAM_END = 1;

function decodeWasmSync(x: XzWasmExports, input: Uint8Array, total: number, where: Where): Uint8Array {
  const ctx = x.create_context();
  if (ctx === 0 || ctx % 4 !== 0) throw corrupt('xz', XZ_RET[3]!, where, undefined, new WasmError(3, 'create_context failed'));
  try {
    let m8 = new Uint8Array(x.memory.buffer);
    let m32 = new Uint32Array(x.memory.buffer);
    const c = ctx >>> 2;
    const bufSize = m32[c + CTX_BUF_SIZE]!;
    const inPtr = m32[c + CTX_IN]!;
    const outPtr = m32[c + CTX_OUT]!;
    // The walk told us the exact size, so decode straight into the result.
    const out = new Uint8Array(total);
    let at = 0;
    let next = 0;
    for (;;) {
      if (m32[c + CTX_IN_POS] === m32[c + CTX_IN_SIZE]) {
        // Past the end, an empty buffer: XZ Embedded answers XZ_BUF_ERROR on the second call without progress.
        const n = Math.min(bufSize, input.length - next);
        m8.set(input.subarray(next, next + n), inPtr);
        next += n;
        x.supply_input(ctx, n);
      }
      const ret = x.get_next_output(ctx);
      if (m8.buffer !== x.memory.buffer) {
        m8 = new Uint8Array(x.memory.buffer);
        m32 = new Uint32Array(x.memory.buffer);
      }
      const produced = m32[c + CTX_OUT_POS]!;
      if (at + produced > total) throw corrupt('xz', `stream decodes to more than the ${total} bytes its index lists`, where);
      out.set(m8.subarray(outPtr, outPtr + produced), at);
      at += produced;
      m32[c + CTX_OUT_POS] = 0;
      if (ret === XZ_STREAM_END) break;
      checkDeadline('xz', where);
      if (ret !== XZ_OK) throw corrupt('xz', XZ_RET[ret] ?? `error code ${ret}`, where, undefined, new WasmError(ret, `error code ${ret}`));
    }
    return at === total ? out : out.subarray(0, at);
  } finally {
    x.destroy_context(ctx);
  }
}

async function decodeWasmStream(m: XzDecompressModule, input: Uint8Array, total: number, where: Where): Promise<Uint8Array> {
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(input);
      controller.close();
    },
  });
  const reader = new m.XzReadableStream(source).getReader();
  // The walk told us the exact size, so decode straight into the result.
  const out = new Uint8Array(total);
  let at = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (at + value.length > total) {
        throw corrupt('xz', `stream decodes to more than the ${total} bytes its index lists`, where);
      }
      out.set(value, at);
      at += value.length;
      checkDeadline('xz', where);
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    if (e instanceof KabiError) throw e;
    const msg = errorText(e);
    const code = /error code (\d+)/.exec(msg)?.[1];
    const xzCode = code === undefined ? undefined : Number(code);
    const why = xzCode !== undefined && XZ_RET[xzCode] !== undefined ? XZ_RET[xzCode] : msg;
    throw corrupt('xz', why, where, undefined, new WasmError(xzCode, msg));
  }
  return at === total ? out : out.subarray(0, at);
}

function decodeCli(input: Uint8Array, limit: number, where: Where): Promise<Uint8Array> {
  return runTool('xz', ['-dc'], input, { format: 'xz', mode: 'decompress', where, limit });
}

/**
 * The flags dracut and kbuild use: CRC32 because XZ Embedded (kernel) supports no stronger check,
 * a 1 MiB dictionary to bound the kernel's decoder memory. A level becomes the LZMA2 preset, as a
 * bare -N would be overridden by the custom filter chain.
 */
export function xzCompress(data: Uint8Array, level: number | undefined, where: Where): Promise<Uint8Array> {
  const lzma2 = level === undefined ? 'dict=1MiB' : `preset=${level},dict=1MiB`;
  return runTool('xz', ['--check=crc32', `--lzma2=${lzma2}`, '-T0', '-c', '-q'], data, { format: 'xz', mode: 'compress', where });
}

export function xzImplementations(): { decompress: string; compress: string } {
  const cli = findTool('xz');
  const wasm = xzDecompress();
  return {
    decompress: wasm
      ? `xz-decompress (WASM XZ Embedded)${cli ? '; xz CLI for SHA-256 checks and BCJ filters' : ''}`
      : `${cli ? `xz CLI (${cli})` : 'unavailable'} (xz-decompress ${nativeStatus('xz-decompress') ?? 'not loaded'}${cli ? '' : ', no xz program'})`,
    compress: cli ? `xz CLI (${cli})` : 'unavailable (no xz program)',
  };
}
