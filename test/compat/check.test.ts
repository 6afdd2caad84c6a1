import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureKernel, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { buildModuleBytes } from '../../corpus/fixtures/module-builder.js';
import { checkModules } from '../../src/compat/check.js';
import type { Reason, Verdict } from '../../src/compat/types.js';
import { readModule } from '../../src/module/read-module.js';

const K = '6.1.0-99-amd64';
const K612 = '6.12.9+deb12-amd64';
const VMLINUX = [
  { symbol: 'printk', crc: 0x11111111 },
  { symbol: 'gpl_only_fn', crc: 0x22222222, gpl: true },
  { symbol: 'crypto_internal_fn', crc: 0x44444444, gpl: true, namespace: 'CRYPTO_INTERNAL' },
];
const USB_STORAGE = {
  path: 'kernel/drivers/usb/storage/usb-storage',
  spec: { exports: [{ symbol: 'usb_stor_reset', crc: 0x33333333, gpl: true, namespace: 'USB_STORAGE' }] },
};
const BASE = { path: 'kernel/lib/kabi_base', spec: { versions: [{ symbol: 'module_layout', crc: MODULE_LAYOUT_CRC }, { symbol: 'printk', crc: 0x11111111 }] } };

function kernel(release: string, extra: Partial<FixtureKernel> = {}): FixtureKernel {
  return { release, vmlinux: VMLINUX, modules: [BASE, USB_STORAGE], moduleStructSize: release.startsWith('6.12') ? 0x500 : 0x380, ...extra };
}

const v = (symbol: string, crc: number | bigint) => ({ symbol, crc });
const LAYOUT = v('module_layout', MODULE_LAYOUT_CRC);

/** Write an external module built for `release` into the root and return its host path. */
function mod(fx: FixtureRoot, file: string, release: string, spec: Parameters<typeof externalModule>[1], flags?: string): string {
  return fx.write(`/opt/kabi/${file}`, externalModule(release, { thisModuleSize: release.startsWith('6.12') ? 0x500 : 0x380, ...spec }, flags));
}

async function verdict(fx: FixtureRoot, path: string, opts: Parameters<typeof checkModules>[1] = {}): Promise<Verdict> {
  const r = await checkModules([path], { root: fx.root, ...opts });
  expect(r.verdicts).toHaveLength(1);
  return r.verdicts[0]!;
}

const errors = (v: Verdict) => v.reasons.filter((r) => r.severity === 'error');
const kinds = (rs: readonly Reason[]) => rs.map((r) => r.kind);

