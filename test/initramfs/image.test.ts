import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCpioStream, writeCpioStream } from '../../src/initramfs/cpio.js';
import { allEntries, parseImage, readImageFile } from '../../src/initramfs/image.js';
import { ImageTree } from '../../src/initramfs/image-tree.js';
import { nodeFs } from '../../src/fs.js';
import type { Compression } from '../../native-bindings/index.js';
import { cleanupTemps, compressCli, concatBytes, earlyCpio, errorOf, gnuCpio, lsinitramfs, readBytes, tempDir, writeTree } from './helpers.js';

afterAll(cleanupTemps);

function mainTree(): string {
  const d = tempDir();
  writeTree(d, [
    { path: 'init', data: '#!/bin/sh\n', mode: 0o755 },
    { path: 'usr/lib/modules/6.1.0-9-amd64/kernel/drivers/x.ko', data: new Uint8Array(5000).map((_, i) => i % 251) },
    { path: 'usr/lib/modules/6.1.0-9-amd64/modules.dep', data: 'kernel/drivers/x.ko:\n' },
    { path: 'lib', link: 'usr/lib' },
    { path: 'bin', link: 'usr/bin' },
    { path: 'usr/bin/sh', data: 'shell', mode: 0o755 },
  ]);
  return d;
}

const FORMATS: Compression[] = ['gzip', 'zstd', 'xz', 'lz4', 'bzip2', 'lzma', 'lzo'];

describe('walking images like init/initramfs.c', () => {
  const main = gnuCpio(mainTree());
  const early = earlyCpio();

  it.each(FORMATS.flatMap((f) => [[f, false] as const, [f, true] as const]))('%s (early cpio: %s): segments, and the names lsinitramfs lists', async (format, withEarly) => {
    const bytes = withEarly ? concatBytes(early, compressCli(main, format)) : compressCli(main, format);
    const file = join(tempDir(), 'initrd.img');
    writeFileSync(file, bytes);
    const image = await readImageFile(nodeFs, file);
    expect(image.segments.map((s) => s.compression)).toEqual(withEarly ? [undefined, format] : [format]);
    if (withEarly) expect(image.segments[1]!.offset).toBe(early.length);
    expect([...allEntries(image)].map((e) => e.entry.name)).toEqual(lsinitramfs(file));
    // The decompressed main archive is exactly what GNU cpio wrote: read → write reproduces it.
    const last = image.segments.at(-1)!;
    expect(Buffer.from(writeCpioStream(last.stream)).equals(Buffer.from(main))).toBe(true);
  });

  it('follows several compressed segments and NUL padding between them', async () => {
    const bytes = concatBytes(early, new Uint8Array(64), compressCli(main, 'gzip'), new Uint8Array(3), compressCli(main, 'zstd'), compressCli(main, 'xz'));
    const image = await parseImage(bytes);
    expect(image.segments.map((s) => s.compression)).toEqual([undefined, 'gzip', 'zstd', 'xz']);
  });

  it('resolves the unpacked tree through the image\'s own links (lib -> usr/lib)', async () => {
    const tree = new ImageTree(await parseImage(compressCli(main, 'gzip')));
    expect(tree.resolve('lib/modules/6.1.0-9-amd64')).toBe('usr/lib/modules/6.1.0-9-amd64');
    expect(new TextDecoder().decode(tree.readFile('lib/modules/6.1.0-9-amd64/modules.dep'))).toBe('kernel/drivers/x.ko:\n');
  });
});

describe('links that try to leave the image stay inside it', () => {
  it('resolves .. and absolute targets against the image root', async () => {
    const d = tempDir();
    writeTree(d, [
      { path: 'etc/passwd', data: 'image passwd' },
      { path: 'a/up', link: '../../../../etc' },
      { path: 'a/abs', link: '/etc/passwd' },
      { path: 'loop1', link: 'loop2' },
      { path: 'loop2', link: 'loop1' },
    ]);
    const tree = new ImageTree(await parseImage(gnuCpio(d)));
    expect(tree.resolve('a/up/passwd')).toBe('etc/passwd');
    expect(new TextDecoder().decode(tree.readFile('a/abs'))).toBe('image passwd');
    expect(tree.resolve('loop1')).toBeUndefined();
  });

  it('shares the contents of hard-linked members', async () => {
    const d = tempDir();
    writeTree(d, [{ path: 'a', data: 'shared bytes' }]);
    const { execFileSync } = await import('node:child_process');
    execFileSync('ln', [join(d, 'a'), join(d, 'b')]);
    const tree = new ImageTree(await parseImage(gnuCpio(d)));
    expect(new TextDecoder().decode(tree.readFile('a'))).toBe('shared bytes');
    expect(new TextDecoder().decode(tree.readFile('b'))).toBe('shared bytes');
  });
});

