import { KabiError } from '../src/errors.js';

export type Compression = 'gzip' | 'xz' | 'zstd' | 'lz4' | 'bzip2' | 'lzma' | 'lzo';

export const ALL_FORMATS: readonly Compression[] = ['gzip', 'xz', 'zstd', 'lz4', 'bzip2', 'lzma', 'lzo'];

export interface DecompressOptions {
  file?: string;
  /** Default 4 GiB - 1 (just under Node 20's largest Buffer); no module or initramfs comes close. */
  maxOutputBytes?: number;
  /** Wall-clock budget in ms (default 60 s): a decoder program is killed, an in-process decoder stopped between blocks. */
  timeoutMs?: number;
}

export interface CompressOptions {
  level?: number;
  file?: string;
}

export const DEFAULT_MAX_OUTPUT = 0xffff_ffff;
export const DEFAULT_TIMEOUT_MS = 60_000;

/** Where errors get attributed: the file name, and the absolute offset of the data in it. */
export interface Where {
  file: string | undefined;
  /** Offset of byte 0 of the bytes being decoded within the file (non-zero for initramfs segments). */
  base: number;
  /** performance.now() past which decoding stops (see checkDeadline), and the budget it came from. */
  deadline?: number;
  timeoutMs?: number;
}

export function corrupt(format: Compression, why: string, where: Where, relOffset?: number, cause?: unknown): KabiError {
  return new KabiError('COMPRESSION', `${format} data is corrupt: ${why}`, {
    file: where.file,
    offset: relOffset === undefined ? (where.base === 0 ? undefined : where.base) : where.base + relOffset,
    cause,
  });
}

const outputLimitErrors = new WeakSet<KabiError>();

export function tooLarge(format: Compression, limit: number, where: Where, relOffset?: number): KabiError {
  const at = where.base + (relOffset ?? 0);
  const e = new KabiError('COMPRESSION', `${format} data would exceed the output limit of ${limit} bytes when decompressed`, {
    file: where.file,
    offset: at === 0 ? undefined : at,
  });
  outputLimitErrors.add(e);
  return e;
}

/** Whether a decompression failed on maxOutputBytes (rather than on corrupt data), for callers that state their own limit. */
export function isOutputLimit(e: unknown): boolean {
  return e instanceof KabiError && outputLimitErrors.has(e);
}

export function tooSlow(format: Compression, ms: number, where: Where): KabiError {
  return new KabiError('LIMIT', `${format} decompression took longer than its ${ms / 1000} s limit`, { file: where.file, offset: where.base === 0 ? undefined : where.base });
}

/** Throws once the decompression has used up its wall-clock budget (checked between blocks of output). */
export function checkDeadline(format: Compression, where: Where): void {
  if (where.deadline !== undefined && performance.now() > where.deadline) throw tooSlow(format, where.timeoutMs ?? 0, where);
}

export function resolveTimeout(opts: DecompressOptions | undefined): number {
  const ms = opts?.timeoutMs;
  if (ms === undefined) return DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(ms) || ms <= 0) throw new KabiError('USAGE', `timeoutMs must be a positive number, got ${String(ms)}`);
  return ms;
}

export function resolveLimit(opts: DecompressOptions | undefined): number {
  const max = opts?.maxOutputBytes;
  if (max === undefined) return DEFAULT_MAX_OUTPUT;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new KabiError('USAGE', `maxOutputBytes must be a non-negative integer, got ${String(max)}`);
  }
  return max;
}

/**
 * Collects decoded pieces and enforces the output limit as they arrive, so a bomb is stopped
 * after at most one piece instead of after the whole output has been allocated.
 */
export class OutputSink {
  private readonly parts: Uint8Array[] = [];
  total = 0;

  constructor(
    readonly format: Compression,
    readonly limit: number,
    readonly where: Where,
    /** Where the compressed data starts, for the error message. */
    readonly at?: number,
  ) {}

  /** Bytes that may still be produced before the limit is hit. */
  get remaining(): number {
    return this.limit - this.total;
  }

  /** Throws before accepting `n` more bytes if that would pass the limit. */
  reserve(n: number): void {
    if (n > this.limit - this.total) throw this.exceeded();
  }

  exceeded(): KabiError {
    return tooLarge(this.format, this.limit, this.where, this.at);
  }

  push(part: Uint8Array): void {
    this.reserve(part.length);
    if (part.length === 0) return;
    this.parts.push(part);
    this.total += part.length;
  }

  result(): Uint8Array {
    return concat(this.parts, this.total);
  }
}

export function concat(parts: readonly Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const size = total ?? parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function readU32LE(b: Uint8Array, at: number): number {
  return ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16) | ((b[at + 3] as number) << 24)) >>> 0;
}

export function writeU32LE(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/** Four bytes holding `v`, little-endian (a size word, a magic). */
export function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  writeU32LE(b, 0, v);
  return b;
}

export function isAllZero(b: Uint8Array, from: number, to: number = b.length): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
