import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KabiError } from '../../src/errors.js';
import { PackageArchive, type OpenPackageOptions } from '../../src/package/archive.js';
import { assembleDeb, buildDeb, buildRpm, compressWith, controlTar, tarOf, tempDir, xz, type TreeItem } from './helpers.js';

const MODULE_DIR = 'lib/modules/6.1.0-9-amd64';

/** Bytes that neither repeat nor compress well, so several xz blocks hold real data. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const ITEMS: TreeItem[] = [
  { path: `${MODULE_DIR}/kernel/fs/a.ko`, data: noise(300_000, 1) },
  { path: `${MODULE_DIR}/kernel/fs/b.ko.xz`, data: noise(90_000, 2) },
  { path: `${MODULE_DIR}/modules.order`, data: 'kernel/fs/a.ko\nkernel/fs/b.ko\n' },
  { path: `${MODULE_DIR}/build`, link: '/usr/src/linux-headers-6.1.0-9-amd64' },
  { path: 'boot/config-6.1.0-9-amd64', data: 'CONFIG_MODVERSIONS=y\n' },
  { path: `${MODULE_DIR}/kernel/fs/c.ko`, data: noise(200_000, 3) },
];

const opened: PackageArchive[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((a) => a.close()));
  delete process.env.KABI_PACKAGE_DECODER;
});

async function open(file: string, opts: OpenPackageOptions = {}): Promise<PackageArchive> {
  const a = await PackageArchive.open(file, opts);
  opened.push(a);
  return a;
}

async function contents(a: PackageArchive): Promise<Map<string, string>> {
  const files = a.list().filter((e) => e.type === 'file');
  const bytes = await Promise.all(files.map((e) => a.readFile(e.path)));
  return new Map(files.map((e, i) => [e.path, Buffer.from(bytes[i]!).toString('base64')]));
}

function expected(items: readonly TreeItem[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const it of items) if ('data' in it) m.set('/' + it.path, Buffer.from(it.data).toString('base64'));
  for (const it of items) if ('hardlink' in it) m.set('/' + it.path, m.get('/' + it.hardlink)!);
  return m;
}

async function errorOf(p: Promise<unknown>): Promise<KabiError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KabiError);
    return e as KabiError;
  }
  throw new Error('expected a KabiError');
}

describe('.deb packages', () => {
  for (const compression of ['xz', 'gzip', 'zstd', 'none'] as const) {
    it(`dpkg-deb -Z${compression}: metadata, the file list from md5sums, every file's contents`, async () => {
      const f = buildDeb(tempDir(), ITEMS, { name: 'linux-image-6.1.0-9-amd64', version: '6.1.99-1', arch: 'amd64', compression });
      const a = await open(f);
      expect(a.meta).toMatchObject({ format: 'deb', name: 'linux-image-6.1.0-9-amd64', version: '6.1.99-1', arch: 'amd64' });
      expect([...a.meta.listedFiles!].sort()).toEqual(ITEMS.filter((i) => 'data' in i).map((i) => '/' + i.path).sort());
      await a.scan();
      expect(a.entry(`/${MODULE_DIR}/build`)).toMatchObject({ type: 'symlink', linkTarget: '/usr/src/linux-headers-6.1.0-9-amd64' });
      expect(await contents(a)).toEqual(expected(ITEMS));
    });
  }

  it('in-process decoders (xz in WASM, zstd, gzip) give the same files as xz(1)', async () => {
    process.env.KABI_PACKAGE_DECODER = 'js';
    for (const compression of ['xz', 'gzip', 'zstd'] as const) {
      const a = await open(buildDeb(tempDir(), ITEMS, { compression }));
      await a.scan();
      expect(await contents(a)).toEqual(expected(ITEMS));
    }
  });

  it('reads files it did not keep from the xz blocks that hold them, and only those', async () => {
    const data = tarOf(ITEMS);
    const multi = xz(data, ['--block-size=65536', '-T1']);
    const f = assembleDeb(tempDir(), 'multi.deb', [
      { name: 'debian-binary', data: Buffer.from('2.0\n') },
      { name: 'control.tar.xz', data: controlTar('multi') },
      { name: 'data.tar.xz', data: multi },
    ]);
    const a = await open(f, { limits: { retainBytes: 0 } });
    await a.scan();
    // Corrupt a byte of the first block: the last file, read from its own blocks, must not notice
    // (a pass from the start of the payload would fail there).
    const bytes = readFileSync(f);
    const dataAt = bytes.indexOf(multi.subarray(0, 64));
    const broken = Buffer.from(bytes);
    broken[dataAt + 300] = broken[dataAt + 300]! ^ 0xff;
    writeFileSync(f, broken);
    const last = a.list().filter((e) => e.type === 'file').at(-1)!;
    expect(Buffer.from(await a.readFile(last.path)).toString('base64')).toBe(expected(ITEMS).get(last.path));
    expect((await errorOf(a.readFile(a.list().find((e) => e.type === 'file')!.path))).message).toMatch(/data\.tar\.xz block 0 is corrupt/);
    writeFileSync(f, bytes);
    expect(await contents(a)).toEqual(expected(ITEMS));
  });

  it('reads files it did not keep from a non-seekable payload by another pass, one pass per burst of reads', async () => {
    const f = buildDeb(tempDir(), ITEMS, { compression: 'gzip' });
    const a = await open(f, { limits: { retainBytes: 0 } });
    await a.scan();
    expect(await contents(a)).toEqual(expected(ITEMS));
    // The pass stops once it has what was asked for: a file that has since become garbage behind it is never read.
    const first = a.list().find((e) => e.type === 'file')!;
    const bytes = readFileSync(f);
    writeFileSync(f, Buffer.concat([bytes.subarray(0, bytes.length - 100), Buffer.alloc(100, 0x55)]));
    expect(Buffer.from(await a.readFile(first.path)).toString('base64')).toBe(expected(ITEMS).get(first.path));
  });

  it('names the file and offset of a broken package', async () => {
    const dir = tempDir();
    const good = readFileSync(buildDeb(dir, ITEMS));
    const notDeb = join(dir, 'x.deb');
    writeFileSync(notDeb, 'hello world, not a package');
    expect(await errorOf(PackageArchive.open(notDeb))).toMatchObject({ code: 'PACKAGE_FORMAT', file: notDeb, offset: 0 });

    const truncated = join(dir, 'truncated.deb');
    writeFileSync(truncated, good.subarray(0, good.length - 5000));
    const e = await errorOf(PackageArchive.open(truncated));
    expect(e.message).toMatch(/truncated\.deb.*ar member data\.tar\.xz is \d+ bytes but the file ends/);

    // Damage inside the compressed data: found by the pass, with the member's offset.
    const damaged = join(dir, 'damaged.deb');
    const d = Buffer.from(good);
    d[d.length - 3000] = d[d.length - 3000]! ^ 0x5a;
    writeFileSync(damaged, d);
    const a = await open(damaged);
    const e2 = await errorOf(a.scan());
    expect(e2.file).toBe(damaged);
    expect(e2.message).toMatch(/data\.tar\.xz/);
    expect(e2.offset).toBeGreaterThan(0);
  });

  it('refuses a control file that claims more than the metadata limit before allocating it', async () => {
    const h = Buffer.from(tarOf([{ path: 'control', data: 'Package: x\n' }]));
    // The member header of ./control: its size field claims 8 GiB.
    const at = h.indexOf('./control');
    h.write('100000000000', at + 124, 'latin1');
    h.fill(0x20, at + 148, at + 156);
    let sum = 0;
    for (let i = at; i < at + 512; i++) sum += h[i]!;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', at + 148, 'latin1');
    const f = assembleDeb(tempDir(), 'big-control.deb', [
      { name: 'debian-binary', data: Buffer.from('2.0\n') },
      { name: 'control.tar.xz', data: xz(h) },
      { name: 'data.tar.xz', data: xz(tarOf([{ path: 'x', data: 'x' }])) },
    ]);
    expect((await errorOf(PackageArchive.open(f))).message).toMatch(/control\.tar\.xz: control claims 8589934592 bytes, over the \d+-byte limit/);
  });

  it('stops a decompression bomb at the payload limit and a slow read at the deadline', async () => {
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    const bomb = assembleDeb(tempDir(), 'bomb.deb', [
      { name: 'debian-binary', data: Buffer.from('2.0\n') },
      { name: 'control.tar.xz', data: controlTar('bomb') },
      { name: 'data.tar.gz', data: compressWith('gzip', ['-c', '-9'], zeros) },
    ]);
    const a = await open(bomb, { limits: { maxPayloadBytes: 1024 * 1024 } });
    expect((await errorOf(a.scan())).message).toMatch(/data\.tar\.gz would exceed the 1048576-byte payload limit/);
    expect((await errorOf(PackageArchive.open(bomb, { limits: { timeoutMs: 0 } }))).message).toMatch(/bomb\.deb: at offset 0x\w+: reading the package took longer than 0 s; gave up/);
  });
});

describe('RPM packages', () => {
  const PAYLOADS = ['w9.xzdio', 'w19.zstdio', 'w6.gzdio', 'w9.bzdio', 'w2.ufdio', 'w6.lzdio'];
  for (const payload of PAYLOADS) {
    it(`rpmbuild %_binary_payload ${payload}: header, ghosts left out, contents`, async () => {
      const items: TreeItem[] = [...ITEMS, { path: `${MODULE_DIR}/kernel/fs/d.ko`, hardlink: `${MODULE_DIR}/kernel/fs/a.ko` }];
      const f = buildRpm(tempDir(), items, { name: 'kernel-core', version: '5.14.0', payload, ghosts: ['/boot/vmlinuz-6.1.0-9-amd64'] });
      const a = await open(f);
      expect(a.meta).toMatchObject({ format: 'rpm', name: 'kernel-core', version: '5.14.0-1', arch: 'noarch' });
      expect(a.meta.listedFiles).toContain(`/${MODULE_DIR}/kernel/fs/a.ko`);
      expect(a.meta.listedFiles).not.toContain('/boot/vmlinuz-6.1.0-9-amd64');
      await a.scan();
      expect(a.entry('/boot/vmlinuz-6.1.0-9-amd64')).toBeUndefined();
      expect(a.entry(`/${MODULE_DIR}/build`)).toMatchObject({ type: 'symlink', linkTarget: '/usr/src/linux-headers-6.1.0-9-amd64' });
      const got = await contents(a);
      expect(got).toEqual(new Map([...expected(items)].filter(([p]) => got.has(p))));
      // Both names of the hard-linked file read the same bytes.
      expect(Buffer.from(await a.readFile(`/${MODULE_DIR}/kernel/fs/d.ko`)).toString('base64')).toBe(expected(ITEMS).get(`/${MODULE_DIR}/kernel/fs/a.ko`));
    });
  }

  it('refuses a header whose counts or offsets lie outside it', async () => {
    const dir = tempDir();
    const good = readFileSync(buildRpm(dir, ITEMS.slice(0, 2)));
    // The signature header's index count (big-endian at 96+8).
    const many = Buffer.from(good);
    many.writeUInt32BE(0x7fffffff, 96 + 8);
    writeFileSync(join(dir, 'many.rpm'), many);
    expect((await errorOf(PackageArchive.open(join(dir, 'many.rpm')))).message).toMatch(/RPM signature header has 2147483647 tags/);
    // First entry of the signature header: its offset far past the store.
    const off = Buffer.from(good);
    off.writeUInt32BE(0x7ffffff0, 96 + 16 + 8);
    writeFileSync(join(dir, 'off.rpm'), off);
    expect((await errorOf(PackageArchive.open(join(dir, 'off.rpm')))).message).toMatch(/entry 0 \(tag \d+\) lies outside its data store/);
    writeFileSync(join(dir, 'short.rpm'), good.subarray(0, 200));
    expect(await errorOf(PackageArchive.open(join(dir, 'short.rpm')))).toMatchObject({ code: 'PACKAGE_FORMAT', file: join(dir, 'short.rpm') });
  });
});
