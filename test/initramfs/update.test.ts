import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, rmSync, statSync, symlinkSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Compression } from '../../native-bindings/index.js';
import { nodeFs, type KabiFs } from '../../src/fs.js';
import { imageNeedsUpdate } from '../../src/initramfs/check.js';
import { kindOf } from '../../src/initramfs/cpio.js';
import { systemDepmod, type DepmodRunner } from '../../src/initramfs/depmod-refresh.js';
import { allEntries, parseImage } from '../../src/initramfs/image.js';
import { ImageTree } from '../../src/initramfs/image-tree.js';
import { refreshInitramfs } from '../../src/initramfs/refresh.js';
import { updateImage } from '../../src/initramfs/update.js';
import type { Runner } from '../../src/util/run.js';
import { cleanupTemps, errorOf, lsinitramfs, lsinitrd, readBytes, tempDir } from './helpers.js';
import { beta, delta, gamma, K, K2, K3, makeImageSystem, type ImageSystem } from './image-system.js';

afterAll(cleanupTemps);

const dec = new TextDecoder();
const MD = `usr/lib/modules/${K}`;

async function treeOf(file: string): Promise<ImageTree> {
  return new ImageTree(await parseImage(readBytes(file), { file }));
}

function text(tree: ImageTree, path: string): string {
  const b = tree.readFile(path);
  if (b === undefined) throw new Error(`${path} is not in the image`);
  return dec.decode(b);
}

function same(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b));
}

/** Module files, link targets and depmod outputs under usr/lib/modules, as a comparable map. */
function moduleView(tree: ImageTree): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of tree.walk('usr/lib/modules')) {
    if (n.kind === 'dir') continue;
    out[n.path] = n.kind === 'symlink' ? `-> ${dec.decode(n.content.data)}` : Buffer.from(n.content.data).toString('base64');
  }
  return out;
}

const opts = (s: ImageSystem) => ({ root: s.root, release: K, level: 1 });

describe('a freshly generated image', () => {
  it('is up to date, modules and links included', async () => {
    const s = makeImageSystem({ compression: 'zstd', early: true });
    const c = await imageNeedsUpdate({ root: s.root, release: K });
    expect(c.exists).toBe(true);
    expect(c.moduleDir).toBe(MD);
    expect(c.changes).toEqual([]);
    expect(c.needsUpdate).toBe(false);
    const r = await updateImage(opts(s));
    expect(r.updated).toBe(false);
  });

  it('an absent image needs nothing (kabi never creates one)', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    rmSync(s.imageHost);
    const c = await imageNeedsUpdate({ root: s.root, release: K });
    expect(c).toMatchObject({ exists: false, needsUpdate: false });
    expect((await refreshInitramfs({ root: s.root, release: K })).action).toBe('none');
  });
});

