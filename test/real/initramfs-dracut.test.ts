// SPDX-License-Identifier: GPL-2.0-or-later
//
// Real dracut images of Debian kernels: every compression dracut offers, with and without an
// early microcode cpio. lsinitrd, lsinitramfs and unmkinitramfs are the oracles for reading;
// a dracut rebuild after the same change is the oracle for what a native update must produce.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageNeedsUpdate } from '../../src/initramfs/check.js';
import { updateImage } from '../../src/initramfs/update.js';
import { buildDracut, builtFor, depmod, installBuilt, prepareRoot, type DracutCompression } from '../initramfs/generator-env.js';
import { cleanupTemps, readBytes, tempDir } from '../initramfs/helpers.js';
import { expectListsMatch, expectModuleBytes, expectRoundTrip, expectSameModuleTree, modulesDep, readImage, unpack } from '../initramfs/real-checks.js';
import { walkLegacy } from '../../native-bindings/lz4-legacy.js';
import { walkXzStream } from '../../native-bindings/xz-stream.js';
import { generatorKernels } from './corpus.js';

afterAll(cleanupTemps);

const { K61, K61_OTHER, K612, K612_OTHER } = generatorKernels();

const FORMATS: DracutCompression[] = ['zstd', 'xz', 'gzip', 'lz4', 'bzip2', 'lzma', 'lzo', 'none'];

describe.each(FORMATS)('dracut --%s image of a Debian 6.1 kernel', (compression) => {
  it.each([true, false])('early microcode %s: listed as lsinitrd lists it, current, natively updated and still read by the tools', async (early) => {
    const g = prepareRoot(K61, K61_OTHER);
    const img = join(g.root, 'boot', `initramfs-${g.release}.img`);
    buildDracut(g, compression, early, img);
    const image = await readImage(img);
    expect(image.segments.map((s) => s.compression ?? 'none')).toEqual([...(early ? ['none'] : []), compression]);
    const compressed = compression !== 'none';
    // lsinitramfs cannot read an image without a compressed part (its xcpio finds nothing to unpack).
    expectListsMatch(img, image, { lsinitramfs: compressed });
    await expectRoundTrip(image);

    // dracut strips the debug info of unsigned modules: still "current".
    const fresh = await imageNeedsUpdate({ root: g.root, release: g.release });
    expect(fresh.changes).toEqual([]);

    const newMinimal = installBuilt(g, g.release, 'kabi_minimal', builtFor(K61_OTHER, 'kabi_minimal'));
    depmod(g);
    const check = await imageNeedsUpdate({ root: g.root, release: g.release });
    expect(check.changes.map((c) => [c.kind, c.name])).toEqual([['changed', 'kabi_minimal']]);
    const before = readBytes(img);
    const r = await updateImage({ root: g.root, release: g.release, level: 1 });
    expect(r.updated).toBe(true);

    const after = await readImage(img);
    expect(after.segments.map((s) => s.compression)).toEqual(image.segments.map((s) => s.compression));
    if (early) expect(Buffer.from(after.bytes.subarray(0, image.segments[1]!.offset)).equals(Buffer.from(before.subarray(0, image.segments[1]!.offset)))).toBe(true);
    expectListsMatch(img, after, { lsinitramfs: compressed });
    if (compressed) {
      const dir = unpack(img, early);
      await expectModuleBytes(readBytes(join(dir, 'usr/lib/modules', g.release, 'extra/kabi_minimal.ko')), readBytes(newMinimal), true);
      expect(modulesDep(dir, g.release)).toMatch(/^extra\/kabi_minimal\.ko:$/m);
    } else {
      const text = new TextDecoder();
      const { ImageTree } = await import('../../src/initramfs/image-tree.js');
      const tree = new ImageTree(after);
      await expectModuleBytes(tree.readFile(`usr/lib/modules/${g.release}/extra/kabi_minimal.ko`)!, readBytes(newMinimal), true);
      expect(text.decode(tree.readFile(`usr/lib/modules/${g.release}/modules.dep`))).toMatch(/^extra\/kabi_minimal\.ko:$/m);
    }
    expect((await imageNeedsUpdate({ root: g.root, release: g.release })).needsUpdate).toBe(false);
  });
});

