import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { findTool } from '../../native-bindings/cli.js';
import { xzDecompress, zstdNapi } from '../../native-bindings/native.js';
import { KabiError } from '../errors.js';
import type { ByteSource } from './byte-source.js';
import type { Deadline } from './limits.js';

/*
 * Streaming decompression of a package payload. Every chunk yielded is the caller's to keep
 * (no decoder reuses one), so contents can be kept as views into them without a copy. The one-shot codecs of native-bindings take a
 * whole buffer, which for a kernel package means holding 100-400 MB twice; here output comes
 * out as the input goes in, and is counted against the payload limit as it appears.
 *
 * xz is decoded by xz(1) when it is installed (liblzma, in its own process: a third faster than
 * XZ Embedded in WASM, and it runs beside the tar/cpio parsing on a second core), else by
 * xz-decompress. bzip2 and lzma (old RPMs) need their programs, as in native-bindings.
 * KABI_PACKAGE_DECODER=js keeps every decoder in-process where one exists (tests use it).
 */

export type PayloadCompression = 'none' | 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'lzma';

export interface DecodeOptions {
  /** Most decompressed bytes accepted. */
  readonly limit: number;
  readonly deadline: Deadline;
  /** For messages: the package file, what is being decoded, its offset in the file. */
  readonly file: string;
  readonly label: string;
  readonly offset: number;
}

/** The payload compression named by its leading bytes (never by a file or tag name alone). */
export function sniffCompression(head: Uint8Array): PayloadCompression | undefined {
  const starts = (...m: number[]) => m.every((v, i) => head[i] === v);
  if (starts(0x1f, 0x8b)) return 'gzip';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2';
  if (starts(0x5d, 0x00, 0x00)) return 'lzma';
  return undefined;
}

function inProcessOnly(): boolean {
  return process.env['KABI_PACKAGE_DECODER'] === 'js';
}

/** Compressed bytes: a range of a package file, or chunks from elsewhere. */
export type DecodeInput = { readonly source: ByteSource; readonly start: number; readonly length: number } | AsyncIterable<Uint8Array>;

export async function* decodeStream(format: PayloadCompression, input: DecodeInput, opts: DecodeOptions): AsyncGenerator<Uint8Array> {
  let total = 0;
  const inner = decoder(format, input, opts);
  for await (const chunk of inner) {
    total += chunk.length;
    if (total > opts.limit) {
      throw new KabiError('PACKAGE_FORMAT', `${opts.label} would exceed the ${opts.limit}-byte payload limit when decompressed`, { file: opts.file, offset: opts.offset });
    }
    opts.deadline.check(opts.offset);
    yield chunk;
  }
}

function decoder(format: PayloadCompression, from: DecodeInput, opts: DecodeOptions): AsyncIterable<Uint8Array> {
  // In-process decoders may hold on to input chunks: they get chunks of their own.
  const input = 'source' in from ? from.source.chunks(from.start, from.length) : from;
  switch (format) {
    case 'none':
      return input;
    case 'gzip':
      return nodeStream(input, zlib.createGunzip({ chunkSize: 256 * 1024 }), opts);
    case 'xz':
      if (!inProcessOnly() && findTool('xz')) return program('xz', ['-dc', '-T0', '-q'], from, opts);
      return wasmXz(input, opts);
    case 'zstd':
      return zstd(input, opts);
    case 'bzip2':
      return program('bzip2', ['-dc'], from, opts);
    case 'lzma':
      return program('xz', ['--format=lzma', '-dc', '-q'], from, opts);
  }
}

function corrupt(opts: DecodeOptions, why: string, cause?: unknown): KabiError {
  return new KabiError('PACKAGE_FORMAT', `${opts.label} is corrupt: ${why}`, { file: opts.file, offset: opts.offset, cause });
}

async function* nodeStream(input: AsyncIterable<Uint8Array>, t: zlib.Gunzip, opts: DecodeOptions): AsyncGenerator<Uint8Array> {
  const src = Readable.from(input, { objectMode: false });
  src.on('error', (e) => t.destroy(e));
  src.pipe(t);
  try {
    for await (const c of t) yield c as Buffer;
  } catch (e) {
    if (e instanceof KabiError) throw e;
    throw corrupt(opts, (e as Error).message, e);
  } finally {
    src.destroy();
    t.destroy();
  }
}

/**
 * Pipe the input through a decompressing program. The program is killed when the reader stops
 * early, fails, or the deadline passes; its own stderr is the best description of bad data.
 */