describe('native update after a module changed', () => {
  const FORMATS: Compression[] = ['zstd', 'xz', 'gzip', 'lz4', 'bzip2', 'lzma', 'lzo'];

  it.each(FORMATS)('%s image with an early cpio: new bytes in place, modules.dep as the generator makes it, early cpio kept', async (format) => {
    const s = makeImageSystem({ compression: format, early: true });
    chmodSync(s.imageHost, 0o600);
    const modeBefore = statSync(s.imageHost).mode & 0o7777;
    const before = readBytes(s.imageHost);
    const oldImage = await parseImage(before);
    const newBeta = beta(K, '2');
    s.install(`/lib/modules/${K}/kernel/drivers/beta${s.ext}`, newBeta);

    const c = await imageNeedsUpdate({ root: s.root, release: K });
    expect(c.changes.map((x) => [x.kind, x.name])).toEqual([['changed', 'beta']]);
    expect(c.nativePossible).toBe(true);

    const r = await updateImage(opts(s));
    expect(r.updated).toBe(true);
    // A small legacy lz4 stream is one chunk, which the change reached: encoded anew, from
    // its old sequences where they still hold.
    expect(r.segmentsRewritten).toEqual([{ index: 1, compression: format, ...(format === 'lz4' ? { blocks: { kept: 0, encoded: 1 } } : {}) }]);
    const after = readBytes(s.imageHost);
    const image = await parseImage(after);
    // The early cpio is byte for byte what it was.
    expect(same(after.subarray(0, oldImage.segments[1]!.offset), before.subarray(0, oldImage.segments[1]!.offset))).toBe(true);
    expect(image.segments.map((x) => x.compression)).toEqual([undefined, format]);

    const tree = new ImageTree(image);
    expect(same(tree.readFile(`${MD}/kernel/drivers/beta.ko`), newBeta)).toBe(true);
    // The generator, run on the same installed tree, makes the same module tree.
    const regenerated = s.generate({ out: join(tempDir(), 'generated.img') });
    expect(moduleView(tree)).toEqual(moduleView(new ImageTree(await parseImage(regenerated))));
    // initramfs-tools' reader still lists it: same names as before (nothing added or lost).
    expect(lsinitramfs(s.imageHost)).toEqual([...allEntries(oldImage)].map((e) => e.entry.name));
    // No copy of the old image is kept on /boot, nothing else is left beside it, and the mode is kept.
    expect(readdirSync(dirname(s.imageHost)).filter((n) => n.includes('kabi'))).toEqual([]);
    expect(statSync(s.imageHost).mode & 0o7777).toBe(modeBefore);
    expect((await imageNeedsUpdate({ root: s.root, release: K })).needsUpdate).toBe(false);
  });

  it('xz image in blocks (as xz -T0 writes): the blocks the change did not reach are kept as they were, and xz and lsinitramfs read the result', async () => {
    const s = makeImageSystem({ compression: 'xz', early: true, xzBlockSize: 4096 });
    const before = await parseImage(readBytes(s.imageHost));
    const oldXz = before.bytes.subarray(before.segments[1]!.offset, before.segments[1]!.end);
    const newBeta = beta(K, '2');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, newBeta);
    const r = await updateImage(opts(s));
    const blocks = r.segmentsRewritten[0]!.blocks!;
    expect(blocks.kept).toBeGreaterThan(0);
    expect(blocks.encoded).toBeGreaterThan(0);
    const image = await parseImage(readBytes(s.imageHost));
    const xzBytes = image.bytes.subarray(image.segments[1]!.offset, image.segments[1]!.end);
    execFileSync('xz', ['-t'], { input: xzBytes });
    // Kept blocks are the old ones, byte for byte.
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const { walkXzStream } = await import('../../native-bindings/xz-stream.js');
    const oldBlocks = new Set(walkXzStream(oldXz, 0, { file: undefined, base: 0 }).blockList.map((b) => hex(oldXz.subarray(b.start, b.end))));
    const newBlocks = walkXzStream(xzBytes, 0, { file: undefined, base: 0 }).blockList.map((b) => hex(xzBytes.subarray(b.start, b.end)));
    expect(newBlocks.filter((b) => oldBlocks.has(b)).length).toBe(blocks.kept);
    const tree = new ImageTree(image);
    expect(same(tree.readFile(`${MD}/kernel/drivers/beta.ko`), newBeta)).toBe(true);
    const regenerated = s.generate({ out: join(tempDir(), 'generated.img') });
    expect(moduleView(tree)).toEqual(moduleView(new ImageTree(await parseImage(regenerated))));
    expect(lsinitramfs(s.imageHost)).toEqual([...allEntries(before)].map((e) => e.entry.name));
  });

  it('an xz image in one block is compressed whole again at the generator\'s preset, not the splice\'s', async () => {
    const s = makeImageSystem({ compression: 'xz' });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '2'));
    const r = await updateImage({ root: s.root, release: K });
    expect(r.segmentsRewritten).toEqual([{ index: 0, compression: 'xz' }]);
    const image = await parseImage(readBytes(s.imageHost));
    const { writeCpioStream } = await import('../../src/initramfs/cpio.js');
    const cpio = writeCpioStream(image.segments[0]!.stream);
    const expected = execFileSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-T0', '-c', '-q'], { input: cpio });
    expect(same(readBytes(s.imageHost), expected)).toBe(true);
  });

  it('uncompressed images (dracut --no-compress) are rewritten as archives', async () => {
    const s = makeImageSystem({ compression: 'none', early: true });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '3'));
    await updateImage(opts(s));
    const image = await parseImage(readBytes(s.imageHost));
    expect(image.segments.map((x) => x.compression)).toEqual([undefined, undefined]);
    expect(image.bytes.length % 512).toBe(0);
    // lsinitramfs exits 2 on images without a compressed part (its xcpio finds nothing after
    // the archives); dracut's lsinitrd reads them.
    expect(lsinitrd(s.imageHost).map((e) => e.name)).toEqual([...allEntries(image)].map((e) => e.entry.name));
  });

  it('what earlier versions and killed runs left beside the image goes at the next update, and nothing new is left', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    const dir = dirname(s.imageHost);
    const base = `initramfs-${K}.img`;
    const leftovers = [`${base}.kabi-bak`, `.${base}.kabi-4194301-0badc0de`, `.${base}.kabi-lock-4194301-0badc0de`];
    for (const n of leftovers) writeFileSync(join(dir, n), 'left behind');
    // Not ours: kept.
    writeFileSync(join(dir, `.${base}.kabi-notes`), 'somebody else\'s');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '2'));
    await updateImage(opts(s));
    expect(readdirSync(dir).filter((n) => n.includes('kabi')).sort()).toEqual([`.${base}.kabi-notes`]);
  });
});