describe('hostile images give a clear error naming file and offset', () => {
  const main = gnuCpio(mainTree());

  it('a truncated compressed segment', async () => {
    const full = concatBytes(earlyCpio(), compressCli(main, 'xz'));
    const e = await errorOf(parseImage(full.subarray(0, full.length - 200), { file: '/boot/evil.img' }));
    expect(e.code).toBe('COMPRESSION');
    expect(e.file).toBe('/boot/evil.img');
    expect(e.offset).toBeGreaterThanOrEqual(earlyCpio().length);
  });

  it('a cpio bomb stops at the byte budget', async () => {
    const d = tempDir();
    writeTree(d, [{ path: 'zeros', data: new Uint8Array(64 * 1024 * 1024) }]);
    const bomb = compressCli(gnuCpio(d), 'zstd');
    expect(bomb.length).toBeLessThan(64 * 1024);
    const e = await errorOf(parseImage(bomb, { file: 'bomb.img', limits: { maxTotalBytes: 8 * 1024 * 1024 } }));
    expect(e.code).toBe('LIMIT');
    expect(e.message).toMatch(/bomb/);
    expect(e.offset).toBe(0);
  });

  it('an archive of too many members stops at the entry budget', async () => {
    const d = tempDir();
    writeTree(d, Array.from({ length: 300 }, (_, i) => ({ path: `f${i}`, data: '' })));
    const e = await errorOf(parseImage(compressCli(gnuCpio(d), 'gzip'), { limits: { maxEntries: 100 } }));
    expect(e.code).toBe('LIMIT');
    expect(e.message).toMatch(/more than 100 cpio entries/);
  });

  it('names with .. or absolute paths inside a compressed segment', async () => {
    const evil = writeCpioStream(readCpioStream(main));
    // Rewrite "init" (4 letters) to "/ini" and "../x" in place: same lengths, same layout.
    for (const [from, to] of [
      ['init', '/ini'],
      ['usr/bin/sh', '../bin/sh'.padEnd(10, 'x')],
    ] as const) {
      const bytes = Uint8Array.from(evil);
      const at = Buffer.from(bytes).indexOf(from + '\0');
      bytes.set(new TextEncoder().encode(to), at);
      const e = await errorOf(parseImage(compressCli(bytes, 'gzip'), { file: 'x.img' }));
      expect(e.code).toBe('UNSAFE_PATH');
      expect(e.message).toMatch(/gzip at 0x0\), decompressed offset 0x[0-9a-f]+: member name/);
    }
  });

  it('junk that is neither cpio nor a known compression', async () => {
    const e = await errorOf(parseImage(concatBytes(earlyCpio(), new TextEncoder().encode('PK\x03\x04zipfile'))));
    expect(e.code).toBe('INITRAMFS_FORMAT');
    expect(e.offset).toBe(earlyCpio().length);
  });

  it('an archive at a misaligned offset', async () => {
    const e = await errorOf(parseImage(concatBytes(new Uint8Array(2), main)));
    expect(e.code).toBe('INITRAMFS_FORMAT');
    expect(e.message).toMatch(/4-byte boundary/);
  });

  it('an empty image', async () => {
    expect((await errorOf(parseImage(new Uint8Array(0)))).message).toMatch(/empty/);
  });

  it('reading never modifies the file', async () => {
    const file = join(tempDir(), 'evil.img');
    const bytes = concatBytes(earlyCpio(), compressCli(main, 'gzip').subarray(0, 100));
    writeFileSync(file, bytes);
    await errorOf(readImageFile(nodeFs, file));
    expect(Buffer.from(readBytes(file)).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe('listing an image for a decision keeps only the bodies asked for', () => {
  const main = gnuCpio(mainTree());
  const keep = (path: string) => path.endsWith('modules.dep');
  const summary = (image: Awaited<ReturnType<typeof parseImage>>) =>
    image.segments.map((s) => ({ offset: s.offset, end: s.end, compression: s.compression, decodedSize: s.decodedSize, leading: s.stream.leadingZeros, archives: s.stream.archives.map((a) => ({ padding: a.padding, trailer: a.trailer.name, entries: a.entries.map((e) => [e.name, e.path, e.mode, e.ino, e.nlink, e.mtime, e.offset, e.skippedBytes ?? e.data.length]) })) }));

  it.each(['gzip', 'zstd', 'xz'] as const)('%s: the same members, segments and offsets as a whole read; skipped bodies are marked and never written', async (format) => {
    const bytes = concatBytes(earlyCpio(), compressCli(main, format), new Uint8Array(8), compressCli(main, 'gzip'));
    const whole = await parseImage(bytes);
    const listed = await parseImage(bytes, { keep });
    expect(summary(listed)).toEqual(summary(whole));
    expect(listed.partial).toBe(true);
    expect(whole.partial).toBeUndefined();
    const entries = [...allEntries(listed)].map((e) => e.entry);
    const dep = entries.find((e) => e.name.endsWith('modules.dep'))!;
    expect(new TextDecoder().decode(dep.data)).toBe('kernel/drivers/x.ko:\n');
    const ko = entries.find((e) => e.name.endsWith('x.ko'))!;
    expect(ko.skippedBytes).toBe(5000);
    expect(ko.data.length).toBe(0);
    // Symlink targets are always kept.
    expect(new ImageTree(listed).resolve('lib/modules')).toBe('usr/lib/modules');
    expect(() => new ImageTree(listed).readFile('usr/lib/modules/6.1.0-9-amd64/kernel/drivers/x.ko')).toThrow(/listed without its contents/);
    expect(() => writeCpioStream(listed.segments.at(-1)!.stream)).toThrow(/cannot be written/);
  });

  it('a listing past the member limit stops there: the rest of the segment, damaged here, is never decoded', async () => {
    const d = tempDir();
    writeTree(d, Array.from({ length: 3000 }, (_, i) => ({ path: `f${i}`, data: '' })));
    const gz = compressCli(gnuCpio(d), 'gzip');
    const cut = gz.subarray(0, gz.length - 64);
    // Read whole, the damage is what fails; listed, the member limit comes first.
    expect((await errorOf(parseImage(cut, { file: 'x.img', limits: { maxEntries: 100 } }))).code).not.toBe('LIMIT');
    const e = await errorOf(parseImage(cut, { file: 'x.img', limits: { maxEntries: 100 }, keep }));
    expect([e.code, e.file]).toEqual(['LIMIT', 'x.img']);
    expect(e.message).toMatch(/more than 100 cpio entries/);
  });

  it('a listing of empty files skips no body: the image is whole, not partial', async () => {
    const d = tempDir();
    writeTree(d, [...Array.from({ length: 5 }, (_, i) => ({ path: `e${i}`, data: '' })), { path: 'full', data: 'x' }]);
    const gz = compressCli(gnuCpio(d), 'gzip');
    expect((await parseImage(gz, { keep: () => true })).partial).toBeUndefined();
    const listed = await parseImage(gz, { keep: () => false });
    expect(listed.partial).toBe(true);
    const entries = listed.segments.flatMap((s) => s.stream.archives.flatMap((a) => a.entries));
    expect(entries.filter((e) => e.skippedBytes !== undefined).map((e) => e.path)).toEqual(['full']);
  });

  it('a damaged or hostile segment gives the error a whole read gives', async () => {
    const d = tempDir();
    writeTree(d, Array.from({ length: 300 }, (_, i) => ({ path: `f${i}`, data: '' })));
    const many = compressCli(gnuCpio(d), 'gzip');
    const gz = compressCli(main, 'gzip');
    const evil = Uint8Array.from(main);
    evil.set(new TextEncoder().encode('/ini'), Buffer.from(evil).indexOf('init\0'));
    const zeros = tempDir();
    writeTree(zeros, [{ path: 'zeros', data: new Uint8Array(16 * 1024 * 1024) }]);
    const cases: [Uint8Array, Parameters<typeof parseImage>[1]][] = [
      [gz.subarray(0, gz.length - 100), {}],
      [gz.subarray(0, gz.length - 4), {}],
      [concatBytes(gz.subarray(0, 20), new Uint8Array(50).fill(0xff), gz.subarray(70)), {}],
      [many, { limits: { maxEntries: 100 } }],
      [compressCli(evil, 'gzip'), {}],
      [compressCli(main.subarray(0, main.length - 700), 'gzip'), {}],
      [compressCli(gnuCpio(zeros), 'gzip'), { limits: { maxTotalBytes: 4 * 1024 * 1024 } }],
    ];
    for (const [bytes, opts] of cases) {
      const a = await errorOf(parseImage(bytes, { file: 'x.img', ...opts }));
      const b = await errorOf(parseImage(bytes, { file: 'x.img', ...opts, keep }));
      expect([b.code, b.message]).toEqual([a.code, a.message]);
    }
  });
});
