// Hostile images: special files in place of an image and cpio bombs are refused with a typed
// error naming the file, each in bounded time and memory (the built bin, as a process), and
// nothing is written.

import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, makeRoot } from '../../corpus/fixtures/system-root.js';
import { cleanupTemps, tempDir } from '../initramfs/helpers.js';
import { expectBounded, runBin } from './hostile-helpers.js';

afterAll(cleanupTemps);

/**
 * A zstd frame holding one cpio archive with a single member "zero" of `size` NUL bytes,
 * made of RLE blocks (4 bytes each for 128 KiB of zeros): 1.9 GiB fits in about 63 KB.
 */
export function zeroBombZstd(size: number): Uint8Array {
  const BLOCK = 128 * 1024;
  const hdr = (fields: number[], name: string) => {
    const h = '070701' + fields.map((f) => f.toString(16).toUpperCase().padStart(8, '0')).join('');
    const n = name + '\0';
    const pad = (4 - ((h.length + n.length) % 4)) % 4;
    return Buffer.from(h + n + '\0'.repeat(pad), 'latin1');
  };
  const head = hdr([1, 0o100644, 0, 0, 1, 0, size, 0, 0, 0, 0, 'zero'.length + 1, 0], 'zero');
  const tailPad = (4 - (size % 4)) % 4;
  const trailer = Buffer.concat([Buffer.alloc(tailPad), hdr([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 'TRAILER!!!'.length + 1, 0], 'TRAILER!!!')]);
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38])];
  const block = (type: number, last: boolean, sizeField: number, body: Buffer) => {
    const v = (last ? 1 : 0) | (type << 1) | (sizeField << 3);
    parts.push(Buffer.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff]), body);
  };
  block(0, false, head.length, head);
  for (let left = size; left > 0; left -= BLOCK) block(1, false, Math.min(BLOCK, left), Buffer.from([0]));
  block(0, true, trailer.length, trailer);
  return Buffer.concat(parts);
}

describe('kabi initramfs ls on what is not an image', () => {
  it('the zero bomb is a real zstd stream: zstd itself inflates it to the member it claims', () => {
    const head = execFileSync('sh', ['-c', 'zstd -dc | head -c 200000 | wc -c'], { input: zeroBombZstd(8 * 1024 * 1024) });
    expect(Number(head.toString().trim())).toBe(200000);
  });

  it('a 1.9 GiB zero file in a 63 KB cpio.zst: refused at the expansion limit', () => {
    const bomb = zeroBombZstd(0x79999999);
    expect(bomb.length).toBeLessThan(64 * 1024);
    const file = join(tempDir(), 'bomb.img');
    writeFileSync(file, bomb);
    const r = runBin('kabi', ['initramfs', 'ls', file]);
    expectBounded(r, 'a 1.9 GiB zero file in a 63 KB cpio.zst');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/zstd.*exceed.*limit.*cpio bomb/);
  });

  it.each([
    ['/dev/zero', () => '/dev/zero', /refusing to read a character device as a boot image/],
    ['a FIFO nobody writes to', () => {
      const f = join(tempDir(), 'fifo.img');
      execFileSync('mkfifo', [f]);
      return f;
    }, /refusing to read a FIFO as a boot image/],
    ['a directory', () => tempDir(), /refusing to read a directory as a boot image/],
  ])('%s: refused before a byte is read', (what, make, message) => {
    const file = make();
    const r = runBin('kabi', ['initramfs', 'ls', file]);
    expectBounded(r, `kabi initramfs ls on ${what}`);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(message);
  });
});

describe('a kernel whose image is hostile', () => {
  it.each([
    ['a FIFO', (p: string) => execFileSync('mkfifo', [p])],
    ['/dev/zero itself (a character device node)', (p: string) => execFileSync('mknod', [p, 'c', '1', '5'])],
    ['a zero bomb', (p: string) => writeFileSync(p, zeroBombZstd(0x79999999))],
  ])('%s: check and update stop with a typed error, write nothing and leave nothing', (what, make) => {
    const fx = makeRoot('kabi-hostile-');
    addKernel(fx, { release: '6.1.0-90-amd64', modules: [{ path: 'kernel/lib/kabi_base', spec: {} }], initramfs: 'dracut' });
    const image = fx.path('/boot/initramfs-6.1.0-90-amd64.img');
    rmSync(image);
    make(image);
    const before = readdirSync(join(fx.root, 'boot')).sort();
    for (const args of [['check'], ['update']]) {
      const r = runBin('kabi', ['initramfs', ...args, '--root', fx.root, '6.1.0-90-amd64']);
      expectBounded(r, `kabi initramfs ${args[0]} with ${what} as the image`);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(image);
    }
    expect(readdirSync(join(fx.root, 'boot')).sort()).toEqual(before);
  });
});