describe('a rewrite after a listing', () => {
  it('reads the image whole again but the installed tree once, and gives what a rewrite from scratch gives', async () => {
    const s = makeImageSystem({ compression: 'zstd', early: true });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '2'));
    const scanned: string[] = [];
    const counting: KabiFs = {
      ...nodeFs,
      opendir: ((p: string, o?: unknown) => {
        if (p.endsWith(`/lib/modules/${K}`)) scanned.push(p);
        return nodeFs.opendir(p as never, o as never);
      }) as KabiFs['opendir'],
    };
    const r = await refreshInitramfs({ ...opts(s), fs: counting, strategy: 'native', changedModules: [`/lib/modules/${K}/kernel/drivers/beta.ko`] });
    expect(r.action).toBe('native');
    expect(scanned).toHaveLength(1);
    const tree = await treeOf(s.imageHost);
    expect(same(tree.readFile(`${MD}/kernel/drivers/beta.ko`), beta(K, '2'))).toBe(true);
    const regenerated = s.generate({ out: join(tempDir(), 'generated.img') });
    expect(moduleView(tree)).toEqual(moduleView(new ImageTree(await parseImage(regenerated))));
  });
});

describe('weak-updates links', () => {
  it('re-pointed link: stored relative, new target copied to its real path, the orphaned copy dropped', async () => {
    const s = makeImageSystem({ compression: 'zstd' });
    const d3 = delta(K3, '3');
    s.install(`/lib/modules/${K3}/extra/delta.ko`, d3);
    s.link(`/lib/modules/${K}/weak-updates/delta.ko`, `/lib/modules/${K3}/extra/delta.ko`);
    const c = await imageNeedsUpdate({ root: s.root, release: K });
    expect(c.changes.map((x) => [x.kind, x.name])).toEqual([['changed', 'delta']]);
    await updateImage(opts(s));
    const tree = await treeOf(s.imageHost);
    const link = tree.get(`${MD}/weak-updates/delta.ko`)!;
    expect(link.kind).toBe('symlink');
    expect(dec.decode(link.content.data)).toBe(`../../${K3}/extra/delta.ko`);
    expect(same(tree.readFile(`usr/lib/modules/${K3}/extra/delta.ko`), d3)).toBe(true);
    expect(tree.get(`usr/lib/modules/${K2}/extra/delta.ko`)).toBeUndefined();
    expect(text(tree, `${MD}/modules.dep`)).toMatch(/^weak-updates\/delta\.ko:$/m);
    // Same as what the generator makes from this tree.
    expect(moduleView(tree)).toEqual(moduleView(new ImageTree(await parseImage(s.generate({ out: join(tempDir(), 'g.img') })))));
  });

  it('.ko.xz tree: a new link target is copied compressed, as installed, like the generator copies it', async () => {
    const s = makeImageSystem({ compression: 'zstd', xzModules: true });
    s.install(`/lib/modules/${K3}/extra/delta.ko.xz`, delta(K3, '3'));
    s.link(`/lib/modules/${K}/weak-updates/delta.ko.xz`, `/lib/modules/${K3}/extra/delta.ko.xz`);
    await updateImage(opts(s));
    const tree = await treeOf(s.imageHost);
    expect(same(tree.readFile(`usr/lib/modules/${K3}/extra/delta.ko.xz`), readBytes(s.fx.path(`/lib/modules/${K3}/extra/delta.ko.xz`)))).toBe(true);
    expect(moduleView(tree)).toEqual(moduleView(new ImageTree(await parseImage(s.generate({ out: join(tempDir(), 'g.img') })))));
  });

  it('removed link: link and its target copy leave the image, modules.dep forgets it', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    rmSync(s.mod('weak-updates/delta.ko'));
    const c = await imageNeedsUpdate({ root: s.root, release: K });
    expect(c.changes.map((x) => [x.kind, x.name])).toEqual([['removed', 'delta']]);
    await updateImage(opts(s));
    const tree = await treeOf(s.imageHost);
    expect(tree.get(`${MD}/weak-updates/delta.ko`)).toBeUndefined();
    expect(tree.get(`usr/lib/modules/${K2}/extra/delta.ko`)).toBeUndefined();
    expect(text(tree, `${MD}/modules.dep`)).not.toMatch(/delta/);
  });

  it('a new link to a module the image lacks matters only when the check is told about it or the image holds the name', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.install(`/lib/modules/${K2}/extra/epsilon.ko`, delta(K2).map((x) => x)); // any bytes will do
    s.link(`/lib/modules/${K}/weak-updates/epsilon.ko`, `/lib/modules/${K2}/extra/epsilon.ko`);
    expect((await imageNeedsUpdate({ root: s.root, release: K })).needsUpdate).toBe(false);
    expect((await imageNeedsUpdate({ root: s.root, release: K, changedModules: [`/lib/modules/${K}/weak-updates/epsilon.ko`] })).needsUpdate).toBe(false);
  });
});

