import { createRequire } from 'node:module';

/*
 * The native/WASM packages are optional (a distro build may lack a compiler or the prebuilt
 * binary), and importing each costs 9-13 ms, which `kabi --help` should not pay. So they are
 * required on first use, and every caller has a fallback for `undefined`.
 *
 * Only the members kabi calls are typed here, so the project still typechecks when an
 * optional package is not installed.
 */

export type NativeName = 'zstd-napi' | 'lz4-napi' | 'xz-decompress';

/** [returnValue, dstProduced, srcConsumed] */
type StreamResult = [number, number, number];

export interface ZstdDCtx {
  decompress(dst: Uint8Array, src: Uint8Array): number;
  decompressStream(dst: Uint8Array, src: Uint8Array): StreamResult;
}
export interface ZstdCCtx {
  setParameter(param: number, value: number): void;
  compress2(dst: Uint8Array, src: Uint8Array): number;
}
export interface ZstdBinding {
  DCtx: new () => ZstdDCtx;
  CCtx: new () => ZstdCCtx;
  CParameter: Record<'compressionLevel' | 'checksumFlag' | 'nbWorkers' | 'windowLog', number>;
  compressBound(size: number): number;
  versionString(): string;
}

export interface Lz4Napi {
  decompressFrameSync(data: Uint8Array): Uint8Array;
  compressSync(data: Uint8Array): Uint8Array;
}

export interface XzDecompressModule {
  XzReadableStream: (new (input: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>) & XzWasmStatics;
}

/**
 * What xz-decompress keeps on its stream class (not its documented API): the WASM instance
 * of XZ Embedded with its C glue, which xz.ts drives synchronously when it looks like this.
 */
export interface XzWasmStatics {
  _getModuleInstance?: () => Promise<void>;
  _moduleInstance?: { exports: Partial<XzWasmExports> };
}

export interface XzWasmExports {
  /** A WebAssembly.Memory: its buffer is replaced when it grows. */
  memory: { readonly buffer: ArrayBuffer };
  /** A decoder context: [u32 buffer size, in, in_pos, in_size, out, out_pos, out_size, …] (wasm32). */
  create_context(): number;
  destroy_context(ctx: number): void;
  supply_input(ctx: number, length: number): void;
  /** xz_dec_run into the emptied output buffer: XZ Embedded's enum xz_ret. */
  get_next_output(ctx: number): number;
}

const require = createRequire(import.meta.url);

/** `undefined` = not tried yet; `null` = tried and failed. */
const cache: { [K in NativeName]?: unknown } = {};
const loadErrors: { [K in NativeName]?: string } = {};

function load<T>(name: NativeName, specifier: string, check: (m: unknown) => m is T): T | undefined {
  if (isNativeDisabled(name)) return undefined;
  const hit = cache[name];
  if (hit !== undefined) return hit === null ? undefined : (hit as T);
  try {
    const m: unknown = require(specifier);
    if (!check(m)) throw new Error(`${specifier} does not have the expected API`);
    cache[name] = m;
    return m;
  } catch (e) {
    cache[name] = null;
    loadErrors[name] = e instanceof Error ? e.message : String(e);
    return undefined;
  }
}

function hasFunctions(m: unknown, names: readonly string[]): boolean {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  return names.every((n) => typeof r[n] === 'function');
}

/** The raw binding: zstd-napi's top-level module pulls in its stream classes we do not use. */
export function zstdNapi(): ZstdBinding | undefined {
  return load('zstd-napi', 'zstd-napi/binding', (m): m is ZstdBinding =>
    hasFunctions(m, ['DCtx', 'CCtx', 'compressBound']),
  );
}

export function lz4Napi(): Lz4Napi | undefined {
  return load('lz4-napi', 'lz4-napi', (m): m is Lz4Napi => hasFunctions(m, ['decompressFrameSync', 'compressSync']));
}

/** A named ESM import of this package fails ("not a constructor"); require works. */
export function xzDecompress(): XzDecompressModule | undefined {
  return load('xz-decompress', 'xz-decompress', (m): m is XzDecompressModule => hasFunctions(m, ['XzReadableStream']));
}

/**
 * KABI_DISABLE_NATIVE=zstd-napi,lz4-napi,xz-decompress (or "all") forces the fallbacks. Read on
 * every call so a test can flip it per case.
 */
export function isNativeDisabled(name: NativeName): boolean {
  const raw = process.env['KABI_DISABLE_NATIVE'];
  if (raw === undefined || raw.trim() === '') return false;
  const items = raw.split(',').map((s) => s.trim().toLowerCase());
  return items.includes('all') || items.includes(name);
}

/** Why a package is not in use, for diagnostics. */
export function nativeStatus(name: NativeName): string | undefined {
  if (isNativeDisabled(name)) return 'disabled by KABI_DISABLE_NATIVE';
  const err = loadErrors[name];
  return err === undefined ? undefined : `failed to load: ${err.split('\n')[0] ?? ''}`;
}
