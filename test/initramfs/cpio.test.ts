import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CRC_MAGIC,
  kindOf,
  newEntry,
  newTrailer,
  readCpioArchive,
  readCpioStream,
  withEntries,
  writeCpioArchive,
  writeCpioStream,
  type CpioArchive,
} from '../../src/initramfs/cpio.js';
import { KabiError } from '../../src/errors.js';
import { cleanupTemps, cpioExtract, cpioNames, gnuCpio, tempDir, writeTree } from './helpers.js';

afterAll(cleanupTemps);

const enc = new TextEncoder();

function sample(): ReturnType<typeof tempDir> {
  const d = tempDir();
  writeTree(d, [
    { path: 'etc/os-release', data: 'NAME=test\n' },
    { path: 'usr/bin/tool', data: new Uint8Array(1001).fill(7), mode: 0o755 },
    { path: 'empty', data: '' },
    { path: 'usr/lib/modules/6.1.0-9-amd64/kernel/a.ko', data: 'not really a module' },
    { path: 'lib', link: 'usr/lib' },
    { path: 'var/run', link: '../run' },
    { path: 'run', dir: true },
    { path: 'odd name with spaces', data: 'x' },
  ]);
  return d;
}

function errorOf(fn: () => unknown): KabiError {
  try {
    fn();
  } catch (e) {
    if (e instanceof KabiError) return e;
    throw e;
  }
  throw new Error('expected a KabiError');
}

describe('reading GNU cpio output', () => {
  const dir = sample();
  const bytes = gnuCpio(dir);
  const { archive, end } = readCpioArchive(bytes, 0);

  it('lists what cpio -t lists, in order', () => {
    expect(archive.entries.map((e) => e.name)).toEqual(cpioNames(bytes));
  });

  it('reads contents, modes and link targets as they are on disk', () => {
    for (const e of archive.entries) {
      const p = join(dir, e.path);
      const st = statSync(p, { throwIfNoEntry: true });
      if (kindOf(e.mode) === 'file') expect(Buffer.from(e.data).equals(readFileSync(p)), e.name).toBe(true);
      if (kindOf(e.mode) === 'symlink') expect(new TextDecoder().decode(e.data)).toBe(readlinkSync(p));
      if (kindOf(e.mode) !== 'symlink') expect(e.mode & 0o7777, e.name).toBe(st.mode & 0o7777);
    }
  });

  it('normalises names: "." is the root, no leading ./', () => {
    expect(archive.entries[0]!.name).toBe('.');
    expect(archive.entries[0]!.path).toBe('');
    expect(archive.entries.map((e) => e.path)).toContain('usr/lib/modules/6.1.0-9-amd64/kernel/a.ko');
  });

  it('writes the same archive back byte for byte (trailer and 512-byte block padding included)', () => {
    const padding = bytes.length - end;
    expect(padding).toBeGreaterThan(0);
    const again = writeCpioArchive({ ...archive, padding });
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
  });

  it('reads the crc (070702) variant and checks its sums', () => {
    const crc = gnuCpio(dir, 'crc');
    const a = readCpioArchive(crc, 0).archive;
    expect(a.entries.every((e) => e.magic === CRC_MAGIC)).toBe(true);
    expect(a.entries.map((e) => e.name)).toEqual(cpioNames(crc));
    // Flip one data byte of the 1001-byte file.
    const tool = a.entries.find((e) => e.path === 'usr/bin/tool')!;
    const bad = Uint8Array.from(crc);
    const at = tool.data.byteOffset - crc.byteOffset + 10;
    bad[at] = bad[at]! ^ 1;
    const e = errorOf(() => readCpioArchive(bad, 0));
    expect(e.code).toBe('CPIO_FORMAT');
    expect(e.message).toMatch(/checksum/);
    expect(e.offset).toBe(tool.offset);
  });
});