describe('dependencies and configuration', () => {
  it('a module that now needs another one brings it into the image', async () => {
    const s = makeImageSystem({ compression: 'zstd' });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '4', true));
    await updateImage(opts(s));
    const tree = await treeOf(s.imageHost);
    expect(same(tree.readFile(`${MD}/kernel/fs/gamma.ko`), gamma())).toBe(true);
    expect(text(tree, `${MD}/modules.dep`)).toMatch(/^kernel\/drivers\/beta\.ko: (kernel\/fs\/gamma\.ko kernel\/drivers\/alpha\.ko|kernel\/drivers\/alpha\.ko kernel\/fs\/gamma\.ko)$/m);
    expect(moduleView(tree)).toEqual(moduleView(new ImageTree(await parseImage(s.generate({ names: ['alpha', 'beta', 'gamma', 'delta'], out: join(tempDir(), 'g.img') })))));
  });

  it('a changed module named in add_drivers but absent from the image: dracut would add it, and so does kabi', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.fx.write('/etc/dracut.conf.d/50-storage.conf', 'add_drivers+=" gamma "\n');
    const changed = [`/lib/modules/${K}/kernel/fs/gamma.ko`];
    const c = await imageNeedsUpdate({ root: s.root, release: K, changedModules: changed });
    expect(c.changes.map((x) => [x.kind, x.name])).toEqual([['added', 'gamma']]);
    expect(c.changes[0]!.detail).toMatch(/would include gamma .* but the image lacks it: dracut configuration \(add_drivers\)/);
    expect(c.nativePossible).toBe(true);
    await updateImage({ ...opts(s), changedModules: changed });
    expect((await treeOf(s.imageHost)).get(`${MD}/kernel/fs/gamma.ko`)?.kind).toBe('file');
    expect((await imageNeedsUpdate({ root: s.root, release: K })).needsUpdate).toBe(false);
  });

  it('a module the image lacks whose inclusion cannot be told from files: the generator decides', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.fx.write('/etc/dracut.conf.d/50-storage.conf', 'add_drivers+=" $(cat /etc/my-drivers) "\n');
    s.fx.write('/usr/bin/dracut', '#!/bin/sh\n');
    execFileSync('chmod', ['+x', s.fx.path('/usr/bin/dracut')]);
    const changed = [`/lib/modules/${K}/kernel/fs/gamma.ko`];
    const c = await imageNeedsUpdate({ root: s.root, release: K, changedModules: changed });
    expect(c.changes.map((x) => [x.kind, x.name])).toEqual([['undecided', 'gamma']]);
    expect(c.changes[0]!.detail).toMatch(/add_drivers is computed at run time/);
    expect(c.nativePossible).toBe(false);
    expect((await errorOf(updateImage({ ...opts(s), changedModules: changed }))).code).toBe('INITRAMFS_FORMAT');
    const calls: string[][] = [];
    const runner: Runner = async (cmd, args) => {
      calls.push([cmd, ...args]);
      return { status: 0, signal: null, stdout: '', stderr: '', spawnError: undefined };
    };
    const r = await refreshInitramfs({ root: s.root, release: K, changedModules: changed, runner });
    expect(r.action).toBe('generator');
    expect(calls).toEqual([['chroot', s.root, 'dracut', '-f', s.imageSys, K]]);
  });
});