describe('loader verdicts, one reason kind at a time', () => {
  const fx = makeRoot();
  addKernel(fx, kernel(K));
  addKernel(fx, kernel(K612));

  it('accepts a module whose every import matches (out-of-tree taint is only a warning)', async () => {
    const p = mod(fx, 'good.ko', K, { name: 'good', versions: [LAYOUT, v('printk', 0x11111111)], undefinedSymbols: ['printk'] });
    const r = await verdict(fx, p, { kernels: [K] });
    expect(r.compatible).toBe(true);
    expect(errors(r)).toEqual([]);
    expect(r.reasons.map((x) => x.message)).toContain('good: loading out-of-tree module taints kernel.');
  });

  it('crc-mismatch: "disagrees about version of symbol"', async () => {
    const p = mod(fx, 'crc.ko', K, { name: 'crcmod', versions: [LAYOUT, v('printk', 0xdeadbeef)], undefinedSymbols: ['printk'] });
    const r = await verdict(fx, p, { kernels: [K] });
    expect(errors(r)).toEqual([{ kind: 'crc-mismatch', severity: 'error', symbol: 'printk', message: 'crcmod: disagrees about version of symbol printk' }]);
  });

  it('compares the full 64-bit CRC field: high bits set means disagreement', async () => {
    const p = mod(fx, 'hi.ko', K, { name: 'hi', versions: [LAYOUT, v('printk', 0x1_11111111n)], undefinedSymbols: ['printk'] });
    expect(kinds(errors(await verdict(fx, p, { kernels: [K] })))).toEqual(['crc-mismatch']);
  });

  it('missing-crc: Debian kernels refuse it, upstream warns', async () => {
    const p = mod(fx, 'nocrc.ko', K, { name: 'nocrc', versions: [LAYOUT], undefinedSymbols: ['printk'] });
    const debian = await verdict(fx, p, { kernels: [K] });
    expect(errors(debian)).toEqual([{ kind: 'missing-crc', severity: 'error', symbol: 'printk', message: 'nocrc: no symbol version for printk' }]);
    const upstream = await verdict(fx, p, { kernels: [K], missingCrcPolicy: 'warn' });
    expect(upstream.compatible).toBe(true);
    expect(upstream.reasons.find((x) => x.kind === 'missing-crc')?.severity).toBe('warning');
  });

  it('unknown-symbol, but a weak symbol may stay unresolved', async () => {
    const p = mod(fx, 'unk.ko', K, { name: 'unk', versions: [LAYOUT], undefinedSymbols: ['no_such_symbol', { name: 'optional_fn', weak: true }] });
    expect(errors(await verdict(fx, p, { kernels: [K] }))).toEqual([
      { kind: 'unknown-symbol', severity: 'error', symbol: 'no_such_symbol', message: 'unk: Unknown symbol no_such_symbol (err -2)' },
    ]);
  });

  it('gpl-only: a GPL-only export is invisible to a proprietary module (first license= counts)', async () => {
    const p = mod(fx, 'prop.ko', K, {
      name: 'prop',
      license: 'Proprietary',
      modinfo: [['license', 'GPL']],
      versions: [LAYOUT, v('gpl_only_fn', 0x22222222), v('printk', 0x11111111)],
      undefinedSymbols: ['gpl_only_fn', 'printk'],
    });
    const r = await verdict(fx, p, { kernels: [K] });
    expect(errors(r)).toEqual([{ kind: 'gpl-only', severity: 'error', symbol: 'gpl_only_fn', message: 'prop: Unknown symbol gpl_only_fn (err -2)' }]);
    expect(r.reasons.some((x) => x.message === "prop: module license 'Proprietary' taints kernel.")).toBe(true);
  });

  it('namespace: used without MODULE_IMPORT_NS, from vmlinux and from an in-tree module', async () => {
    const p = mod(fx, 'ns.ko', K, {
      name: 'nsmod',
      versions: [LAYOUT, v('usb_stor_reset', 0x33333333), v('crypto_internal_fn', 0x44444444)],
      undefinedSymbols: ['usb_stor_reset', 'crypto_internal_fn'],
    });
    expect(errors(await verdict(fx, p, { kernels: [K] })).map((x) => x.message)).toEqual([
      'nsmod: module uses symbol (usb_stor_reset) from namespace USB_STORAGE, but does not import it.',
      'nsmod: module uses symbol (crypto_internal_fn) from namespace CRYPTO_INTERNAL, but does not import it.',
    ]);
    const ok = mod(fx, 'nsok.ko', K, {
      name: 'nsok',
      importNs: ['USB_STORAGE', 'CRYPTO_INTERNAL'],
      versions: [LAYOUT, v('usb_stor_reset', 0x33333333), v('crypto_internal_fn', 0x44444444)],
      undefinedSymbols: ['usb_stor_reset', 'crypto_internal_fn'],
    });
    expect((await verdict(fx, ok, { kernels: [K] })).compatible).toBe(true);
  });

  it('vermagic: the release part is ignored when the module has CRCs, the flags never are', async () => {
    const otherRelease = mod(fx, 'rel.ko', '6.1.0-12-amd64', { name: 'rel', versions: [LAYOUT] });
    expect((await verdict(fx, otherRelease, { kernels: [K] })).compatible).toBe(true);
    const flags = mod(fx, 'flags.ko', K, { name: 'flags', versions: [LAYOUT] }, ' SMP preempt_rt mod_unload modversions ');
    expect(errors(await verdict(fx, flags, { kernels: [K] }))).toEqual([
      {
        kind: 'vermagic',
        severity: 'error',
        message: `flags: version magic '${K} SMP preempt_rt mod_unload modversions ' should be '${K} SMP preempt mod_unload modversions '`,
      },
    ]);
  });

  it('no-modversions: without __versions the release must match too, and only FORCE_LOAD saves it', async () => {
    const p = mod(fx, 'nover.ko', '6.1.0-12-amd64', { name: 'nover', omitVersions: true });
    const r = await verdict(fx, p, { kernels: [K] });
    expect(kinds(errors(r))).toEqual(['vermagic']);
    expect(r.reasons.find((x) => x.kind === 'taint' && x.message.includes('module_layout'))?.message).toBe('nover: module_layout: kernel tainted.');
    const fy = makeRoot();
    addKernel(fy, kernel(K, { config: { CONFIG_MODULE_FORCE_LOAD: 'n' } }));
    const q = mod(fy, 'nover.ko', K, { name: 'nover', omitVersions: true });
    expect(kinds(errors(await verdict(fy, q)))).toEqual(['no-modversions']);
  });

  it('vermagic-missing: refused unless the kernel can force-load', async () => {
    const p = mod(fx, 'novm.ko', K, { name: 'novm', vermagic: null, versions: [LAYOUT] });
    const r = await verdict(fx, p, { kernels: [K] });
    expect(r.compatible).toBe(true);
    expect(r.reasons.some((x) => x.message === 'novm: bad vermagic: kernel tainted.')).toBe(true);
    const fy = makeRoot();
    addKernel(fy, kernel(K, { config: { CONFIG_MODULE_FORCE_LOAD: 'n' } }));
    const q = mod(fy, 'novm.ko', K, { name: 'novm', vermagic: null, versions: [LAYOUT] });
    expect(kinds(errors(await verdict(fy, q)))).toEqual(['vermagic-missing']);
  });

  it('module-layout: a different struct module layout CRC', async () => {
    const p = mod(fx, 'layout.ko', K, { name: 'layout', versions: [v('module_layout', 0x12345678)] });
    expect(errors(await verdict(fx, p, { kernels: [K] }))).toEqual([
      { kind: 'module-layout', severity: 'error', symbol: 'module_layout', message: 'layout: disagrees about version of symbol module_layout' },
    ]);
  });

  it('module-struct-size: checked by ≥6.4 kernels only', async () => {
    const p = mod(fx, 'size.ko', K, { name: 'size', versions: [LAYOUT], thisModuleSize: 0x380 });
    const on612 = await verdict(fx, p, { kernels: [K612] });
    expect(kinds(errors(on612))).toEqual(['module-struct-size']);
    expect(errors(on612)[0]!.message).toBe(
      "module size: .gnu.linkonce.this_module section size (0x380) must match the kernel's built struct module size at run time (0x500)",
    );
    const q = mod(fx, 'size2.ko', K, { name: 'size2', versions: [LAYOUT], thisModuleSize: 0x3c0 });
    expect((await verdict(fx, q, { kernels: [K] })).compatible).toBe(true);
  });

  it('this-module: an object without .gnu.linkonce.this_module is not a module', async () => {
    const p = mod(fx, 'nothis.ko', K, { name: 'nothis', versions: [LAYOUT], thisModuleSize: null });
    expect(errors(await verdict(fx, p, { kernels: [K] }))).toEqual([{ kind: 'this-module', severity: 'error', message: 'No module found in object' }]);
  });

  it('elf-mismatch: another architecture, class or byte order', async () => {
    for (const [file, spec] of [
      ['be.ko', { endian: 'big' as const }],
      ['32.ko', { elfClass: 32 as const, thisModuleSize: 0x280 }],
      ['arm.ko', { machine: 183 }],
    ] as const) {
      const p = mod(fx, file, K, { name: 'foreign', versions: [LAYOUT], ...spec });
      expect(kinds(errors(await verdict(fx, p, { kernels: [K] })))).toEqual(['elf-mismatch']);
    }
  });

  it('not-relocatable: an executable is not a module', async () => {
    const bytes = externalModule(K, { name: 'exec', versions: [LAYOUT], thisModuleSize: 0x380 });
    bytes[16] = 2; // e_type = ET_EXEC
    const p = fx.write('/opt/kabi/exec.ko', bytes);
    expect(kinds(errors(await verdict(fx, p, { kernels: [K] })))).toEqual(['not-relocatable']);
  });

  it('signature-malformed: a broken trailer is refused even without enforcement', async () => {
    const bytes = externalModule(K, { name: 'badsig', versions: [LAYOUT], thisModuleSize: 0x380, signature: true });
    bytes[bytes.length - 28 - 12 + 2] = 1; // id_type ≠ PKCS#7
    const p = fx.write('/opt/kabi/badsig.ko', bytes);
    expect(kinds(errors(await verdict(fx, p, { kernels: [K] })))).toEqual(['signature-malformed']);
  });

  it('signature-required: enforcing kernels refuse unsigned modules; signed ones need the key', async () => {
    const fy = makeRoot();
    addKernel(fy, kernel(K, { config: { CONFIG_MODULE_SIG_FORCE: 'y' } }));
    const p = mod(fy, 'unsigned.ko', K, { name: 'unsigned', versions: [LAYOUT] });
    expect(errors(await verdict(fy, p))).toEqual([{ kind: 'signature-required', severity: 'error', message: 'Loading of unsigned module is rejected' }]);
    const s = mod(fy, 'signed.ko', K, { name: 'signedmod', versions: [LAYOUT], signature: { signer: 'Vendor key' } });
    const r = await verdict(fy, s);
    expect(r.compatible).toBe(true);
    expect(r.reasons.find((x) => x.kind === 'unprovable')?.message).toMatch(/Vendor key/);
  });

  it('duplicate-export: exporting a symbol the kernel already exports', async () => {
    const p = mod(fx, 'dup.ko', K, { name: 'dup', versions: [LAYOUT], exports: [{ symbol: 'printk', crc: 0x11111111 }] });
    expect(errors(await verdict(fx, p, { kernels: [K] }))).toEqual([
      { kind: 'duplicate-export', severity: 'error', symbol: 'printk', message: 'dup: exports duplicate symbol printk (owned by kernel)' },
    ]);
  });

  it('exports-without-crcs: exports with no CRC table on a modversions kernel', async () => {
    const fy = makeRoot();
    addKernel(fy, kernel(K, { config: { CONFIG_MODULE_FORCE_LOAD: 'n' } }));
    const p = mod(fy, 'nocrcexp.ko', K, { name: 'nocrcexp', versions: [LAYOUT], exports: [{ symbol: 'nocrcexp_fn' }] });
    expect(kinds(errors(await verdict(fy, p)))).toEqual(['exports-without-crcs']);
  });

  it('exports-without-flags: ≥7.0 kernels want __kflagstab', async () => {
    const fy = makeRoot();
    const K70 = '7.0.1-1-amd64';
    addKernel(fy, kernel(K70, { moduleStructSize: 0x500 }));
    const old = mod(fy, 'oldexp.ko', K70, { name: 'oldexp', versions: [LAYOUT], exports: [{ symbol: 'oldexp_fn', crc: 1 }], exportStyle: 'kcrctab', thisModuleSize: 0x500 });
    expect(kinds(errors(await verdict(fy, old)))).toEqual(['exports-without-flags']);
    const neu = mod(fy, 'newexp.ko', K70, { name: 'newexp', versions: [LAYOUT], exports: [{ symbol: 'newexp_fn', crc: 1 }], exportStyle: 'kflagstab', thisModuleSize: 0x500 });
    expect((await verdict(fy, neu)).compatible).toBe(true);
  });

  it('module-namespace-import: ≥6.17 refuses import_ns=module:…', async () => {
    const fy = makeRoot();
    const K617 = '6.17.8-1-amd64';
    addKernel(fy, kernel(K617, { moduleStructSize: 0x500 }));
    const p = mod(fy, 'modns.ko', K617, { name: 'modns', versions: [LAYOUT], importNs: ['module:kvm'], thisModuleSize: 0x500 });
    expect(kinds(errors(await verdict(fy, p)))).toEqual(['module-namespace-import']);
  });

  it('common-symbol: SHN_COMMON symbols are refused', async () => {
    const bytes = externalModule(K, { name: 'common', versions: [LAYOUT], thisModuleSize: 0x380, exports: [{ symbol: 'common_var', crc: 5 }] });
    const parsed = readModule(bytes);
    expect(parsed.exports).toHaveLength(1);
    // Turn the defined `common_var` into a COMMON symbol: patch st_shndx of its symtab entry.
    const { ElfFile } = await import('../../src/elf/reader.js');
    const elf = new ElfFile(bytes);
    const sym = elf.symbols().find((s) => s.name === 'common_var')!;
    new DataView(bytes.buffer, bytes.byteOffset).setUint16(sym.entryOffset + 6, 0xfff2, true);
    const p = fx.write('/opt/kabi/common.ko', bytes);
    expect(errors(await verdict(fx, p, { kernels: [K] })).map((x) => x.kind)).toContain('common-symbol');
  });

  it('gpl-taint-inherit: a GPL-only user cannot also use a proprietary module’s symbols', async () => {
    const fy = makeRoot();
    addKernel(fy, kernel(K));
    const prov = mod(fy, 'propprov.ko', K, { name: 'propprov', license: 'Proprietary', versions: [LAYOUT], exports: [{ symbol: 'prop_fn', crc: 0x77 }] });
    const user = mod(fy, 'gpluser.ko', K, {
      name: 'gpluser',
      versions: [LAYOUT, v('gpl_only_fn', 0x22222222), v('prop_fn', 0x77)],
      undefinedSymbols: ['gpl_only_fn', 'prop_fn'],
    });
    const r = await checkModules([prov, user], { root: fy.root });
    const u = r.verdicts.find((x) => x.name === 'gpluser')!;
    expect(errors(u)).toEqual([
      {
        kind: 'gpl-taint-inherit',
        severity: 'error',
        symbol: 'prop_fn',
        message: 'gpluser: module using GPL-only symbols uses symbols prop_fn from proprietary module propprov.',
      },
    ]);
  });
});