describe('kabi-written archives', () => {
  const archive: CpioArchive = {
    entries: [
      newEntry({ path: '', mode: 0o40755, ino: 1, mtime: 1700000000 }),
      newEntry({ path: 'a', mode: 0o40700, ino: 2 }),
      newEntry({ path: 'a/b.txt', mode: 0o100640, ino: 3, data: enc.encode('hello\n'), uid: 12, gid: 34 }),
      newEntry({ path: 'a/link', mode: 0o120777, ino: 4, data: enc.encode('b.txt') }),
      newEntry({ path: 'a/odd-' + 'n'.repeat(37), mode: 0o100600, ino: 5, data: new Uint8Array(3) }),
    ],
    trailer: newTrailer(),
    padding: 0,
  };
  const bytes = writeCpioArchive(withEntries({ ...archive, padding: 512 - (writeCpioArchive(archive).length % 512) }, archive.entries));

  it('GNU cpio lists and extracts them', () => {
    expect(cpioNames(bytes)).toEqual(['.', 'a', 'a/b.txt', 'a/link', 'a/odd-' + 'n'.repeat(37)]);
    const out = cpioExtract(bytes);
    expect(readFileSync(join(out, 'a/b.txt'), 'utf8')).toBe('hello\n');
    expect(readlinkSync(join(out, 'a/link'))).toBe('b.txt');
    expect(statSync(join(out, 'a/b.txt')).mode & 0o777).toBe(0o640);
  });

  it('read → write is byte-identical', () => {
    const { archive: a, end } = readCpioArchive(bytes, 0);
    expect(bytes.length % 512).toBe(0);
    expect(Buffer.from(writeCpioArchive({ ...a, padding: bytes.length - end })).equals(Buffer.from(bytes))).toBe(true);
  });

  it('keeps 512-byte block padding when members change', () => {
    const { archive: a, end } = readCpioArchive(bytes, 0);
    const grown = withEntries({ ...a, padding: bytes.length - end }, [...a.entries, newEntry({ path: 'z', mode: 0o100644, ino: 9, data: new Uint8Array(700) })]);
    expect(writeCpioArchive(grown).length % 512).toBe(0);
    expect(cpioNames(writeCpioArchive(grown)).at(-1)).toBe('z');
  });

  it('a stream of archives separated by NULs round-trips', () => {
    const two = writeCpioStream({ leadingZeros: 0, archives: [{ ...archive, padding: 8 }, { ...archive, padding: 4 }] });
    const s = readCpioStream(two);
    expect(s.archives).toHaveLength(2);
    expect(s.archives.map((a) => a.padding)).toEqual([8, 4]);
    expect(Buffer.from(writeCpioStream(s)).equals(Buffer.from(two))).toBe(true);
  });
});

describe('hostile archives', () => {
  const good = writeCpioArchive({
    entries: [newEntry({ path: 'f', mode: 0o100644, ino: 1, data: enc.encode('data') })],
    trailer: newTrailer(),
    padding: 0,
  });

  /** An archive with one member whose header fields and name we control. */
  function craft(name: string, over: Partial<Record<'mode' | 'filesize' | 'namesize', number>> = {}, data = ''): Uint8Array {
    const nameBytes = enc.encode(name);
    const h = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');
    const fields = [1, over.mode ?? 0o100644, 0, 0, 1, 0, over.filesize ?? data.length, 0, 0, 0, 0, over.namesize ?? nameBytes.length + 1, 0];
    const header = enc.encode('070701' + fields.map(h).join(''));
    const parts = [header, nameBytes, new Uint8Array(1)];
    let len = header.length + nameBytes.length + 1;
    parts.push(new Uint8Array((4 - (len % 4)) % 4));
    len += (4 - (len % 4)) % 4;
    parts.push(enc.encode(data), new Uint8Array((4 - (data.length % 4)) % 4));
    return Buffer.concat([...parts, writeCpioArchive({ entries: [], trailer: newTrailer(), padding: 0 })]);
  }

  it.each([
    ['a name with ..', craft('usr/../../etc/shadow'), 'UNSAFE_PATH', /'\.\.'/, 0],
    ['an absolute name', craft('/etc/shadow'), 'UNSAFE_PATH', /absolute/, 0],
    ['a huge size', craft('f', { filesize: 0xfffffff0 }), 'CPIO_FORMAT', /claims 4294967280 bytes/, 0],
    ['a name longer than PATH_MAX', craft('x', { namesize: 5000 }), 'CPIO_FORMAT', /name size 5000/, 0],
    ['a symlink without target', craft('l', { mode: 0o120777 }), 'CPIO_FORMAT', /symlink "l"/, 0],
    // The member before the trailer is 116 bytes: the trailer was due there.
    ['no trailer', good.subarray(0, 116), 'CPIO_FORMAT', /without a TRAILER/, 116],
    ['a truncated header', good.subarray(0, 50), 'CPIO_FORMAT', /truncated cpio header/, 0],
    ['a truncated body', good.subarray(0, 114), 'CPIO_FORMAT', /truncated/, 0],
  ])('%s gives a clear typed error', (_what, bytes, code, re, offset) => {
    const e = errorOf(() => readCpioArchive(bytes, 0, { file: '/tmp/evil.cpio' }));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(re);
    expect(e.message).toContain('/tmp/evil.cpio');
    expect(e.offset).toBe(offset);
  });

  it('rejects header fields that are not hex, and the old odc format', () => {
    const bad = Uint8Array.from(good);
    bad[10] = 0x47; // 'G'
    expect(errorOf(() => readCpioArchive(bad, 0)).message).toMatch(/ino is not 8 hex digits/);
    const odc = Uint8Array.from(good);
    odc.set(enc.encode('070707'), 0);
    expect(errorOf(() => readCpioArchive(odc, 0)).message).toMatch(/odc/);
  });

  it('rejects junk and misaligned archives inside a decompressed stream, like the kernel', () => {
    expect(errorOf(() => readCpioStream(Buffer.concat([good, enc.encode('junk')]))).message).toMatch(/junk/);
    expect(errorOf(() => readCpioStream(Buffer.concat([good, new Uint8Array(2), good]))).message).toMatch(/broken padding/);
  });
});
