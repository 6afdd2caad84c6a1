import { execFileSync } from 'node:child_process';
import * as zlib from 'node:zlib';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { codecReport, compress, decompress, decompressSegment, type Compression } from '../../native-bindings/index.js';
import { expectKabiError, expectSame, MODES, realisticPayload, tool, toolOnFile, withNative } from './helpers.js';

const payload = realisticPayload(1_500_000, 5);
/** For the formats that only go through a CLI, and for slow presets. */
const small = realisticPayload(300_000, 6);

/** The real decompressor for each format: the kernel-facing output must satisfy it. */
const ORACLE: Record<Compression, [string, string[]]> = {
  gzip: ['gzip', ['-dc']],
  xz: ['xz', ['-dc']],
  zstd: ['zstd', ['-dc', '-q']],
  lz4: ['lz4', ['-dc', '-q']],
  bzip2: ['bzip2', ['-dc']],
  lzma: ['xz', ['--format=lzma', '-dc']],
  lzo: ['lzop', ['-dc']],
};

const FORMATS: Compression[] = ['gzip', 'xz', 'zstd', 'lz4', 'bzip2', 'lzma', 'lzo'];

describe.each(MODES)('compress (%s)', (mode) => {
  it.each(FORMATS)('%s output decodes with the real tool and with decompress()', async (format) => {
    // xz/bzip2/lzma/lzo compress through the same CLI in both modes, and slowly: keep them small.
    const data = format === 'gzip' || format === 'zstd' || format === 'lz4' ? payload : small;
    const out = await withNative(mode, () => compress(data, format, { level: format === 'zstd' ? 3 : undefined }));
    expect(out.length).toBeLessThan(data.length);
    const [cmd, args] = ORACLE[format];
    expectSame(tool(cmd, args, out), data);
    expectSame(await withNative(mode, () => decompress(out, format)), data);
  });

  it('zstd at level 19 stays within an 8 MiB window', async () => {
    const out = await withNative(mode, () => compress(payload, 'zstd', { level: 19 }));
    const info = toolOnFile('zstd', ['-lv'], out, '.zst');
    expect(info).toMatch(/Window Size: +[\d.]+ [KM]iB/);
    const m = /Window Size: +([\d.]+) ([KM]iB)/.exec(info)!;
    const bytes = Number(m[1]) * (m[2] === 'MiB' ? 1 << 20 : 1 << 10);
    expect(bytes).toBeLessThanOrEqual(8 << 20);
    expect(info).toContain('XXH64');
    expectSame(tool('zstd', ['-dc', '-q'], out), payload);
  });
});

describe('compress: kernel constraints', () => {
  it('xz uses a CRC32 check and a 1 MiB dictionary (xz -lvv)', async () => {
    for (const level of [undefined, 9]) {
      const out = await compress(small, 'xz', { level });
      const info = toolOnFile('xz', ['-lvv', '--robot'], out, '.xz');
      // --robot "stream" lines carry the check name; "block" lines the filter chain.
      expect(info).toMatch(/^stream\t.*\tCRC32\t/m);
      expect(info).not.toMatch(/CRC64|SHA-256/);
      expect(info).toMatch(/--lzma2=dict=1MiB/);
    }
  });

  it('gzip is like gzip -n: no file name, mtime 0', async () => {
    const out = await compress(payload, 'gzip');
    expect(out[0]).toBe(0x1f);
    expect(out[3]! & 0x08).toBe(0); // FNAME
    expect(Buffer.from(out).readUInt32LE(4)).toBe(0); // MTIME
  });

  it('gzip of a large input, deflated in pieces side by side: one member that gzip -d and zlib read, with the header one pass writes', async () => {
    const lines: string[] = [];
    for (let i = 0; lines.length < 200_000; i++) lines.push(`usr/lib/modules/6.1.0-${i % 7}-amd64/kernel/x${(i * 2654435761) % 100003}.ko`);
    const big = new Uint8Array(Buffer.from(lines.join('\n')));
    expect(big.length).toBeGreaterThan(5 << 20);
    for (const level of [1, 6, 9]) {
      const out = await compress(big, 'gzip', { level });
      const one = zlib.gzipSync(big, { level });
      expect(Buffer.from(out.subarray(0, 10)).equals(one.subarray(0, 10))).toBe(true);
      expect(execFileSync('gzip', ['-dc'], { input: out, maxBuffer: 1 << 28 }).equals(Buffer.from(big))).toBe(true);
      // Exactly one member: a second would make zlib's gunzip and the kernel see two segments.
      expect(zlib.inflateRawSync(out.subarray(10)).equals(Buffer.from(big))).toBe(true);
      expect(out.length).toBeLessThan(one.length * 1.01);
    }
  });

  it('lz4 is the legacy format (lz4 -l)', async () => {
    const out = await compress(payload, 'lz4');
    expect(Buffer.from(out).readUInt32LE(0)).toBe(0x184c2102);
  });

  it('rejects a level the tool does not have', async () => {
    await expectKabiError(compress(payload, 'gzip', { level: 10, file: 'x.gz' }), 'USAGE', 'x.gz');
    await expectKabiError(compress(payload, 'zstd', { level: 22 }), 'USAGE');
    await expectKabiError(compress(payload, 'xz', { level: 1.5 }), 'USAGE');
  });
});