describe('native update against dracut -f making the same change', () => {
  it('6.1: a replaced module and a re-pointed weak-updates target give dracut\'s module tree and modules.dep', async () => {
    const g = prepareRoot(K61, K61_OTHER);
    const img = join(g.root, 'boot', `initramfs-${g.release}.img`);
    buildDracut(g, 'zstd', true, img);
    // The weak-updates link's target is replaced by another build; kabi_minimal too.
    installBuilt(g, g.other, 'kabi_consumer', builtFor(K61, 'kabi_consumer'));
    installBuilt(g, g.release, 'kabi_minimal', builtFor(K61_OTHER, 'kabi_minimal'));
    depmod(g);
    const check = await imageNeedsUpdate({ root: g.root, release: g.release });
    expect(check.changes.map((c) => [c.kind, c.name])).toEqual([
      ['changed', 'kabi_consumer'],
      ['changed', 'kabi_minimal'],
    ]);
    await updateImage({ root: g.root, release: g.release, level: 3 });
    const ours = await readImage(img);
    const rebuilt = join(tempDir(), 'dracut.img');
    buildDracut(g, 'zstd', true, rebuilt);
    await expectSameModuleTree(ours, await readImage(rebuilt), false);
    const dir = unpack(img, true);
    expect(modulesDep(dir, g.release)).toMatch(/^weak-updates\/kabi_consumer\.ko: extra\/kabi_provider\.ko$/m);
  });

  it('6.12 (.ko.xz modules): the new module stays compressed at its .ko.xz path, as dracut keeps it', async () => {
    const g = prepareRoot(K612, K612_OTHER);
    const img = join(g.root, 'boot', `initramfs-${g.release}.img`);
    buildDracut(g, 'xz', false, img);
    expectListsMatch(img, await readImage(img), { lsinitramfs: true });
    expect((await imageNeedsUpdate({ root: g.root, release: g.release })).needsUpdate).toBe(false);
    const installed = installBuilt(g, g.release, 'kabi_minimal', builtFor(K612_OTHER, 'kabi_minimal'));
    depmod(g);
    await updateImage({ root: g.root, release: g.release, level: 1 });
    const dir = unpack(img, false);
    expect(readFileSync(join(dir, 'usr/lib/modules', g.release, 'extra/kabi_minimal.ko.xz')).equals(readFileSync(installed))).toBe(true);
    expect(modulesDep(dir, g.release)).toMatch(/^extra\/kabi_minimal\.ko\.xz:$/m);
    const rebuilt = join(tempDir(), 'dracut.img');
    buildDracut(g, 'xz', false, rebuilt);
    await expectSameModuleTree(await readImage(img), await readImage(rebuilt), false);
  });
});

/**
 * A dracut image of `g` at `img` whose compressed segment holds the same cpio, encoded again
 * by `encode` (cut into smaller blocks or chunks than the test image would have).
 */
async function recutDracutImage(g: ReturnType<typeof prepareRoot>, img: string, format: DracutCompression, encode: (cpio: Buffer) => Buffer | Buffer[]): Promise<void> {
  buildDracut(g, format, true, img);
  const built = await readImage(img);
  const seg = built.segments[1]!;
  const cpio = execFileSync(format, ['-dc'], { input: built.bytes.subarray(seg.offset, seg.end), maxBuffer: 1 << 30 });
  writeFileSync(img, Buffer.concat([built.bytes.subarray(0, seg.offset), ...[encode(cpio)].flat()]));
}

/** An image's compressed segment after dracut's early cpio, as it is on disk. */
const mainSegment = (im: Awaited<ReturnType<typeof readImage>>) => im.bytes.subarray(im.segments[1]!.offset, im.segments[1]!.end);

/**
 * What a rewritten image must agree on with the tools and the generator: lsinitrd and
 * lsinitramfs list it, the module it holds is the installed one (stripped as dracut strips), a
 * dracut rebuild holds the same module tree, and it is current.
 */
