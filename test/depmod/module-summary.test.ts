import { describe, expect, it } from 'vitest';
import { buildModuleBytes, type ExportStyle } from '../../corpus/fixtures/module-builder.js';
import { Interner, summarizeElf, type ModuleSummary } from '../../src/depmod/index.js';
import { summarizeElfFast, summarizeElfGeneral, summaryFromKernelModule } from '../../src/depmod/module-summary.js';
import { rng } from '../random.js';
import { readModule } from '../../src/module/read-module.js';

// Two ways to a module's depmod summary: depmod's own reading (main thread, lenient like
// kmod) and the module reader's parse (what its worker threads return). They must agree.

function plain(s: ModuleSummary, strings: Interner) {
  const str = (ids: Uint32Array) => [...ids].map((i) => strings.strings[i]);
  return { exports: str(s.exports), exportCrcs: [...s.exportCrcs], deps: str(s.deps), depCrcs: [...s.depCrcs], depWeak: [...s.depWeak], info: str(s.info), error: s.error };
}

describe('module summaries', () => {
  const styles: [ExportStyle, 32 | 64, 'little' | 'big'][] = [
    ['kcrctab', 64, 'little'],
    ['abs-crc', 64, 'little'],
    ['rel-crc', 64, 'big'],
    ['kcrctab', 32, 'little'],
    ['abs-crc', 32, 'big'],
    ['kflagstab', 64, 'little'],
  ];
  it.each(styles)('%s exports, ELF%i %s-endian: the reader’s parse gives depmod’s summary', (exportStyle, elfClass, endian) => {
    const bytes = buildModuleBytes({
      name: 'm',
      elfClass,
      endian,
      exportStyle,
      exports: [{ symbol: 'm_fn', crc: 0x1234 }, { symbol: 'm_gpl', crc: 0x99, gpl: true }],
      versions: [{ symbol: 'module_layout', crc: 7 }, { symbol: 'printk', crc: 5 }, { symbol: 'printk', crc: 6 }],
      undefinedSymbols: ['printk', { name: 'hook', weak: true }, 'unversioned'],
      modinfo: [['alias', 'pci:v*d*'], ['softdep', 'pre: x'], ['alias', 'dev-m'], ['description', 'ignored'], ['weakdep', 'y']],
    });
    const a = new Interner();
    const b = new Interner();
    const direct = plain(summarizeElf(bytes, a), a);
    expect(plain(summaryFromKernelModule(readModule(bytes), b), b)).toEqual(direct);
    expect(direct.exports).toEqual(['m_fn', 'm_gpl']);
    // kmod takes the first __versions entry of a name; entries left over are needs of their own.
    expect(direct.deps).toEqual(['printk', 'hook', 'unversioned', 'module_layout', 'printk']);
    expect(direct.depCrcs).toEqual([5n, 0n, 0n, 7n, 6n]);
    expect(direct.depWeak).toEqual([0, 1, 0, 0, 0]);
    expect(direct.info).toEqual(['alias', 'pci:v*d*', 'softdep', 'pre: x', 'alias', 'dev-m', 'weakdep', 'y']);
  });
});

