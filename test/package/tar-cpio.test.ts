import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { KabiError } from '../../src/errors.js';
import { CpioReader, type HeaderFile } from '../../src/package/cpio-stream.js';
import type { EntryVisitor, PayloadEntry } from '../../src/package/entry.js';
import { TarReader } from '../../src/package/tar.js';
import { tarOf, tempDir, writeTree, type TreeItem } from './helpers.js';

const WHERE = { file: '/pkgs/x.deb', label: 'data.tar', base: 0x84 };
const LIMITS = { maxEntries: 1000, maxPathBytes: 4096 };

interface Seen {
  entry: PayloadEntry;
  data?: Buffer;
}

/** Keeps the pieces; `data` joins them when read. */
function collect(s: Seen): (c: Uint8Array) => void {
  const parts: Buffer[] = [];
  Object.defineProperty(s, 'data', { get: () => Buffer.concat(parts), enumerable: true });
  return (c) => void parts.push(Buffer.from(c));
}

function feed(parser: { push(c: Uint8Array): void; end(): void }, bytes: Uint8Array, chunk: number): void {
  for (let i = 0; i < bytes.length; i += chunk) parser.push(bytes.subarray(i, i + chunk));
  parser.end();
}

/** Every entry a reader reports, with the contents of regular files. */
function parse(make: (v: EntryVisitor) => { push(c: Uint8Array): void; end(): void }, bytes: Uint8Array, chunk: number): Seen[] {
  const seen: Seen[] = [];
  const visitor: EntryVisitor = {
    entry(e) {
      const s: Seen = { entry: e };
      seen.push(s);
      return e.type === 'file' ? collect(s) : undefined;
    },
  };
  feed(make(visitor), bytes, chunk);
  return seen;
}

function readTar(bytes: Uint8Array, chunk = 1 << 20): Seen[] {
  return parse((v) => new TarReader(v, WHERE, LIMITS), bytes, chunk);
}

function errorOf(fn: () => unknown): KabiError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KabiError);
    return e as KabiError;
  }
  throw new Error('expected a KabiError');
}

const LONG = 'usr/lib/modules/6.1.0-9-amd64/kernel/drivers/net/ethernet/some-vendor/a-directory-name-that-is-long/' + 'x'.repeat(120) + '.ko';
const ITEMS: TreeItem[] = [
  { path: 'boot/config-6.1.0-9-amd64', data: 'CONFIG_MODVERSIONS=y\n' },
  { path: 'usr/lib/modules/6.1.0-9-amd64/kernel/a.ko', data: new Uint8Array(70_000).map((_, i) => i % 251) },
  { path: LONG, data: 'long name\n' },
  { path: 'usr/lib/modules/6.1.0-9-amd64/empty', data: '' },
  { path: 'usr/lib/modules/6.1.0-9-amd64/build', link: '/usr/src/linux-headers-6.1.0-9-amd64' },
  { path: 'usr/lib/modules/6.1.0-9-amd64/kernel/b.ko', hardlink: 'usr/lib/modules/6.1.0-9-amd64/kernel/a.ko' },
  { path: 'usr/share/doc/x', dir: true },
];

describe('tar reader', () => {
  for (const format of ['gnu', 'posix', 'ustar'] as const) {
    it(`reads what GNU tar --format=${format} writes, in any chunking`, () => {
      const items = format === 'ustar' ? ITEMS.filter((i) => i.path !== LONG) : ITEMS;
      const bytes = tarOf(items, format);
      const whole = readTar(bytes);
      const byPath = new Map(whole.map((s) => [s.entry.path, s]));
      expect(byPath.get('/boot/config-6.1.0-9-amd64')!.data!.toString()).toBe('CONFIG_MODVERSIONS=y\n');
      expect(byPath.get('/usr/lib/modules/6.1.0-9-amd64/kernel/a.ko')!.data!.equals(Buffer.from((ITEMS[1] as { data: Uint8Array }).data))).toBe(true);
      expect(byPath.get('/usr/lib/modules/6.1.0-9-amd64/empty')!.entry).toMatchObject({ type: 'file', size: 0 });
      expect(byPath.get('/usr/lib/modules/6.1.0-9-amd64/build')!.entry).toMatchObject({ type: 'symlink', linkTarget: '/usr/src/linux-headers-6.1.0-9-amd64' });
      expect(byPath.get('/usr/lib/modules/6.1.0-9-amd64/kernel/b.ko')!.entry).toMatchObject({ type: 'hardlink', linkTarget: '/usr/lib/modules/6.1.0-9-amd64/kernel/a.ko' });
      expect(byPath.get('/usr/share/doc/x')!.entry.type).toBe('dir');
      if (format !== 'ustar') expect(byPath.get('/' + LONG)!.data!.toString()).toBe('long name\n');
      // dataOffset points at the contents in the stream.
      const a = byPath.get('/usr/lib/modules/6.1.0-9-amd64/kernel/a.ko')!.entry;
      expect(Buffer.from(bytes.subarray(a.dataOffset, a.dataOffset + a.size)).equals(byPath.get(a.path)!.data!)).toBe(true);
      for (const chunk of [1, 7, 511, 512, 513, 4096]) {
        const again = readTar(bytes, chunk);
        expect(again.map((s) => [s.entry, s.data?.length])).toEqual(whole.map((s) => [s.entry, s.data?.length]));
      }
    });
  }

  it('refuses a bad checksum, a truncated archive, a path out of the root, too many entries', () => {
    const bytes = Buffer.from(tarOf([{ path: 'a', data: 'x' }]));
    const bad = Buffer.from(bytes);
    bad[10] = bad[10]! ^ 1;
    const e1 = errorOf(() => readTar(bad));
    expect(e1).toMatchObject({ code: 'PACKAGE_FORMAT', file: '/pkgs/x.deb', offset: 0x84 });
    expect(e1.message).toMatch(/data\.tar, decompressed offset 0x0: tar header checksum mismatch/);

    expect(errorOf(() => readTar(bytes.subarray(0, 700))).message).toMatch(/truncated/);
    expect(errorOf(() => readTar(bytes.subarray(0, 512 + 100))).message).toMatch(/truncated/);

    const root = tempDir();
    writeTree(root, [{ path: 'd/f', data: 'x' }]);
    const up = spawnSync('tar', ['--format=gnu', '-C', root, '-cf', '-', '--transform=s,^d/f,../../etc/passwd,', 'd/f']).stdout;
    expect(errorOf(() => readTar(up)).message).toMatch(/leads outside the root/);

    const many = tarOf(Array.from({ length: 20 }, (_, i) => ({ path: `f${i}`, data: '' })));
    const e = errorOf(() =>
      feed(new TarReader({ entry: () => undefined }, WHERE, { maxEntries: 10, maxPathBytes: 4096 }), many, 4096),
    );
    expect(e.message).toMatch(/more than 10 entries/);
  });

  it('refuses a size field that is not octal and a long name past the path limit, without allocating it', () => {
    const bytes = Buffer.from(tarOf([{ path: 'a', data: 'x' }]));
    const h = Buffer.from(bytes.subarray(0, 512));
    h.write('9999999999\0', 124, 'latin1');
    fixChecksum(h);
    expect(errorOf(() => readTar(Buffer.concat([h, Buffer.alloc(2048)]))).message).toMatch(/bad tar size field/);

    const l = Buffer.alloc(512);
    l.write('././@LongLink', 0);
    l.write('0000644\0', 100);
    l.write((1 << 30).toString(8).padStart(11, '0') + '\0', 124);
    l.write('L', 156);
    l.write('ustar  \0', 257, 'latin1');
    fixChecksum(l);
    expect(errorOf(() => readTar(Buffer.concat([l, Buffer.alloc(1024)]))).message).toMatch(/GNU long name of 1073741824 bytes/);
  });
});

function fixChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

function readCpio(bytes: Uint8Array, chunk = 1 << 20, headerFiles?: HeaderFile[]): Seen[] {
  return parse((v) => new CpioReader(v, { ...WHERE, label: 'RPM payload' }, LIMITS, headerFiles), bytes, chunk);
}

describe('cpio reader', () => {
  it('reads what GNU cpio -H newc writes, hard links reported as links to the member with the contents', () => {
    const root = tempDir();
    writeTree(root, ITEMS.filter((i) => i.path !== LONG));
    const list = spawnSync('sh', ['-c', 'find . | sort'], { cwd: root }).stdout;
    const bytes = spawnSync('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: root, input: list }).stdout;
    const whole = readCpio(bytes);
    const byPath = new Map(whole.map((s) => [s.entry.path, s]));
    expect(byPath.get('/boot/config-6.1.0-9-amd64')!.data!.toString()).toBe('CONFIG_MODVERSIONS=y\n');
    expect(byPath.get('/usr/lib/modules/6.1.0-9-amd64/build')!.entry).toMatchObject({ type: 'symlink', linkTarget: '/usr/src/linux-headers-6.1.0-9-amd64' });
    // GNU cpio puts the contents on the last member of a link set.
    const a = byPath.get('/usr/lib/modules/6.1.0-9-amd64/kernel/a.ko')!;
    const b = byPath.get('/usr/lib/modules/6.1.0-9-amd64/kernel/b.ko')!;
    const [owner, link] = a.entry.type === 'file' ? [a, b] : [b, a];
    expect(owner.data!.length).toBe(70_000);
    expect(link.entry).toMatchObject({ type: 'hardlink', linkTarget: owner.entry.path });
    for (const chunk of [1, 3, 110, 4096]) expect(readCpio(bytes, chunk).map((s) => s.entry)).toEqual(whole.map((s) => s.entry));
  });

  it('reads the stripped (07070X) form by the header file list, and refuses an index past it', () => {
    const files: HeaderFile[] = [
      { path: '/lib/modules/K/kernel/a.ko', mode: 0o100644, size: 5, mtime: 1 },
      { path: '/lib/modules/K/build', mode: 0o120777, size: 4, mtime: 1 },
    ];
    const member = (fx: number, body: string) => {
      const head = Buffer.from(`07070X${fx.toString(16).padStart(8, '0')}\0\0`, 'latin1');
      const pad = (4 - (body.length % 4)) % 4;
      return Buffer.concat([head, Buffer.from(body), Buffer.alloc(pad)]);
    };
    const trailer = Buffer.from(`070701${'0'.repeat(8 * 11)}0000000B00000000TRAILER!!!\0`, 'latin1');
    const bytes = Buffer.concat([member(0, 'hello'), member(1, '/src'), trailer, Buffer.alloc(3)]);
    const seen = readCpio(bytes, 5, files);
    expect(seen.map((s) => [s.entry.path, s.entry.type, s.data?.toString() ?? s.entry.linkTarget])).toEqual([
      ['/lib/modules/K/kernel/a.ko', 'file', 'hello'],
      ['/lib/modules/K/build', 'symlink', '/src'],
    ]);
    expect(errorOf(() => readCpio(Buffer.concat([member(7, 'x'), trailer]), 64, files)).message).toMatch(/names file 7, the header lists 2/);
    expect(errorOf(() => readCpio(member(0, 'hello'), 64, files)).message).toMatch(/truncated \(no TRAILER!!! member\)/);
    expect(errorOf(() => readCpio(Buffer.from('0707zz' + '0'.repeat(200)), 64, files)).message).toMatch(/bad cpio magic/);
  });
});
