import { describe, expect, it } from 'vitest';
import { buildModule, type ExportStyle, type FixtureModuleSpec } from '../../corpus/fixtures/module-builder.js';
import { readModule } from '../../src/module/read-module.js';
import { formatCrc } from '../../src/module/modversions.js';
import { KabiError } from '../../src/errors.js';
import { ElfFile } from '../../src/elf/reader.js';
import { SHN_UNDEF } from '../../src/elf/constants.js';

const flavours: { elfClass: 32 | 64; endian: 'little' | 'big' }[] = [
  { elfClass: 64, endian: 'little' },
  { elfClass: 64, endian: 'big' },
  { elfClass: 32, endian: 'little' },
  { elfClass: 32, endian: 'big' },
];

const base: FixtureModuleSpec = {
  name: 'kabi_fixture',
  license: 'GPL',
  depends: ['usbcore', 'scsi_mod'],
  importNs: ['USB_STORAGE', 'CRYPTO_INTERNAL'],
  modinfo: [
    ['alias', 'usb:v1234p*'],
    ['alias', 'pci:v00008086d*'],
    ['license', 'Proprietary'], // a second license= is ignored by the loader
  ],
  versions: [
    { symbol: 'module_layout', crc: 0x9060323f },
    { symbol: 'usb_register_driver', crc: 0x12345678 },
    { symbol: 'kfree', crc: 0xcafef00d },
  ],
  undefinedSymbols: ['usb_register_driver', 'kfree', { name: 'optional_hook', weak: true }],
  exports: [
    { symbol: 'kabi_plain', crc: 0x11111111 },
    { symbol: 'kabi_gpl', crc: 0x22222222, gpl: true },
    { symbol: 'kabi_ns', crc: 0x33333333, gpl: true, namespace: 'KABI_NS' },
  ],
};

