import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { formatSymvers, parseSymvers, readSymbolFileBytes, readSymversFile } from '../../src/symvers/index.js';
import { READ_BUDGETS } from '../../src/fs.js';
import { depmodVmlinuxTable } from '../../src/compat/kernel-model.js';
import { KabiError } from '../../src/errors.js';

const ns_last = [
  '0x9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t',
  '0x1a2b3c4d\tusb_stor_Bulk_reset\tdrivers/usb/storage/usb-storage\tEXPORT_SYMBOL_GPL\tUSB_STORAGE',
  '0x00000000\tbroken_sym\tvmlinux\tEXPORT_SYMBOL_GPL\t',
].join('\n') + '\n';
const ns_third = [
  '0x9060323f\tmodule_layout\t\tvmlinux\tEXPORT_SYMBOL',
  '0x1a2b3c4d\tusb_stor_Bulk_reset\tUSB_STORAGE\tdrivers/usb/storage/usb-storage\tEXPORT_SYMBOL_GPL',
  '0x0badcafe\tns_kernel_sym\tCRYPTO\tvmlinux\tEXPORT_SYMBOL',
].join('\n') + '\n';
const four = ['0x9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL', '0x1a2b3c4d\tfoo\tdrivers/foo\tEXPORT_SYMBOL_GPL_FUTURE'].join('\n') + '\n';
const legacy = '0x9060323f\tmodule_layout\tvmlinux\n0x00000001\tbar\tdrivers/bar\n';

describe('Module.symvers parsing', () => {
  it('reads the ≥5.6 layout (namespace last, trailing tab when empty)', () => {
    const t = parseSymvers(ns_last, { file: 'Module.symvers' });
    expect(t.format).toBe('ns-last');
    expect(t.size).toBe(3);
    expect(t.get('usb_stor_Bulk_reset')).toMatchObject({
      crc: 0x1a2b3c4dn,
      module: 'drivers/usb/storage/usb-storage',
      exportType: 'EXPORT_SYMBOL_GPL',
      namespace: 'USB_STORAGE',
      line: 2,
    });
    expect(t.get('module_layout')?.namespace).toBeUndefined();
    expect(t.vmlinux().map((e) => e.symbol)).toEqual(['module_layout', 'broken_sym']);
  });

  it('reads the 5.4–5.5 layout (namespace third)', () => {
    const t = parseSymvers(ns_third);
    expect(t.format).toBe('ns-third');
    expect(t.get('usb_stor_Bulk_reset')).toMatchObject({ module: 'drivers/usb/storage/usb-storage', namespace: 'USB_STORAGE' });
    expect(t.get('module_layout')).toMatchObject({ module: 'vmlinux', namespace: undefined });
  });

  it('reads the ≤5.3 four-column and the old three-column layouts', () => {
    expect(parseSymvers(four).get('foo')).toMatchObject({ module: 'drivers/foo', exportType: 'EXPORT_SYMBOL_GPL_FUTURE', namespace: undefined });
    expect(parseSymvers(four).format).toBe('4col');
    const l = parseSymvers(legacy);
    expect(l.format).toBe('legacy');
    expect(l.get('bar')).toMatchObject({ crc: 1n, module: 'drivers/bar', exportType: undefined });
  });

  it('ignores blank lines and CR line ends', () => {
    expect(parseSymvers('\n' + ns_last.replace(/\n/g, '\r\n') + '\n\n').size).toBe(3);
  });

  for (const [name, text] of [['ns-last', ns_last], ['ns-third', ns_third], ['4col', four], ['legacy', legacy]] as const) {
    it(`writes the ${name} layout back byte for byte`, () => {
      const t = parseSymvers(text);
      expect(formatSymvers(t.entries, t.format)).toBe(text);
    });
  }

  it('depmod -E only sees lines whose third token is vmlinux (5.4 files lose namespaced kernel symbols)', () => {
    expect([...depmodVmlinuxTable(parseSymvers(ns_third)).keys()]).toEqual(['module_layout']);
    expect([...depmodVmlinuxTable(parseSymvers(ns_last)).keys()]).toEqual(['module_layout', 'broken_sym']);
  });

  const corrupt: [string, RegExp][] = [
    ['0x1234\tonly_two', /expected 3 to 5/],
    ['zz123456\tsym\tvmlinux\tEXPORT_SYMBOL\t', /not a hexadecimal/],
    ['0x12345678\tsym\tvmlinux\tEXPORT_SOMETHING\t', /no known export type/],
    ['0x12345678\tsym\tvmlinux\tEXPORT_SYMBOL\tNS\textra', /expected 3 to 5/],
    ['0x12345678\t\tvmlinux\tEXPORT_SYMBOL\t', /symbol name/],
    ['0x12345678\tsym\t\tEXPORT_SYMBOL\t', /module field is empty/],
    ['0x12345678 sym vmlinux EXPORT_SYMBOL', /expected 3 to 5/],
  ];
  for (const [line, pattern] of corrupt) {
    it(`names the file and line of a corrupt line: ${JSON.stringify(line).slice(0, 40)}`, () => {
      const text = ns_last + line + '\n';
      let err: unknown;
      try {
        parseSymvers(text, { file: '/boot/symvers-x.gz' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KabiError);
      expect((err as KabiError).code).toBe('SYMVERS_FORMAT');
      expect((err as KabiError).line).toBe(4);
      expect((err as KabiError).message).toMatch(/^\/boot\/symvers-x\.gz:4: /);
      expect((err as KabiError).message).toMatch(pattern);
    });
  }
});

describe('symvers files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kabi-symvers-'));
  const variants: [string, (b: Buffer) => Uint8Array][] = [
    ['plain', (b) => b],
    ['gz', (b) => gzipSync(b)],
    ['xz', (b) => execFileSync('xz', ['-c', '--check=crc32'], { input: b })],
    ['zst', (b) => execFileSync('zstd', ['-q', '-c'], { input: b })],
  ];
  for (const [ext, enc] of variants) {
    it(`reads a ${ext} symvers by its magic, whatever its name`, async () => {
      const f = join(dir, `symvers-${ext}.bin`);
      writeFileSync(f, enc(Buffer.from(ns_last)));
      const t = await readSymversFile(f);
      expect(t.size).toBe(3);
      expect(t.file).toBe(f);
    });
  }

  it('names the file when it is compressed garbage', async () => {
    const f = join(dir, 'symvers-bad.gz');
    writeFileSync(f, gzipSync(Buffer.from(ns_last)).subarray(0, 30));
    await expect(readSymversFile(f)).rejects.toThrow(/symvers-bad\.gz/);
  });
});

