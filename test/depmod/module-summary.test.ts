import { describe, expect, it } from 'vitest';
import { buildModuleBytes, type ExportStyle } from '../../corpus/fixtures/module-builder.js';
import { Interner, summarizeElf, type ModuleSummary } from '../../src/depmod/index.js';
import { summaryFromKernelModule } from '../../src/depmod/module-summary.js';
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