describe('readModule on synthetic modules', () => {
  for (const f of flavours) {
    it(`reads an ELF${f.elfClass} ${f.endian}-endian symbol table in place, and refuses an index outside it`, () => {
      const t = new ElfFile(buildModule({ ...base, ...f }).bytes, 'x.ko').symbolTable();
      const undef = Array.from({ length: t.count - 1 }, (_, k) => k + 1).filter((i) => t.shndx(i) === SHN_UNDEF && !t.isNameEmpty(i));
      expect(undef.map((i) => [t.name(i), t.bind(i)])).toEqual([
        ['usb_register_driver', 1],
        ['kfree', 1],
        ['optional_hook', 2],
      ]);
      // Each accessor agrees with the entry as symbol() reads it from its own offset.
      for (let i = 0; i < t.count; i++) {
        const s = t.symbol(i);
        expect([s.shndx, s.bind, s.type, s.value, s.entryOffset]).toEqual([t.shndx(i), t.bind(i), t.type(i), t.value(i), t.section.offset + i * (f.elfClass === 64 ? 24 : 16)]);
      }
      for (const bad of [-1, t.count, t.count + 1000, 1.5, Number.NaN]) {
        for (const read of [() => t.shndx(bad), () => t.value(bad), () => t.bind(bad), () => t.name(bad), () => t.symbol(bad), () => t.isNameEmpty(bad)]) {
          expect(read).toThrow(RangeError);
        }
      }
    });

    it(`reads every part of an ELF${f.elfClass} ${f.endian}-endian module`, () => {
      const built = buildModule({ ...base, ...f });
      const mod = readModule(built.bytes, { file: 'x.ko' });
      expect(mod.elf.class).toBe(f.elfClass);
      expect(mod.elf.endian).toBe(f.endian);
      expect(mod.name).toBe('kabi_fixture');
      expect(mod.license).toBe('GPL');
      expect(mod.modinfo.getAll('license')).toEqual(['GPL', 'Proprietary']);
      expect(mod.modinfo.getAll('alias')).toEqual(['usb:v1234p*', 'pci:v00008086d*']);
      expect(mod.depends).toEqual(['usbcore', 'scsi_mod']);
      expect(mod.importNamespaces).toEqual(['USB_STORAGE', 'CRYPTO_INTERNAL']);
      expect(mod.vermagic?.release).toBe('6.1.0-99-amd64');
      expect(mod.vermagic?.flags).toBe(' SMP preempt mod_unload modversions ');
      expect(mod.versions?.map((v) => [v.symbol, formatCrc(v.crc)])).toEqual([
        ['module_layout', '0x9060323f'],
        ['usb_register_driver', '0x12345678'],
        ['kfree', '0xcafef00d'],
      ]);
      expect(mod.versionsAllocated).toBe(true);
      expect(mod.undefinedSymbols).toEqual([
        { name: 'usb_register_driver', weak: false },
        { name: 'kfree', weak: false },
        { name: 'optional_hook', weak: true },
      ]);
      const exports = [...mod.exports].sort((a, b) => a.symbol.localeCompare(b.symbol));
      expect(exports.map((e) => [e.symbol, e.crc, e.gplOnly, e.namespace])).toEqual([
        ['kabi_gpl', 0x22222222n, true, undefined],
        ['kabi_ns', 0x33333333n, true, 'KABI_NS'],
        ['kabi_plain', 0x11111111n, false, undefined],
      ]);
      expect(mod.thisModule).toMatchObject({ count: 1, size: f.elfClass === 64 ? 0x500 : 0x280, name: 'kabi_fixture' });
      expect(mod.signature).toBeUndefined();
    });
  }

  const styles: { style: ExportStyle; entry: number }[] = [
    { style: 'abs-crc', entry: 24 },
    { style: 'abs-crc', entry: 16 },
    { style: 'rel-crc', entry: 12 },
    { style: 'kcrctab', entry: 12 },
    { style: 'kcrctab', entry: 8 },
    { style: 'kflagstab', entry: 12 },
  ];
  for (const { style, entry } of styles) {
    for (const f of flavours) {
      const entrySize = f.elfClass === 32 && entry > 12 ? 12 : entry;
      it(`exports in the ${style} era (kernel_symbol ${entrySize} bytes), ELF${f.elfClass} ${f.endian}`, () => {
        const withNs = entrySize === 12 || entrySize === 24;
        const exports = [
          { symbol: 'a_first', crc: 0xa1a1a1a1, gpl: false },
          { symbol: 'b_gpl', crc: 0xb2b2b2b2, gpl: true, ...(withNs ? { namespace: 'NS_B' } : {}) },
          { symbol: 'c_last', crc: 0xc3c3c3c3, gpl: true },
          { symbol: 'd_plain', crc: 0xd4d4d4d4 },
        ];
        const mod = readModule(buildModule({ name: 'exp', ...f, exports, exportStyle: style, ksymtabEntrySize: entrySize }).bytes);
        const got = Object.fromEntries(mod.exports.map((e) => [e.symbol, { crc: e.crc, gpl: e.gplOnly, ns: e.namespace }]));
        for (const e of exports) {
          expect(got[e.symbol], e.symbol).toEqual({ crc: BigInt(e.crc), gpl: (e as { gpl?: boolean }).gpl === true, ns: 'namespace' in e ? e.namespace : undefined });
        }
        expect(mod.crcSymbols.map((c) => c.symbol).sort()).toEqual(exports.map((e) => e.symbol).sort());
        expect(mod.loader.hasKflagstab).toBe(style === 'kflagstab');
      });
    }
  }

  it('reads the CRC field of 64-bit __versions at full width', () => {
    const mod = readModule(buildModule({ name: 'hi', versions: [{ symbol: 'consume_skb', crc: 0xdead0000_1234abcdn }] }).bytes);
    expect(mod.versions?.[0]?.crc).toBe(0xdead0000_1234abcdn);
    expect(formatCrc(mod.versions![0]!.crc)).toBe('0xdead00001234abcd');
  });

  it('reads extended modversions, including names too long for __versions', () => {
    const long = 'a_symbol_name_that_is_much_longer_than_fifty_five_characters_in_total';
    const mod = readModule(
      buildModule({
        name: 'ext',
        versions: [{ symbol: 'module_layout', crc: 1 }],
        extVersions: [
          { symbol: 'module_layout', crc: 1 },
          { symbol: long, crc: 0xfeedface },
        ],
        undefinedSymbols: [long],
      }).bytes,
    );
    expect(mod.extendedVersions).toEqual([
      { symbol: 'module_layout', crc: 1n },
      { symbol: long, crc: 0xfeedfacen },
    ]);
  });

  it('keeps __versions without SHF_ALLOC visible but marked (what --force-modversion leaves)', () => {
    const mod = readModule(buildModule({ name: 'f', versions: [{ symbol: 'module_layout', crc: 5 }], versionsAlloc: false }).bytes);
    expect(mod.versions).toHaveLength(1);
    expect(mod.versionsAllocated).toBe(false);
  });

  it('distinguishes a module without __versions from one with an empty table', () => {
    expect(readModule(buildModule({ name: 'n', omitVersions: true }).bytes).versions).toBeUndefined();
    expect(readModule(buildModule({ name: 'n', versions: [] }).bytes).versions).toEqual([]);
  });

  it('skips runs of NUL padding in .modinfo', () => {
    const mod = readModule(buildModule({ ...base, modinfoNulPadding: true }).bytes);
    expect(mod.modinfo.getAll('alias')).toHaveLength(2);
    expect(mod.modinfo.get('name')).toBe('kabi_fixture');
  });

  for (const f of flavours) {
    it(`splits a signature off an ELF${f.elfClass} ${f.endian} module and parses the PKCS#7 signer`, () => {
      const built = buildModule({
        ...base,
        ...f,
        signature: { signer: 'Build time autogenerated kernel key', keyId: new Uint8Array([0x81, 0x02, 0xab]), hashAlgo: 'sha512' },
      });
      const mod = readModule(built.bytes);
      expect(mod.elfSize).toBe(built.elfLength);
      expect(mod.signature).toMatchObject({
        idType: 2,
        wellFormed: true,
        signer: 'Build time autogenerated kernel key',
        keyId: '81:02:AB',
        hashAlgorithm: 'sha512',
        offset: built.elfLength,
      });
      // The ELF view must end where the signature starts: the module parses the same as unsigned.
      expect(mod.versions).toEqual(readModule(buildModule({ ...base, ...f }).bytes).versions);
    });
  }

  it('flags a signature header the kernel would refuse (non-zero algo) without failing to read the module', () => {
    const bytes = buildModule({ ...base, signature: true }).bytes.slice();
    bytes[bytes.length - 28 - 12] = 1; // struct module_signature.algo
    const mod = readModule(bytes);
    expect(mod.signature?.wellFormed).toBe(false);
    expect(mod.signature?.problem).toMatch(/non-zero/);
  });

  it('rejects a signature length larger than the file', () => {
    const bytes = buildModule({ ...base, signature: true }).bytes.slice();
    const view = new DataView(bytes.buffer);
    view.setUint32(bytes.length - 28 - 4, 0x7fffffff, false);
    expect(() => readModule(bytes, { file: 'sig.ko' })).toThrowError(/sig\.ko.*signature length/);
  });
});