async function* program(tool: string, args: string[], from: DecodeInput, opts: DecodeOptions): AsyncGenerator<Uint8Array> {
  if (!findTool(tool)) throw new KabiError('UNSUPPORTED_COMPRESSION', `${opts.label} needs the '${tool}' program to decompress, which is not installed`, { file: opts.file, offset: opts.offset });
  const child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const spawnError = new Promise<never>((_, reject) => child.on('error', reject));
  spawnError.catch(() => undefined);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.deadline.remainingMs);
  // A program that stops reading (bad data, killed) makes the writes fail with EPIPE; its exit status says why.
  child.stdin.on('error', () => undefined);
  // A range of the package is read into two buffers in turn: each is written out before it is reused.
  const input = 'source' in from ? from.source.chunks(from.start, from.length, true) : from;
  const feeding = (async () => {
    let previous: Promise<unknown> = Promise.resolve();
    try {
      for await (const c of input) {
        const written = new Promise<void>((resolve) => child.stdin.write(c, () => resolve()));
        await Promise.race([previous, exited]);
        previous = written;
        if (child.exitCode !== null || child.signalCode !== null) break;
      }
      await Promise.race([previous, exited]);
    } finally {
      child.stdin.end();
    }
  })();
  feeding.catch(() => undefined);
  let finished = false;
  try {
    for await (const c of child.stdout) yield c as Buffer;
    await feeding;
    const { code, signal } = await Promise.race([exited, spawnError]);
    if (timedOut) throw opts.deadline.error(opts.offset);
    if (code !== 0) {
      const why = stderr.split('\n').map((l) => l.trim()).filter(Boolean).join('; ') || (signal ? `${tool} killed by ${signal}` : `${tool} exit status ${String(code)}`);
      throw corrupt(opts, `${tool}: ${why}`);
    }
    finished = true;
  } catch (e) {
    if (timedOut) throw opts.deadline.error(opts.offset);
    throw e;
  } finally {
    clearTimeout(timer);
    if (!finished && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

async function* wasmXz(input: AsyncIterable<Uint8Array>, opts: DecodeOptions): AsyncGenerator<Uint8Array> {
  const m = xzDecompress();
  if (!m) throw new KabiError('UNSUPPORTED_COMPRESSION', `${opts.label} needs xz(1) or the xz-decompress package, and neither is available`, { file: opts.file, offset: opts.offset });
  const source = Readable.toWeb(Readable.from(input, { objectMode: false })) as ReadableStream<Uint8Array>;
  const reader = new m.XzReadableStream(source).getReader();
  let done = false;
  try {
    for (;;) {
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch (e) {
        throw corrupt(opts, (e as Error).message ?? String(e), e);
      }
      if (r.done) break;
      // Copied: the WASM decoder's chunks may be views into its own memory.
      yield r.value.slice();
    }
    done = true;
  } finally {
    if (!done) await reader.cancel().catch(() => undefined);
  }
}

const ZSTD_OUT = 1 << 20;

async function* zstd(input: AsyncIterable<Uint8Array>, opts: DecodeOptions): AsyncGenerator<Uint8Array> {
  const z = zstdNapi();
  if (!z) {
    yield* fzstdStream(input, opts);
    return;
  }
  // libzstd refuses windows above 128 MiB (windowLogMax 27) unless told otherwise: a memory bound.
  const dctx = new z.DCtx();
  let lastRet = 0;
  let any = false;
  for await (const chunk of input) {
    any = true;
    let pos = 0;
    for (;;) {
      const out = Buffer.allocUnsafe(ZSTD_OUT);
      let ret: number, produced: number, consumed: number;
      try {
        [ret, produced, consumed] = dctx.decompressStream(out, chunk.subarray(pos));
      } catch (e) {
        throw corrupt(opts, (e as Error).message, e);
      }
      pos += consumed;
      lastRet = ret;
      if (produced > 0) yield out.subarray(0, produced);
      // More output may be waiting whenever the buffer was filled.
      if (pos >= chunk.length && produced < out.length) break;
    }
  }
  if (!any || lastRet !== 0) throw corrupt(opts, 'zstd frame ends early');
}

async function* fzstdStream(input: AsyncIterable<Uint8Array>, opts: DecodeOptions): AsyncGenerator<Uint8Array> {
  const { Decompress } = await import('fzstd');
  const queue: Uint8Array[] = [];
  const d = new Decompress((chunk) => {
    if (chunk.length > 0) queue.push(chunk.slice());
  });
  let prev: Uint8Array | undefined;
  const push = (c: Uint8Array, final: boolean) => {
    try {
      d.push(c, final);
    } catch (e) {
      throw corrupt(opts, (e as Error).message ?? String(e), e);
    }
  };
  for await (const chunk of input) {
    if (prev) push(prev, false);
    prev = chunk;
    while (queue.length > 0) yield queue.shift()!;
  }
  push(prev ?? new Uint8Array(0), true);
  while (queue.length > 0) yield queue.shift()!;
}