describe('providers’ licences, as the loader takes them (inherit_taint)', () => {
  // An in-tree provider's exports come from Module.symvers, which has no licence column.
  const GPL_PROVIDER = { path: 'kernel/drivers/media/v4l2-core/videodev', spec: { exports: [{ symbol: 'video_register_fn', crc: 0x55555555, gpl: true }] } };
  const PROP_IN_TREE = { path: 'kernel/drivers/misc/blobdrv', spec: { license: 'Proprietary', exports: [{ symbol: 'blob_fn', crc: 0x66666666 }] } };
  const fx = makeRoot();
  addKernel(fx, kernel(K, { modules: [BASE, USB_STORAGE, GPL_PROVIDER, PROP_IN_TREE] }));

  it('a GPL module that used a GPL-only symbol may use an in-tree GPL module’s symbols (v4l2loopback on videodev)', async () => {
    const p = mod(fx, 'loopback.ko', K, {
      name: 'v4l2loopback',
      versions: [LAYOUT, v('gpl_only_fn', 0x22222222), v('video_register_fn', 0x55555555)],
      undefinedSymbols: ['gpl_only_fn', 'video_register_fn'],
    });
    const r = await verdict(fx, p, { kernels: [K] });
    expect(errors(r)).toEqual([]);
    expect(r.compatible).toBe(true);
    expect(r.reasons.filter((x) => x.kind === 'unprovable')).toEqual([]);
  });

  it('the same module is refused when the in-tree provider’s own modinfo says it is proprietary', async () => {
    const p = mod(fx, 'gplblob.ko', K, {
      name: 'gplblob',
      versions: [LAYOUT, v('gpl_only_fn', 0x22222222), v('blob_fn', 0x66666666)],
      undefinedSymbols: ['gpl_only_fn', 'blob_fn'],
    });
    expect(errors(await verdict(fx, p, { kernels: [K] }))).toEqual([
      { kind: 'gpl-taint-inherit', severity: 'error', symbol: 'blob_fn', message: 'gplblob: module using GPL-only symbols uses symbols blob_fn from proprietary module blobdrv.' },
    ]);
  });

  it('using a proprietary module first inherits its taint: a later GPL-only symbol is then unknown', async () => {
    const p = mod(fx, 'inherit.ko', K, {
      name: 'inheritor',
      versions: [LAYOUT, v('blob_fn', 0x66666666), v('gpl_only_fn', 0x22222222)],
      undefinedSymbols: ['blob_fn', 'gpl_only_fn'],
    });
    const r = await verdict(fx, p, { kernels: [K] });
    expect(errors(r)).toEqual([{ kind: 'gpl-only', severity: 'error', symbol: 'gpl_only_fn', message: 'inheritor: Unknown symbol gpl_only_fn (err -2)' }]);
    expect(r.reasons).toContainEqual({
      kind: 'taint',
      severity: 'warning',
      symbol: 'blob_fn',
      message: 'inheritor: module uses symbols blob_fn from proprietary module blobdrv, inheriting taint.',
    });
  });

  it('a GPL-only export of a proprietary module counts as used before the owner is looked at', async () => {
    const fy = makeRoot();
    addKernel(fy, kernel(K));
    const prov = mod(fy, 'propgpl.ko', K, { name: 'propgpl', license: 'Proprietary', versions: [LAYOUT], exports: [{ symbol: 'prop_gpl_fn', crc: 0x78, gpl: true }] });
    const user = mod(fy, 'firstuse.ko', K, { name: 'firstuse', versions: [LAYOUT, v('prop_gpl_fn', 0x78)], undefinedSymbols: ['prop_gpl_fn'] });
    const r = await checkModules([prov, user], { root: fy.root });
    expect(errors(r.verdicts.find((x) => x.name === 'firstuse')!).map((x) => x.kind)).toEqual(['gpl-taint-inherit']);
  });

  it('a weak reference survives the refusal (the symbol stays unresolved), with the kernel’s message as a warning', async () => {
    const p = mod(fx, 'weakblob.ko', K, {
      name: 'weakblob',
      versions: [LAYOUT, v('gpl_only_fn', 0x22222222), v('blob_fn', 0x66666666)],
      undefinedSymbols: ['gpl_only_fn', { name: 'blob_fn', weak: true }],
    });
    const r = await verdict(fx, p, { kernels: [K] });
    expect(r.compatible).toBe(true);
    expect(r.reasons.find((x) => x.kind === 'gpl-taint-inherit')?.severity).toBe('warning');
  });

  it('taint passes along a chain: a GPL module using a module that inherited the taint is refused after a GPL-only use', async () => {
    const fy = makeRoot();
    addKernel(fy, kernel(K, { modules: [BASE, PROP_IN_TREE] }));
    // middle is GPL but uses blobdrv first, so it is tainted when it loads.
    const middle = mod(fy, 'middle.ko', K, { name: 'middle', versions: [LAYOUT, v('blob_fn', 0x66666666)], undefinedSymbols: ['blob_fn'], exports: [{ symbol: 'middle_fn', crc: 0x79 }] });
    const top = mod(fy, 'top.ko', K, { name: 'top', versions: [LAYOUT, v('gpl_only_fn', 0x22222222), v('middle_fn', 0x79)], undefinedSymbols: ['gpl_only_fn', 'middle_fn'] });
    const r = await checkModules([middle, top], { root: fy.root });
    expect(r.verdicts.find((x) => x.name === 'middle')!.compatible).toBe(true);
    expect(errors(r.verdicts.find((x) => x.name === 'top')!)).toEqual([
      { kind: 'gpl-taint-inherit', severity: 'error', symbol: 'middle_fn', message: 'top: module using GPL-only symbols uses symbols middle_fn from proprietary module middle.' },
    ]);
  });

  it('an in-tree module Module.symvers does not list is found through the installed modules.symbols', async () => {
    const fy = makeRoot();
    addKernel(fy, kernel(K));
    // Added to kernel/ after the build: not in the headers' Module.symvers.
    fy.write(
      `/lib/modules/${K}/kernel/drivers/misc/late.ko`,
      buildModuleBytes({
        name: 'late',
        intree: true,
        vermagic: `${K} SMP preempt mod_unload modversions `,
        versions: [LAYOUT],
        thisModuleSize: 0x380,
        exports: [{ symbol: 'late_fn', crc: 0x7a }],
      }),
    );
    const p = mod(fy, 'uselate.ko', K, { name: 'uselate', versions: [LAYOUT, v('late_fn', 0x7a)], undefinedSymbols: ['late_fn'] });
    expect(errors(await verdict(fy, p, { kernels: [K] })).map((x) => x.kind)).toEqual(['unknown-symbol']);
    fy.write(`/lib/modules/${K}/modules.symbols`, '# Aliases for symbols, used by symbol_request().\nalias symbol:late_fn late\n');
    const r = await verdict(fy, p, { kernels: [K] });
    expect(errors(r)).toEqual([]);
    // depmod semantics reads the module as kmod would, too.
    expect((await verdict(fy, p, { kernels: [K], semantics: 'depmod' })).compatible).toBe(true);
  });
});

