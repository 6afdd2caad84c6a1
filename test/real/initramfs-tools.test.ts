// SPDX-License-Identifier: GPL-2.0-or-later
//
// Real initramfs-tools (mkinitramfs) images of Debian kernels: every compression it offers,
// with and without an early microcode cpio prepended by a hook. lsinitramfs, lsinitrd and
// unmkinitramfs are the oracles for reading; a mkinitramfs rebuild after the same change is the
// oracle for what a native update must produce (initramfs-tools neither strips modules nor
// keeps them compressed, so module bytes must match exactly).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Compression } from '../../native-bindings/index.js';
import { imageNeedsUpdate } from '../../src/initramfs/check.js';
import { moduleContents } from '../../src/initramfs/module-compare.js';
import { updateImage } from '../../src/initramfs/update.js';
import { buildInitramfsTools, builtFor, depmod, installBuilt, prepareRoot, type ToolsCompression } from '../initramfs/generator-env.js';
import { cleanupTemps, readBytes, tempDir } from '../initramfs/helpers.js';
import { expectListsMatch, expectModuleBytes, expectRoundTrip, expectSameModuleTree, modulesDep, readImage, unpack } from '../initramfs/real-checks.js';
import { generatorKernels } from './corpus.js';

afterAll(cleanupTemps);

const { K61, K61_OTHER, K612, K612_OTHER } = generatorKernels();

const FORMATS: [ToolsCompression, Compression][] = [
  ['zstd', 'zstd'],
  ['xz', 'xz'],
  ['gzip', 'gzip'],
  ['lz4', 'lz4'],
  ['bzip2', 'bzip2'],
  ['lzma', 'lzma'],
  ['lzop', 'lzo'],
];

describe.each(FORMATS)('mkinitramfs COMPRESS=%s image of a Debian 6.1 kernel', (setting, format) => {
  it.each([true, false])('early microcode %s: listed as lsinitramfs lists it, current, natively updated and still read by the tools', async (early) => {
    const g = prepareRoot(K61, K61_OTHER);
    const img = join(g.root, 'boot', `initrd.img-${g.release}`);
    buildInitramfsTools(g, setting, early, img);
    const image = await readImage(img);
    expect(image.segments.map((s) => s.compression ?? 'none')).toEqual([...(early ? ['none'] : []), format]);
    expectListsMatch(img, image, { lsinitramfs: true });
    await expectRoundTrip(image);
    expect((await imageNeedsUpdate({ root: g.root, release: g.release })).changes).toEqual([]);

    const newMinimal = installBuilt(g, g.release, 'kabi_minimal', builtFor(K61_OTHER, 'kabi_minimal'));
    depmod(g);
    expect((await imageNeedsUpdate({ root: g.root, release: g.release })).changes.map((c) => [c.kind, c.name])).toEqual([['changed', 'kabi_minimal']]);
    const before = readBytes(img);
    await updateImage({ root: g.root, release: g.release, level: 1 });

    const after = await readImage(img);
    expect(after.segments.map((s) => s.compression)).toEqual(image.segments.map((s) => s.compression));
    if (early) expect(Buffer.from(after.bytes.subarray(0, image.segments[1]!.offset)).equals(Buffer.from(before.subarray(0, image.segments[1]!.offset)))).toBe(true);
    expectListsMatch(img, after, { lsinitramfs: true });
    const dir = unpack(img, early);
    await expectModuleBytes(readBytes(join(dir, 'usr/lib/modules', g.release, 'extra/kabi_minimal.ko')), readBytes(newMinimal), true);
    expect(modulesDep(dir, g.release)).toMatch(/^extra\/kabi_minimal\.ko:$/m);
    expect((await imageNeedsUpdate({ root: g.root, release: g.release })).needsUpdate).toBe(false);
  });
});

describe('native update against mkinitramfs making the same change', () => {
  it('6.1: a replaced module and a re-pointed weak-updates target give the generator\'s module tree and modules.dep', async () => {
    const g = prepareRoot(K61, K61_OTHER);
    const img = join(g.root, 'boot', `initrd.img-${g.release}`);
    buildInitramfsTools(g, 'zstd', true, img);
    installBuilt(g, g.other, 'kabi_consumer', builtFor(K61, 'kabi_consumer'));
    installBuilt(g, g.release, 'kabi_minimal', builtFor(K61_OTHER, 'kabi_minimal'));
    depmod(g);
    await updateImage({ root: g.root, release: g.release, level: 3 });
    const rebuilt = join(tempDir(), 'initrd.img');
    buildInitramfsTools(g, 'zstd', true, rebuilt);
    await expectSameModuleTree(await readImage(img), await readImage(rebuilt), true);
    expect(modulesDep(unpack(img, true), g.release)).toMatch(/^weak-updates\/kabi_consumer\.ko: extra\/kabi_provider\.ko$/m);
  });

  it('6.12 (.ko.xz modules): the new module is stored unpacked as .ko, as mkinitramfs stores it', async () => {
    const g = prepareRoot(K612, K612_OTHER);
    const img = join(g.root, 'boot', `initrd.img-${g.release}`);
    buildInitramfsTools(g, 'zstd', false, img);
    expect((await imageNeedsUpdate({ root: g.root, release: g.release })).needsUpdate).toBe(false);
    const installed = installBuilt(g, g.release, 'kabi_minimal', builtFor(K612_OTHER, 'kabi_minimal'));
    depmod(g);
    const check = await imageNeedsUpdate({ root: g.root, release: g.release });
    expect(check.changes.map((c) => [c.kind, c.imagePath])).toEqual([['changed', `usr/lib/modules/${g.release}/extra/kabi_minimal.ko`]]);
    await updateImage({ root: g.root, release: g.release, level: 1 });
    const dir = unpack(img, false);
    expect(readFileSync(join(dir, 'usr/lib/modules', g.release, 'extra/kabi_minimal.ko')).equals(Buffer.from(await moduleContents(readBytes(installed))))).toBe(true);
    expect(modulesDep(dir, g.release)).toMatch(/^extra\/kabi_minimal\.ko:$/m);
    const rebuilt = join(tempDir(), 'initrd.img');
    buildInitramfsTools(g, 'zstd', false, rebuilt);
    await expectSameModuleTree(await readImage(img), await readImage(rebuilt), true);
  });
});
