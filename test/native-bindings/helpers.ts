import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { KabiError } from '../../src/errors.js';

/** Runs a real compressor/decompressor as the oracle. Throws with its stderr on failure. */
export function tool(cmd: string, args: string[], input: Uint8Array): Buffer {
  const r = spawnSync(cmd, args, { input, maxBuffer: 256 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.status)}: ${r.stderr.toString()}`);
  return r.stdout;
}

/** Same, but returns status and stderr instead of throwing. */
export function toolResult(cmd: string, args: string[], input: Uint8Array): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(cmd, args, { input, maxBuffer: 256 << 20 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Deterministic bytes (xorshift32), so failures reproduce. */
export function randomBytes(n: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * Something shaped like module/initramfs content: incompressible stretches (code, signatures)
 * between repetitive text (symbol tables, strings) and runs of zeros (padding, .bss).
 */
export function realisticPayload(size: number, seed = 1): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  let i = 0;
  while (total < size) {
    const kind = i % 4;
    let part: Buffer;
    if (kind === 0) part = randomBytes(20_000 + ((i * 7919) % 30_000), seed + i);
    else if (kind === 1) part = Buffer.from(`__ksymtab_symbol_${i} EXPORT_SYMBOL_GPL vermagic=6.1.0-${i % 7}-amd64 SMP preempt mod_unload modversions\n`.repeat(400));
    else if (kind === 2) part = Buffer.alloc(4096 * (1 + (i % 5)));
    else part = Buffer.from(randomBytes(16_000, seed * 31 + i).map((b) => b & 0x0f));
    parts.push(part);
    total += part.length;
    i++;
  }
  return Buffer.concat(parts).subarray(0, size);
}

/** Runs fn with KABI_DISABLE_NATIVE set (or unset), restoring the previous value. */
export async function withNative<T>(mode: 'native' | 'fallback', fn: () => Promise<T>): Promise<T> {
  const before = process.env['KABI_DISABLE_NATIVE'];
  if (mode === 'fallback') process.env['KABI_DISABLE_NATIVE'] = 'all';
  else delete process.env['KABI_DISABLE_NATIVE'];
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env['KABI_DISABLE_NATIVE'];
    else process.env['KABI_DISABLE_NATIVE'] = before;
  }
}

export const MODES = ['native', 'fallback'] as const;

/** Asserts a KabiError with the given code, and that the message names the file. */
export async function expectKabiError(p: Promise<unknown> | (() => unknown), code: string, file?: string): Promise<KabiError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a KabiError').toBeInstanceOf(KabiError);
  const k = err as KabiError;
  expect(k.code).toBe(code);
  if (file !== undefined) {
    expect(k.file).toBe(file);
    expect(k.message).toContain(file);
  }
  return k;
}

export function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export function eq(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Byte equality with a readable failure (length, first differing offset) instead of a 2 MB diff. */
export function expectSame(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length, 'decoded length').toBe(expected.length);
  if (!eq(actual, expected)) {
    let i = 0;
    while (actual[i] === expected[i]) i++;
    expect.fail(`bytes differ first at offset ${i}`);
  }
}

/** Runs a tool on `bytes` saved to a temporary file (list modes such as `xz -l` refuse stdin). */
export function toolOnFile(cmd: string, args: string[], bytes: Uint8Array, suffix: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kabi-nb-'));
  try {
    const f = join(dir, `data${suffix}`);
    writeFileSync(f, bytes);
    return tool(cmd, [...args, f], Buffer.alloc(0)).toString();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