async function expectAgreesWithDracut(g: ReturnType<typeof prepareRoot>, img: string, after: Awaited<ReturnType<typeof readImage>>, installed: string, format: DracutCompression): Promise<void> {
  expectListsMatch(img, after, { lsinitramfs: true });
  const dir = unpack(img, true);
  await expectModuleBytes(readBytes(join(dir, 'usr/lib/modules', g.release, 'extra/kabi_minimal.ko')), readBytes(installed), true);
  const rebuilt = join(tempDir(), 'dracut.img');
  buildDracut(g, format, true, rebuilt);
  await expectSameModuleTree(after, await readImage(rebuilt), false);
  expect((await imageNeedsUpdate({ root: g.root, release: g.release })).needsUpdate).toBe(false);
}

describe('xz images in blocks: what the change did not reach is kept', () => {
  // dracut's xz -T0 cuts an image into 3 MiB blocks; this test's image is one block, so it is
  // cut the same way at 256 KiB (the content is dracut's, byte for byte), CRC32 as dracut
  // writes it and CRC64 as plain xz does.
  it.each(['crc32', 'crc64'])('%s: two updates in a row keep the untouched blocks; xz -t, lsinitrd, lsinitramfs and a dracut rebuild agree', async (check) => {
    const g = prepareRoot(K61, K61_OTHER);
    const img = join(g.root, 'boot', `initramfs-${g.release}.img`);
    await recutDracutImage(g, img, 'xz', (cpio) => execFileSync('xz', [`--check=${check}`, '--lzma2=dict=1MiB', '--block-size=262144', '-T1', '-c'], { input: cpio, maxBuffer: 1 << 30 }));
    const blocks = walkXzStream(mainSegment(await readImage(img)), 0, { file: img, base: 0 }).blocks;
    expect(blocks).toBeGreaterThan(4);
    expect((await imageNeedsUpdate({ root: g.root, release: g.release })).changes).toEqual([]);

    for (const [round, build] of [[1, builtFor(K61_OTHER, 'kabi_minimal')], [2, builtFor(K61, 'kabi_minimal')]] as const) {
      const installed = installBuilt(g, g.release, 'kabi_minimal', build);
      depmod(g);
      const r = await updateImage({ root: g.root, release: g.release });
      const kept = r.segmentsRewritten[0]!.blocks!;
      expect(kept.kept, `round ${round}`).toBeGreaterThan(0);
      const after = await readImage(img);
      execFileSync('xz', ['-t'], { input: mainSegment(after) });
      expect(walkXzStream(mainSegment(after), 0, { file: img, base: 0 }).checkType).toBe(check === 'crc32' ? 1 : 4);
      await expectAgreesWithDracut(g, img, after, installed, 'xz');
    }
  });
});

describe('legacy lz4 images in several chunks: what the change did not reach is kept', () => {
  // lz4 -l writes 8 MiB chunks, more than this test's image holds; it is cut into 256 KiB
  // pieces, each compressed by lz4 -l and the streams concatenated (the kernel and lz4 -d skip
  // the repeated magic), so the content is dracut's, byte for byte, in 9 or more chunks.
  it('an update keeps the untouched chunks; lsinitrd, lsinitramfs, unmkinitramfs and a dracut rebuild agree', async () => {
    const g = prepareRoot(K61, K61_OTHER);
    const img = join(g.root, 'boot', `initramfs-${g.release}.img`);
    await recutDracutImage(g, img, 'lz4', (cpio) => {
      const pieces: Buffer[] = [];
      for (let at = 0; at < cpio.length; at += 262144) pieces.push(execFileSync('lz4', ['-l', '-9', '-c', '-q'], { input: cpio.subarray(at, at + 262144) }));
      return pieces;
    });
    expect(walkLegacy(mainSegment(await readImage(img)), 0, { file: img, base: 0 }).chunks.length).toBeGreaterThan(8);
    expect((await imageNeedsUpdate({ root: g.root, release: g.release })).changes).toEqual([]);

    const installed = installBuilt(g, g.release, 'kabi_minimal', builtFor(K61_OTHER, 'kabi_minimal'));
    depmod(g);
    const r = await updateImage({ root: g.root, release: g.release });
    expect(r.segmentsRewritten[0]!.blocks!.kept).toBeGreaterThan(0);
    const after = await readImage(img);
    expect(execFileSync('lz4', ['-dc'], { input: mainSegment(after), maxBuffer: 1 << 30 }).length).toBe(after.segments[1]!.decodedSize);
    await expectAgreesWithDracut(g, img, after, installed, 'lz4');
  });
});
