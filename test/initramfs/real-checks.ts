import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { decompressSegment } from '../../native-bindings/index.js';
import { modeString, readCpioStream, writeCpioArchive, writeCpioStream, type CpioStream } from '../../src/initramfs/cpio.js';
import { allEntries, parseImage, type InitramfsImage } from '../../src/initramfs/image.js';
import { ImageTree } from '../../src/initramfs/image-tree.js';
import { compareModules, moduleContents } from '../../src/initramfs/module-compare.js';
import { lsinitramfs, lsinitrd, readBytes, tempDir } from './helpers.js';

/* Assertions shared by the real-image tests: the distributions' own readers are the oracles. */

export async function readImage(file: string): Promise<InitramfsImage> {
  return parseImage(readBytes(file), { file });
}

/** kabi's member list equals lsinitrd's (names, permissions, sizes, link targets) and lsinitramfs' names. */
export function expectListsMatch(file: string, image: InitramfsImage, opts: { lsinitramfs: boolean }): void {
  const ours = [...allEntries(image)].map(({ entry: e }) => ({
    permissions: modeString(e.mode),
    size: e.data.length,
    name: e.name,
    target: (e.mode & 0o170000) === 0o120000 ? new TextDecoder().decode(e.data) : undefined,
  }));
  expect(ours).toEqual(lsinitrd(file));
  if (opts.lsinitramfs) expect(ours.map((e) => e.name)).toEqual(lsinitramfs(file));
}

/**
 * Real archives read → write: the same members with the same contents, and in fact the same
 * bytes (GNU cpio's output, trailer and block padding included).
 */
export async function expectRoundTrip(image: InitramfsImage): Promise<void> {
  for (const s of image.segments) {
    const original = s.compression === undefined ? image.bytes.subarray(s.offset, s.end) : (await decompressSegment(image.bytes, s.offset)).data;
    const again = s.compression === undefined ? writeCpioArchive(s.stream.archives[0]!) : writeCpioStream(s.stream);
    const members = (st: CpioStream) => st.archives.flatMap((a) => a.entries.map((e) => [e.name, e.mode, Buffer.from(e.data).toString('base64')]));
    expect(members(readCpioStream(again))).toEqual(members(s.stream));
    expect(Buffer.from(again).equals(Buffer.from(original))).toBe(true);
  }
}

/** unmkinitramfs unpacks the image; returns the directory holding the main archive's files. */
export function unpack(file: string, hasEarly: boolean): string {
  const dir = join(tempDir('kabi-unmk-'), 'x');
  execFileSync('unmkinitramfs', [file, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  const main = hasEarly ? join(dir, 'main') : dir;
  expect(existsSync(main)).toBe(true);
  return main;
}

/** The module file at `rel` in the unpacked image is `expected` (or, for dracut, a strip -g of it). */
export async function expectModuleBytes(actual: Uint8Array, expected: Uint8Array, exact: boolean): Promise<void> {
  const [a, b] = await Promise.all([moduleContents(actual), moduleContents(expected)]);
  if (exact) expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  else expect(compareModules(a, b)).not.toBe('different');
}

export function modulesDep(dir: string, release: string): string {
  return readFileSync(join(dir, 'usr/lib/modules', release, 'modules.dep'), 'utf8');
}

/** Module files, links and depmod outputs under usr/lib/modules: what the generator and kabi must agree on. */
export async function moduleTreeOf(image: InitramfsImage): Promise<Map<string, { kind: string; data: Uint8Array }>> {
  const tree = new ImageTree(image);
  const out = new Map<string, { kind: string; data: Uint8Array }>();
  for (const n of tree.walk('usr/lib/modules')) if (n.kind !== 'dir') out.set(n.path, { kind: n.kind, data: n.content.data });
  return out;
}

/**
 * kabi's rewritten image and the generator's rebuild hold the same module files at the same
 * paths, the same links, and the same modules.dep (other depmod outputs may order entries
 * differently between runs only if depmod does; they are compared too).
 */
export async function expectSameModuleTree(ours: InitramfsImage, generated: InitramfsImage, exactModules: boolean): Promise<void> {
  const a = await moduleTreeOf(ours);
  const b = await moduleTreeOf(generated);
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [path, x] of a) {
    const y = b.get(path)!;
    expect(x.kind, path).toBe(y.kind);
    if (x.kind === 'symlink') expect(new TextDecoder().decode(x.data), path).toBe(new TextDecoder().decode(y.data));
    else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(path)) await expectModuleBytes(x.data, y.data, exactModules);
    else if (/\/modules\.(dep|alias|symbols|softdep|devname)$/.test(path)) expect(new TextDecoder().decode(x.data), path).toBe(new TextDecoder().decode(y.data));
  }
}
