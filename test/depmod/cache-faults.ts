import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { cacheImage } from '../../src/depmod/cache-file.js';
import { formatDepmodMessage, runDepmod, type DepmodChange, type DepmodOptions } from '../../src/depmod/index.js';
import { KVER, mod, MODDIR, outputDiff, Tree, type Run } from './fixture.js';

// Shared by the tests of what a damaged, hostile or outdated cache (or what it vouches for)
// must not do: every run gives what a run with no cache gives.

export const sys = (rel: string) => `/${MODDIR}/${rel}`;

/** Eight modules in a chain of exports, in modules.order. */
export function chainTree(trees: Tree[]): Tree {
  const t = new Tree();
  trees.push(t);
  const order: string[] = [];
  for (let i = 0; i < 8; i++) {
    const rel = `kernel/drivers/k${i}.ko`;
    t.write(rel, mod(`k${i}`, { exports: [`k${i}_fn`], needs: i > 0 ? [`k${i - 1}_fn`] : [], aliases: [`k-alias-${i}`] }));
    order.push(rel);
  }
  return t.write('modules.order', order.join('\n') + '\n').write('modules.builtin', '');
}

export function asRun(r: Awaited<ReturnType<typeof runDepmod>>): Run {
  return { status: r.status, stdout: r.stdout, stderr: r.messages.map(formatDepmodMessage).join(''), outputs: new Map(r.files.map((f) => [f.name, Buffer.from(f.data)])) };
}

export async function fullRun(t: Tree, opts: Partial<DepmodOptions> = {}): Promise<Run> {
  return asRun(await runDepmod({ root: t.root, release: KVER, configRoot: '/', cache: false, write: false, ...opts }));
}

export async function update(t: Tree, changes: DepmodChange[] | undefined, opts: Partial<DepmodOptions> = {}) {
  const r = await runDepmod({ root: t.root, release: KVER, configRoot: '/', ...(changes ? { changes } : {}), ...opts });
  return { r, run: asRun(r) };
}

export async function expectSameAsFull(t: Tree, run: Run, where = '', opts: Partial<DepmodOptions> = {}): Promise<void> {
  const f = await fullRun(t, opts);
  expect(run.status, where).toBe(f.status);
  expect(outputDiff(f, run), where).toEqual([]);
  expect(run.stderr, where).toBe(f.stderr);
}

/** The cache file taken apart: the summaries' section payload and the last state's. */
export function cacheParts(t: Tree): { summaries: Buffer; state: Buffer | undefined } {
  const b = readFileSync(t.cachePath());
  const len = b.readUInt32LE(4);
  const count = b.readUInt32LE(16);
  const tableLen = Math.ceil((4 + 4 * count) / 8) * 8;
  const summaries = Buffer.from(b.subarray(16 + tableLen, 16 + len));
  let state: Buffer | undefined;
  for (let p = 16 + Math.ceil(len / 8) * 8; p + 16 <= b.length; ) {
    const l = b.readUInt32LE(p + 4);
    if (b.readUInt32LE(p) === 3) state = Buffer.from(b.subarray(p + 16, p + 16 + l));
    p += 16 + Math.ceil(l / 8) * 8;
  }
  return { summaries, state };
}

/** Where each section of a section payload (sections.ts) is: name → [offset, length]. */
export function sections(payload: Buffer): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>();
  const count = payload.readUInt32LE(4);
  for (let i = 0; i < count; i++) out.set(payload.readUInt32LE(8 + 12 * i), [payload.readUInt32LE(12 + 12 * i), payload.readUInt32LE(16 + 12 * i)]);
  return out;
}

/** A cache with the given payloads, its checksums all correct: damage no checksum can tell. */
export function writeCache(t: Tree, summaries: Uint8Array, state: Uint8Array | undefined): void {
  writeFileSync(t.cachePath(), cacheImage(summaries, state));
}

export const otherKernel = (t: Tree, rel: string) => join(t.root, 'lib/modules/6.1.0-98-amd64', rel);