describe('hostile module files', () => {
  const built = buildModule({ ...base, signature: false });
  const good = built.bytes;

  function expectTypedError(bytes: Uint8Array, pattern?: RegExp) {
    let error: unknown;
    try {
      readModule(bytes, { file: 'bad.ko' });
    } catch (e) {
      error = e;
    }
    expect(error, 'should fail').toBeInstanceOf(KabiError);
    expect((error as KabiError).message).toContain('bad.ko');
    if (pattern) expect((error as KabiError).message).toMatch(pattern);
  }

  it('fails cleanly when truncated at every section boundary', () => {
    const cuts = new Set<number>([0, 1, 4, 15, 16, 51, 52, 63, 64]);
    for (const s of built.layout.sections) {
      cuts.add(s.offset);
      cuts.add(s.offset + s.size);
      cuts.add(s.offset + Math.floor(s.size / 2));
    }
    cuts.add(built.layout.shoff);
    cuts.add(built.layout.shoff + 64 * 3 + 7);
    for (const cut of [...cuts].filter((c) => c < good.length)) {
      expectTypedError(good.subarray(0, cut));
    }
  });

  it('fails cleanly for section offsets and sizes past the end of the file', () => {
    for (const s of built.layout.sections.filter((s) => s.type !== 8 && s.index !== 0)) {
      const bad = good.slice();
      const v = new DataView(bad.buffer);
      v.setBigUint64(s.headerOffset + 24, BigInt(good.length + 16), true);
      expectTypedError(bad, /outside the file/);
      const big = good.slice();
      new DataView(big.buffer).setBigUint64(s.headerOffset + 32, 0xffffffff_fffffff0n, true);
      expectTypedError(big);
    }
  });

  it('fails cleanly for a section header table past the end of the file', () => {
    const bad = good.slice();
    new DataView(bad.buffer).setBigUint64(40, BigInt(good.length - 10), true);
    expectTypedError(bad, /section header table/);
  });

  it('fails cleanly for string tables without a terminating NUL', () => {
    for (const idx of [built.layout.strtabIndex, built.layout.shstrndx]) {
      const s = built.layout.sections[idx]!;
      const bad = good.slice();
      bad[s.offset + s.size - 1] = 0x41;
      expectTypedError(bad, /NUL/);
    }
  });

  it('fails cleanly for a symbol count that overflows the file', () => {
    const s = built.layout.sections[built.layout.symtabIndex]!;
    for (const size of [0xffffffffn, 0x7fff_ffff_ffff_fff0n, BigInt(s.size + 24 * 1000)]) {
      const bad = good.slice();
      new DataView(bad.buffer).setBigUint64(s.headerOffset + 32, size, true);
      expectTypedError(bad);
    }
  });

  it('fails cleanly for a symbol name offset outside its string table', () => {
    const s = built.layout.sections[built.layout.symtabIndex]!;
    const bad = good.slice();
    new DataView(bad.buffer).setUint32(s.offset + 24 * 3, 0x7fffffff, true);
    expectTypedError(bad, /string offset/);
  });

  it('fails cleanly for __versions whose size is not a multiple of 64, or whose name has no NUL', () => {
    const v = built.layout.sections.find((s) => s.name === '__versions')!;
    const odd = good.slice();
    new DataView(odd.buffer).setBigUint64(v.headerOffset + 32, BigInt(v.size - 1), true);
    expectTypedError(odd, /multiple of 64/);
    const noNul = good.slice();
    noNul.fill(0x41, v.offset + 8, v.offset + 64);
    expectTypedError(noNul, /NUL/);
  });

  it('never throws anything but a KabiError on random corruption (and never hangs)', () => {
    let seed = 0x12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    let parsed = 0;
    for (let i = 0; i < 3000; i++) {
      const bad = good.slice();
      const flips = 1 + Math.floor(rand() * 8);
      for (let j = 0; j < flips; j++) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
      try {
        readModule(bad);
        parsed++;
      } catch (e) {
        if (!(e instanceof KabiError)) throw new Error(`iteration ${i}: ${(e as Error).stack}`);
      }
    }
    expect(parsed).toBeGreaterThan(0);
  });
});