describe('chains of out-of-tree modules', () => {
  const fx = makeRoot();
  addKernel(fx, kernel(K));
  const provider = (crc: number) =>
    mod(fx, `provider-${crc}.ko`, K, {
      name: 'provider',
      versions: [LAYOUT, v('printk', crc)],
      undefinedSymbols: ['printk'],
      exports: [{ symbol: 'provider_fn', crc: 0xabcdef01, gpl: true }],
    });
  const consumer = mod(fx, 'consumer.ko', K, { name: 'consumer', versions: [LAYOUT, v('provider_fn', 0xabcdef01)], undefinedSymbols: ['provider_fn'] });
  const third = mod(fx, 'third.ko', K, { name: 'third', versions: [LAYOUT, v('consumer_fn', 7)], undefinedSymbols: ['consumer_fn'] });

  it('a consumer loads when its provider does', async () => {
    const r = await checkModules([provider(0x11111111), consumer], { root: fx.root });
    expect(r.verdicts.map((x) => [x.name, x.compatible])).toEqual([
      ['provider', true],
      ['consumer', true],
    ]);
  });

  for (const semantics of ['loader', 'depmod'] as const) {
    it(`provider incompatible ⇒ consumer incompatible (${semantics}${semantics === 'depmod' ? ' with weak-modules’ cascade' : ''})`, async () => {
      const r = await checkModules([provider(0xbad), consumer], { root: fx.root, semantics, cascade: true });
      const c = r.verdicts.find((x) => x.name === 'consumer')!;
      expect(c.compatible).toBe(false);
      expect(errors(c)).toMatchObject([{ kind: 'provider-incompatible', symbol: 'provider_fn', provider: 'provider' }]);
    });
  }

  it('depmod semantics without the cascade is one depmod pass: the consumer still sees the provider', async () => {
    const r = await checkModules([provider(0xbad), consumer], { root: fx.root, semantics: 'depmod' });
    expect(r.verdicts.map((x) => [x.name, x.compatible])).toEqual([
      ['provider', false],
      ['consumer', true],
    ]);
  });

  it('without its provider a consumer has an unknown symbol', async () => {
    const r = await checkModules([consumer], { root: fx.root });
    expect(kinds(errors(r.verdicts[0]!))).toEqual(['unknown-symbol']);
  });

  it('resolves longer chains to a fixpoint', async () => {
    const consumerExporting = mod(fx, 'consumer2.ko', K, {
      name: 'consumer2',
      versions: [LAYOUT, v('provider_fn', 0xabcdef01)],
      undefinedSymbols: ['provider_fn'],
      exports: [{ symbol: 'consumer_fn', crc: 7 }],
    });
    const good = await checkModules([provider(0x11111111), consumerExporting, third], { root: fx.root });
    expect(good.verdicts.every((x) => x.compatible)).toBe(true);
    const bad = await checkModules([provider(0xbad), consumerExporting, third], { root: fx.root });
    expect(bad.verdicts.map((x) => [x.name, x.compatible])).toEqual([
      ['provider', false],
      ['consumer2', false],
      ['third', false],
    ]);
    expect(errors(bad.verdicts[2]!)[0]).toMatchObject({ kind: 'provider-incompatible', provider: 'consumer2' });
  });
});