describe('without the command-line tools', () => {
  const savedPath = process.env['PATH'];
  let empty: string | undefined;
  afterEach(() => {
    process.env['PATH'] = savedPath;
    if (empty) rmSync(empty, { recursive: true, force: true });
    empty = undefined;
  });
  /** PATH becomes a fresh directory holding links to `keep` only. */
  function hideTools(keep: string[] = []): void {
    empty = mkdtempSync(join(tmpdir(), 'kabi-nopath-'));
    for (const name of keep) {
      const real = tool('sh', ['-c', `command -v ${name}`], Buffer.alloc(0)).toString().trim();
      symlinkSync(real, join(empty, name));
    }
    process.env['PATH'] = empty;
  }

  it.each(['bzip2', 'lzma', 'lzo', 'xz'] as const)('%s compression is UNSUPPORTED_COMPRESSION naming the program', async (format) => {
    hideTools();
    const e = await expectKabiError(compress(payload, format, { file: 'out' }), 'UNSUPPORTED_COMPRESSION', 'out');
    expect(e.message).toMatch(format === 'lzo' ? /lzop/ : format === 'lzma' ? /xz/ : new RegExp(format));
  });

  it('lzma works with only the LZMA SDK `lzma` program (no xz)', async () => {
    const lz = tool('xz', ['--format=lzma', '-c', '-0'], small);
    hideTools(['lzma']);
    expectSame(await decompress(lz, 'lzma'), small);
    const seg = await decompressSegment(Buffer.concat([lz, Buffer.alloc(64)]), 0);
    expectSame(seg.data, small);
    const out = await compress(small, 'lzma', { level: 0 });
    process.env['PATH'] = savedPath;
    expectSame(tool('xz', ['--format=lzma', '-dc'], out), small);
  });

  it('bzip2 decompression is UNSUPPORTED_COMPRESSION', async () => {
    const bz = tool('bzip2', ['-c'], small);
    hideTools();
    await expectKabiError(decompress(bz, 'bzip2', { file: 'a.bz2' }), 'UNSUPPORTED_COMPRESSION', 'a.bz2');
  });

  it('xz still decompresses through WASM, and needs xz(1) only when WASM is off', async () => {
    const x = tool('xz', ['-c', '-0'], payload);
    hideTools();
    expectSame(await withNative('native', () => decompress(x, 'xz')), payload);
    await withNative('fallback', () => expectKabiError(decompress(x, 'xz', { file: 'm.ko.xz' }), 'UNSUPPORTED_COMPRESSION', 'm.ko.xz'));
  });

  it('xz with a BCJ filter (which XZ Embedded-in-WASM lacks) needs xz(1)', async () => {
    const x = tool('xz', ['-c', '--x86', '--lzma2=preset=0'], small);
    expectSame(await withNative('native', () => decompress(x, 'xz')), small); // retried with xz(1)
    hideTools();
    const e = await withNative('native', () => expectKabiError(decompress(x, 'xz', { file: 'f.xz' }), 'UNSUPPORTED_COMPRESSION', 'f.xz'));
    expect(e.message).toMatch(/unsupported options/);
  });

  it('lz4 falls back to lz4-napi blocks in legacy framing, which lz4 -d and our decoder accept', async () => {
    hideTools();
    const big = Buffer.concat([payload, realisticPayload(8 << 20, 9)]); // two chunks
    const out = await withNative('native', () => compress(big, 'lz4'));
    const report = await withNative('native', () => codecReport());
    await withNative('fallback', () => expectKabiError(compress(big, 'lz4', { file: 'i.lz4' }), 'UNSUPPORTED_COMPRESSION', 'i.lz4'));
    process.env['PATH'] = savedPath;
    expect(report.lz4.compress).toMatch(/lz4-napi/);
    expect(Buffer.from(out).readUInt32LE(0)).toBe(0x184c2102);
    expectSame(tool('lz4', ['-dc', '-q'], out), big);
    expectSame(await withNative('fallback', () => decompress(out, 'lz4')), big);
  });

  it('zstd compresses with zstd-napi, and with neither it is UNSUPPORTED_COMPRESSION', async () => {
    hideTools();
    const out = await withNative('native', () => compress(payload, 'zstd'));
    expectSame(await decompress(out, 'zstd'), payload);
    await withNative('fallback', () => expectKabiError(compress(payload, 'zstd'), 'UNSUPPORTED_COMPRESSION'));
  });
});

describe('codecReport', () => {
  it('names the native packages when they load and the fallbacks when disabled', async () => {
    const native = await withNative('native', () => codecReport());
    expect(native.zstd.decompress).toMatch(/zstd-napi/);
    expect(native.xz.decompress).toMatch(/xz-decompress/);
    expect(native.lz4.decompress).toMatch(/built-in/);
    expect(native.gzip.decompress).toBe('node:zlib');
    expect(native.xz.compress).toMatch(/xz CLI/);
    expect(native.bzip2.decompress).toMatch(/bzip2 CLI/);

    const fallback = await withNative('fallback', () => codecReport());
    expect(fallback.zstd.decompress).toBe('fzstd (pure JS; zstd-napi disabled by KABI_DISABLE_NATIVE)');
    expect(fallback.zstd.compress).toMatch(/^zstd CLI/);
    expect(fallback.xz.decompress).toMatch(/^xz CLI/);
    expect(fallback.lz4.decompress).not.toMatch(/napi/);
    expect(fallback.lz4.compress).toMatch(/lz4 CLI/);
  });

  it('KABI_DISABLE_NATIVE takes a comma list', async () => {
    const before = process.env['KABI_DISABLE_NATIVE'];
    process.env['KABI_DISABLE_NATIVE'] = 'zstd-napi, xz-decompress';
    try {
      const r = await codecReport();
      expect(r.zstd.decompress).toMatch(/fzstd/);
      expect(r.xz.decompress).toMatch(/^xz CLI/);
      process.env['KABI_DISABLE_NATIVE'] = 'xz-decompress';
      expect((await codecReport()).zstd.decompress).toMatch(/zstd-napi/);
    } finally {
      if (before === undefined) delete process.env['KABI_DISABLE_NATIVE'];
      else process.env['KABI_DISABLE_NATIVE'] = before;
    }
  });
});