describe('the fast summary', () => {
  const text = (s: ModuleSummary | undefined, strings: Interner) => (s === undefined ? undefined : JSON.stringify(plain(s, strings), (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
  const module = (elfClass: 32 | 64, endian: 'little' | 'big', exportStyle: ExportStyle, crcs = true) =>
    buildModuleBytes({
      name: 'm',
      elfClass,
      endian,
      exportStyle,
      exports: crcs ? [{ symbol: 'm_fn', crc: 0x1234 }, { symbol: 'm_gpl', crc: 0xfedcba98, gpl: true }] : [{ symbol: 'm_fn' }, { symbol: 'm_ns', namespace: 'NS' }],
      versions: [{ symbol: 'module_layout', crc: 7 }, { symbol: 'printk', crc: 5 }, { symbol: 'printk', crc: 6 }],
      undefinedSymbols: ['printk', { name: 'hook', weak: true }, 'unversioned'],
      modinfo: [['alias', 'pci:v*d*'], ['softdep', 'pre: x'], ['alias', ''], ['description', 'ignored'], ['weakdep', 'y']],
    });

  it.each([
    [64, 'little', 'kcrctab'],
    [64, 'big', 'rel-crc'],
    [32, 'little', 'abs-crc'],
    [32, 'big', 'kcrctab'],
    [64, 'little', 'kflagstab'],
    [64, 'little', 'no CRC'],
  ] as const)('ELF%i %s-endian, %s exports: taken, and what the general reading gives', (elfClass, endian, style) => {
    const bytes = style === 'no CRC' ? module(elfClass, endian, 'kcrctab', false) : module(elfClass, endian, style);
    const a = new Interner();
    const b = new Interner();
    const fast = summarizeElfFast(bytes, a);
    expect(fast).toBeDefined();
    expect(text(fast, a)).toBe(text(summarizeElfGeneral(bytes, b), b));
    // Without CRCs kmod lists every string of __ksymtab_strings (a namespace's too).
    expect(plain(fast!, a).exports).toEqual(style === 'no CRC' ? expect.arrayContaining(['m_fn', 'm_ns', 'NS']) : ['m_fn', 'm_gpl']);
  });

  it('on damaged modules: either the general reading’s summary, or none (and then the general reading is used)', () => {
    // Bytes changed anywhere a reader looks (headers, section table, symbols, strings,
    // __versions, .modinfo): whatever the fast path makes of it must be the general answer.
    const random = rng(17);
    let taken = 0;
    let left = 0;
    for (const [elfClass, endian, style] of [
      [64, 'little', 'kcrctab'],
      [32, 'big', 'abs-crc'],
      [64, 'big', 'rel-crc'],
      [64, 'little', 'no CRC'],
    ] as const) {
      const good = style === 'no CRC' ? module(elfClass, endian, 'kcrctab', false) : module(elfClass, endian, style);
      for (let round = 0; round < 1500; round++) {
        const bytes = Uint8Array.from(good);
        for (let k = 1 + Math.floor(random() * 3); k > 0; k--) {
          const at = Math.floor(random() * bytes.length);
          bytes[at] = random() < 0.5 ? Math.floor(random() * 256) : bytes[at]! ^ (1 << Math.floor(random() * 8));
        }
        const a = new Interner();
        const b = new Interner();
        const fast = summarizeElfFast(bytes, a);
        if (fast === undefined) left++;
        else {
          taken++;
          expect(text(fast, a), `${elfClass}/${endian}/${style} round ${round}`).toBe(text(summarizeElfGeneral(bytes, b), b));
        }
      }
    }
    expect(taken).toBeGreaterThan(1000);
    expect(left).toBeGreaterThan(10);
  });
});

describe('interning from bytes', () => {
  it('numbers a text as id() does, however it was met first', () => {
    const s = new Interner();
    const bytes = (t: string) => Uint8Array.from(t, (c) => c.charCodeAt(0));
    const b = bytes('xprintk\0module_layout\0é\0');
    expect(s.id('printk')).toBe(0);
    expect(s.idOfBytes(b, 1, 7)).toBe(0);
    expect(s.idOfBytes(b, 8, 21)).toBe(1);
    expect(s.id('module_layout')).toBe(1);
    expect(s.idOfBytes(b, 22, 23)).toBe(2);
    expect(s.get(2)).toBe('é');
    expect(s.idOfBytes(b, 0, 0)).toBe(3);
    expect(s.id('')).toBe(3);
    // Many strings: the table grows, numbers stay.
    for (let i = 0; i < 5000; i++) expect(s.idOfBytes(bytes(`sym_${i}`), 0, `sym_${i}`.length)).toBe(4 + i);
    for (let i = 0; i < 5000; i += 7) expect(s.id(`sym_${i}`)).toBe(4 + i);
    // A string of a character past Latin-1 (never read out of a module) leaves bytes to id().
    expect(s.id('\u0100x')).toBe(5004);
    expect(s.idOfBytes(bytes('printk'), 0, 6)).toBe(0);
    expect(s.idOfBytes(bytes('new'), 0, 3)).toBe(5005);
  });
});