describe('depmod semantics (what depmod -e -E and weak-modules decide)', () => {
  const fx = makeRoot();
  addKernel(fx, kernel(K));
  const check = async (spec: Parameters<typeof externalModule>[1], flags?: string) =>
    verdict(fx, mod(fx, `${spec.name}.ko`, K, spec, flags), { kernels: [K], semantics: 'depmod' });

  it('reports a missing CRC entry as a disagreement (it compares CRC 0)', async () => {
    const r = await check({ name: 'd_nocrc', versions: [LAYOUT], undefinedSymbols: ['printk'] });
    expect(errors(r)).toEqual([
      { kind: 'missing-crc', severity: 'error', symbol: 'printk', message: `${fx.path('/opt/kabi/d_nocrc.ko').replace(fx.root, fx.root)} disagrees about version of symbol printk` },
    ]);
  });

  it('ignores weak symbols entirely, even with a wrong CRC', async () => {
    const r = await check({ name: 'd_weak', versions: [LAYOUT, v('printk', 0xbad)], undefinedSymbols: [{ name: 'printk', weak: true }, { name: 'nothing_here', weak: true }] });
    expect(r.compatible).toBe(true);
  });

  it('does not look at vermagic, licences, namespaces or struct module', async () => {
    const r = await check(
      {
        name: 'd_blind',
        license: 'Proprietary',
        versions: [LAYOUT, v('gpl_only_fn', 0x22222222), v('usb_stor_reset', 0x33333333)],
        undefinedSymbols: ['gpl_only_fn', 'usb_stor_reset'],
        thisModuleSize: 0x123,
      },
      ' SMP preempt_rt ',
    );
    expect(r.compatible).toBe(true);
    expect(r.reasons).toEqual([]);
  });

  it('needs every unreferenced __versions entry to resolve', async () => {
    const r = await check({ name: 'd_stray', versions: [LAYOUT, v('renamed_symbol', 1)] });
    expect(errors(r).map((x) => x.message)).toEqual([`${fx.path('/opt/kabi/d_stray.ko')} needs unknown symbol renamed_symbol`]);
  });
});