describe('initramfs-tools images of .ko.xz kernels', () => {
  it('stores the new module unpacked, as mkinitramfs does', async () => {
    const s = makeImageSystem({ compression: 'zstd', early: true, style: 'initramfs-tools', xzModules: true });
    const before = await treeOf(s.imageHost);
    expect(before.get(`${MD}/kernel/drivers/beta.ko`)?.kind).toBe('file');
    const nb = beta(K, '5');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko.xz`, nb);
    const c = await imageNeedsUpdate({ root: s.root, release: K });
    expect(c.changes.map((x) => [x.kind, x.imagePath])).toEqual([['changed', `${MD}/kernel/drivers/beta.ko`]]);
    await updateImage(opts(s));
    const tree = await treeOf(s.imageHost);
    expect(same(tree.readFile(`${MD}/kernel/drivers/beta.ko`), nb)).toBe(true);
    expect(tree.get(`${MD}/kernel/drivers/beta.ko.xz`)).toBeUndefined();
    expect(moduleView(tree)).toEqual(moduleView(new ImageTree(await parseImage(s.generate({ out: join(tempDir(), 'g.img') })))));
  });
});

describe('dry run and failures leave the image untouched', () => {
  it('a dry run reports the plan, runs nothing and writes nothing', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '2'));
    const before = readBytes(s.imageHost);
    let depmodRuns = 0;
    const depmod: DepmodRunner = async (o) => {
      depmodRuns++;
      return systemDepmod()(o);
    };
    const calls: string[] = [];
    const runner: Runner = async (cmd) => {
      calls.push(cmd);
      return { status: 0, signal: null, stdout: '', stderr: '', spawnError: undefined };
    };
    s.fx.write('/usr/bin/dracut', '#!/bin/sh\n');
    execFileSync('chmod', ['+x', s.fx.path('/usr/bin/dracut')]);
    const r = await refreshInitramfs({ ...opts(s), dryRun: true, depmod, runner });
    expect(r.action).toBe('native');
    expect(r.update!.operations.map((o) => [o.op, o.path])).toEqual([['write', `${MD}/kernel/drivers/beta.ko`]]);
    const g = await refreshInitramfs({ ...opts(s), dryRun: true, strategy: 'generator', runner });
    expect(g.regenerate!.ran).toBe(false);
    expect(depmodRuns).toBe(0);
    expect(calls).toEqual([]);
    expect(same(readBytes(s.imageHost), before)).toBe(true);
  });

  /** The real filesystem with one call replaced. */
  function faulty(over: Partial<KabiFs>): KabiFs {
    return { ...nodeFs, ...over };
  }

  it.each([
    ['the final rename fails', { rename: async (a: string, b: string) => (b.endsWith('.img') ? Promise.reject(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' })) : nodeFs.rename(a, b)) }],
    ['the file reads back corrupted', { readFile: (async (p: string, o?: unknown) => {
      const b = (await nodeFs.readFile(p as never, o as never)) as unknown as Uint8Array;
      if (!/\.kabi-\d+-/.test(p)) return b;
      const c = Uint8Array.from(b);
      c[c.length - 40] = c[c.length - 40]! ^ 0xff;
      return c;
    }) as KabiFs['readFile'] }],
    ['NULs appear after the end on reading back (parsing alone skips them)', { readFile: (async (p: string, o?: unknown) => {
      const b = (await nodeFs.readFile(p as never, o as never)) as unknown as Uint8Array;
      return /\.kabi-\d+-/.test(p) ? Buffer.concat([b, Buffer.alloc(512)]) : b;
    }) as KabiFs['readFile'] }],
  ].flatMap(([what, over]) => [[`${what} (gzip)`, over, 'gzip'], [`${what} (xz in blocks, unchanged ones kept)`, over, 'xz']] as const))('%s', async (_what, over, format) => {
    const s = makeImageSystem({ compression: format, early: true, xzBlockSize: 4096 });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '2'));
    const before = readBytes(s.imageHost);
    const e = await errorOf(updateImage({ ...opts(s), fs: faulty(over as Partial<KabiFs>) }));
    expect(e.file).toBe(s.imageHost);
    expect(same(readBytes(s.imageHost), before)).toBe(true);
    expect(readdirSync(dirname(s.imageHost)).filter((n) => n.includes('.kabi-'))).toEqual([]);
  });

  it('a depmod failure stops before anything is written', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '2'));
    const before = readBytes(s.imageHost);
    const e = await errorOf(updateImage({ ...opts(s), depmod: systemDepmod(undefined, 'false') }));
    expect(e.code).toBe('EXTERNAL_TOOL');
    expect(same(readBytes(s.imageHost), before)).toBe(true);
  });

  it('an image that is a symlink is not written through', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '2'));
    const real = s.imageHost + '.real';
    renameSync(s.imageHost, real);
    symlinkSync(basename(real), s.imageHost);
    const e = await errorOf(updateImage(opts(s)));
    expect(e.code).toBe('UNSAFE_PATH');
  });

  it('a hostile image is refused before anything happens', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    const evil = Uint8Array.from(execFileSync('sh', ['-c', 'printf "07070100000001000081A40000000000000000000000010000000000000004000000000000000000000000000000000000000E00000000../etc/shadow\\0\\0\\0\\0\\0\\0\\0evil"']));
    writeFileSync(s.imageHost, evil);
    const e = await errorOf(updateImage(opts(s)));
    expect(e.code).toBe('UNSAFE_PATH');
    expect(same(readBytes(s.imageHost), evil)).toBe(true);
  });
});

describe('hard links', () => {
  it('a hard-linked module is not split: native refuses, auto falls back to the generator', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    // Rebuild the image by hand with beta hard-linked to a second name.
    const stage = tempDir();
    execFileSync('sh', ['-c', `set -e; mkdir -p ${MD}/kernel/drivers usr/lib/dracut; echo kernel-modules > usr/lib/dracut/modules.txt; cp ${s.mod('kernel/drivers/beta.ko')} ${MD}/kernel/drivers/beta.ko; ln ${MD}/kernel/drivers/beta.ko ${MD}/beta-copy.ko; find . | LC_ALL=C sort | cpio --quiet -o -H newc | gzip -n > ${s.imageHost}`], { cwd: stage });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '2'));
    expect((await errorOf(updateImage(opts(s)))).message).toMatch(/hard-linked/);
    s.fx.write('/usr/bin/dracut', '#!/bin/sh\n');
    execFileSync('chmod', ['+x', s.fx.path('/usr/bin/dracut')]);
    const runner: Runner = async () => ({ status: 0, signal: null, stdout: '', stderr: '', spawnError: undefined });
    const r = await refreshInitramfs({ ...opts(s), runner });
    expect(r.action).toBe('generator');
    expect(r.notes.join()).toMatch(/hard-linked/);
  });
});

describe('stripped copies', () => {
  it('a module that differs only in debug sections counts as current (dracut strips unsigned modules)', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    const withDebug = execFileSync('sh', ['-c', 'cat'], { input: beta() });
    // Add a non-allocated .debug section with objcopy, as a build with debug info has.
    const dir = tempDir();
    writeFileSync(join(dir, 'b.ko'), withDebug);
    writeFileSync(join(dir, 'dbg'), 'debug info');
    execFileSync('objcopy', ['--add-section', `.debug_kabi=${join(dir, 'dbg')}`, join(dir, 'b.ko'), join(dir, 'b2.ko')]);
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, readBytes(join(dir, 'b2.ko')));
    expect((await imageNeedsUpdate({ root: s.root, release: K })).needsUpdate).toBe(false);
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '9'));
    expect((await imageNeedsUpdate({ root: s.root, release: K })).needsUpdate).toBe(true);
  });

  it('kinds agree with the members', () => {
    expect(kindOf(0o120777)).toBe('symlink');
  });
});