describe('readSymversFile budgets (issue 12 item 5)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kabi-symvers-budget-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a FIFO or a device is refused without waiting on it', async () => {
    const fifo = join(dir, 'Module.symvers');
    execFileSync('mkfifo', [fifo]);
    await expect(readSymversFile(fifo)).rejects.toMatchObject({ code: 'NOT_A_FILE', file: fifo, detail: 'refusing to read a FIFO as a kernel symbol list: only regular files are read' });
    await expect(readSymversFile('/dev/zero')).rejects.toMatchObject({ code: 'NOT_A_FILE' });
  });

  it('a symvers that inflates past the budget stops there, never reaching a string too long to make', { timeout: 20_000 }, async () => {
    // The repro: past 512 MiB, "Cannot create a string longer than …" and a stack trace.
    const bomb = join(dir, 'symvers.gz');
    execFileSync('sh', ['-c', `yes '0x12345678	sym	vmlinux	EXPORT_SYMBOL	' | head -c 100M | gzip -1 -c > ${bomb}`]);
    await expect(readSymversFile(bomb)).rejects.toMatchObject({ code: 'LIMIT', file: bomb, detail: 'decompresses to more than the 64 MiB limit for a kernel symbol list' });
    const big = join(dir, 'big.symvers');
    writeFileSync(big, '');
    truncateSync(big, READ_BUDGETS.symbols.maxBytes + 1);
    await expect(readSymbolFileBytes(big)).rejects.toMatchObject({ code: 'LIMIT', detail: 'is more than the 64 MiB limit for a kernel symbol list' });
  });
});