describe('kernels described differently', () => {
  it('reads the symvers wherever each distribution keeps it', async () => {
    for (const placement of ['boot-xz', 'boot-gz', 'modules-xz', 'modules-gz', 'debian-headers', 'arch-build'] as const) {
      const fx = makeRoot();
      addKernel(fx, kernel(K, { symvers: placement }));
      const p = mod(fx, 'crc.ko', K, { name: 'crcmod', versions: [LAYOUT, v('printk', 0xdeadbeef)], undefinedSymbols: ['printk'] });
      expect(kinds(errors(await verdict(fx, p))), placement).toEqual(['crc-mismatch']);
    }
  });

  it('without any symvers, derives CRCs from in-tree modules and says what it cannot prove', async () => {
    const fx = makeRoot();
    addKernel(fx, kernel(K, { symvers: 'none' }));
    const good = mod(fx, 'good.ko', K, { name: 'good', versions: [LAYOUT, v('printk', 0x11111111)], undefinedSymbols: ['printk'] });
    const bad = mod(fx, 'bad.ko', K, { name: 'bad', versions: [LAYOUT, v('printk', 0xbad)], undefinedSymbols: ['printk'] });
    const unused = mod(fx, 'unused.ko', K, { name: 'unused', versions: [LAYOUT, v('gpl_only_fn', 0x22222222)], undefinedSymbols: ['gpl_only_fn'] });
    const missing = mod(fx, 'missing.ko', K, { name: 'missing', versions: [LAYOUT, v('nowhere', 1)], undefinedSymbols: ['nowhere'] });
    const r = await checkModules([good, bad, unused, missing], { root: fx.root });
    const by = Object.fromEntries(r.verdicts.map((x) => [x.name, x]));
    expect(by.good!.compatible).toBe(true);
    expect(kinds(errors(by.bad!))).toEqual(['crc-mismatch']);
    expect(by.unused!.compatible).toBe(true); // in System.map, but its CRC is unknown
    expect(by.unused!.reasons.find((x) => x.kind === 'unprovable')?.symbol).toBe('gpl_only_fn');
    expect(kinds(errors(by.missing!))).toEqual(['unknown-symbol']);
    expect(r.notes.get(K)!.join('\n')).toMatch(/no Module\.symvers/);
  });

  it('handles releases with + and ~ and checks every installed kernel by default', async () => {
    const fx = makeRoot();
    for (const rel of ['6.12.7+deb12-amd64', '6.13.0~rc2-amd64', '6.1.0-99-amd64']) addKernel(fx, kernel(rel, { moduleStructSize: 0x500 }));
    const p = mod(fx, 'good.ko', '6.12.7+deb12-amd64', { name: 'good', versions: [LAYOUT, v('printk', 0x11111111)], undefinedSymbols: ['printk'], thisModuleSize: 0x500 });
    const r = await checkModules([p], { root: fx.root });
    expect(r.verdicts.map((x) => [x.kernel, x.compatible])).toEqual([
      ['6.1.0-99-amd64', true],
      ['6.12.7+deb12-amd64', true],
      ['6.13.0~rc2-amd64', true],
    ]);
  });

  it('refuses an unknown --kernel with a typed error', async () => {
    const fx = makeRoot();
    addKernel(fx, kernel(K));
    const p = mod(fx, 'good.ko', K, { name: 'good', versions: [LAYOUT] });
    await expect(checkModules([p], { root: fx.root, kernels: ['9.9.9'] })).rejects.toThrow(/kernel 9\.9\.9 is not installed/);
  });

  it('in-tree providers count only if they are the module modprobe would pick', async () => {
    const fx = makeRoot();
    // An updates/ copy of usb-storage without the export shadows the in-tree one (search updates).
    addKernel(fx, kernel(K, {}));
    fx.write(`/lib/modules/${K}/updates/usb-storage.ko`, buildModuleBytes({ name: 'usb_storage', vermagic: `${K} SMP preempt mod_unload modversions `, versions: [LAYOUT], thisModuleSize: 0x380 }));
    const p = mod(fx, 'nsok.ko', K, { name: 'nsok', importNs: ['USB_STORAGE'], versions: [LAYOUT, v('usb_stor_reset', 0x33333333)], undefinedSymbols: ['usb_stor_reset'] });
    expect(kinds(errors(await verdict(fx, p)))).toEqual(['unknown-symbol']);
  });
});
