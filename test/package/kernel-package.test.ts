import { constants, copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildModuleBytes } from '../../corpus/fixtures/module-builder.js';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureKernel } from '../../corpus/fixtures/system-root.js';
import { main } from '../../src/cli/main.js';
import { memoryIo } from '../../src/cli/io.js';
import { checkModules } from '../../src/compat/check.js';
import type { Verdict } from '../../src/compat/types.js';
import { discoverKernels } from '../../src/kernel/discover.js';
import { KernelPackages } from '../../src/package/kernel-packages.js';
import { statusReport } from '../../src/status/report.js';
import { buildDeb, buildRpm, debianPackages, itemsOf, tempDir } from './helpers.js';

const OLD = '6.1.0-98-amd64';
const NEW = '6.1.0-99-amd64';
const NEWER = '6.1.0-100-amd64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
const VMLINUX = [
  { symbol: 'printk', crc: 0x11111111 },
  { symbol: 'gpl_only_fn', crc: 0x22222222, gpl: true },
];
const USB_STORAGE = {
  path: 'kernel/drivers/usb/storage/usb-storage',
  spec: { exports: [{ symbol: 'usb_stor_reset', crc: 0x33333333, gpl: true, namespace: 'USB_STORAGE' }] },
};
const BASE = { path: 'kernel/lib/kabi_base', spec: { versions: [LAYOUT, { symbol: 'printk', crc: 0x11111111 }] } };

function kernel(release: string, printkCrc = 0x11111111, extra: Partial<FixtureKernel> = {}): FixtureKernel {
  return {
    release,
    vmlinux: [{ symbol: 'printk', crc: printkCrc }, VMLINUX[1]!],
    modules: [{ ...BASE, spec: { versions: [LAYOUT, { symbol: 'printk', crc: printkCrc }] } }, USB_STORAGE],
    moduleStructSize: 0x380,
    symvers: 'debian-headers',
    compression: 'xz',
    ...extra,
  };
}

function modules(dir: string): Record<string, string> {
  const w = (name: string, bytes: Uint8Array) => {
    const p = join(dir, `${name}.ko`);
    writeFileSync(p, bytes);
    return p;
  };
  return {
    good: w('good', externalModule(OLD, { name: 'good', thisModuleSize: 0x380, versions: [LAYOUT, { symbol: 'printk', crc: 0x11111111 }], undefinedSymbols: ['printk'] })),
    crc: w('crc', externalModule(OLD, { name: 'crc', thisModuleSize: 0x380, versions: [LAYOUT, { symbol: 'printk', crc: 0x5555 }], undefinedSymbols: ['printk'] })),
    ns: w('ns', externalModule(OLD, { name: 'ns', thisModuleSize: 0x380, versions: [LAYOUT, { symbol: 'usb_stor_reset', crc: 0x33333333 }], undefinedSymbols: ['usb_stor_reset'] })),
    prop: w(
      'prop',
      externalModule(OLD, { name: 'prop', license: 'Proprietary', thisModuleSize: 0x380, versions: [LAYOUT, { symbol: 'gpl_only_fn', crc: 0x22222222 }], undefinedSymbols: ['gpl_only_fn'] }),
    ),
    provider: w('provider', externalModule(OLD, { name: 'provider', thisModuleSize: 0x380, versions: [LAYOUT], exports: [{ symbol: 'provided_fn', crc: 0x77 }] })),
    consumer: w('consumer', externalModule(OLD, { name: 'consumer', thisModuleSize: 0x380, versions: [LAYOUT, { symbol: 'provided_fn', crc: 0x77 }], undefinedSymbols: ['provided_fn'] })),
  };
}

const shape = (vs: readonly Verdict[]) => vs.map((v) => ({ ...v, module: v.module.split('/').pop() }));

async function run(argv: string[], init: Parameters<typeof memoryIo>[0] = {}) {
  const io = memoryIo(init);
  const status = await main(argv, io);
  return { status, out: io.out(), err: io.err() };
}

describe('judging against kernel packages', () => {
  const dir = tempDir();
  const installed = makeRoot();
  addKernel(installed, kernel(NEW, 0x11111111));
  addKernel(installed, kernel(NEWER, 0x99999999));
  const debs = debianPackages(dir, installed, NEW);
  const newerDebs = debianPackages(dir, installed, NEWER);
  const mods = modules(tempDir());
  const all = Object.values(mods);

  it('gives the verdicts of the same kernel installed, reason for reason', async () => {
    const want = await checkModules(all, { root: installed.root, kernels: [NEW] });
    expect(want.verdicts.filter((v) => !v.compatible).map((v) => v.name).sort()).toEqual(['crc', 'ns', 'prop']);
    const empty = tempDir();
    const got = await checkModules(all, { root: empty, kernelPackages: debs });
    expect(got.kernels.map((k) => k.release)).toEqual([NEW]);
    expect(shape(got.verdicts)).toEqual(shape(want.verdicts));
    expect(got.notes.get(NEW)).toEqual(want.notes.get(NEW));
  });

  it('RHEL layout in an RPM (symvers.xz, System.map and config in the module directory, /boot ghosts)', async () => {
    const rhel = makeRoot();
    addKernel(rhel, kernel(NEW, 0x11111111, { symvers: 'modules-xz' }));
    for (const f of ['config', 'System.map']) writeFileSync(rhel.path(`/lib/modules/${NEW}/${f}`), readFileSync(rhel.path(`/boot/${f}-${NEW}`)));
    const rpm = buildRpm(dir, itemsOf(rhel.root, [`lib/modules/${NEW}`]), { name: 'kernel-core', payload: 'w2.xzdio', ghosts: [`/boot/vmlinuz-${NEW}`, `/boot/symvers-${NEW}.xz`] });
    const rhelInstalled = makeRoot();
    addKernel(rhelInstalled, kernel(NEW, 0x11111111, { symvers: 'modules-xz', systemMap: false, config: false }));
    for (const f of ['config', 'System.map']) writeFileSync(rhelInstalled.path(`/lib/modules/${NEW}/${f}`), readFileSync(rhel.path(`/lib/modules/${NEW}/${f}`)));
    const want = await checkModules(all, { root: rhelInstalled.root, kernels: [NEW] });
    const got = await checkModules(all, { root: tempDir(), kernelPackages: [rpm] });
    expect(shape(got.verdicts)).toEqual(shape(want.verdicts));
  });

  it('shows the system with the packages installed: merged /usr, the old tree of the same release replaced, extra/ kept, nothing writable', async () => {
    const base = makeRoot();
    mkdirSync(base.path('/usr/lib/modules'), { recursive: true });
    symlinkSync('usr/lib', base.path('/lib'));
    // A same-release kernel already there, with a module the new package no longer has, and an add-on module.
    base.write(`/usr/lib/modules/${NEW}/kernel/gone.ko`, 'old');
    base.write(`/usr/lib/modules/${NEW}/modules.dep`, 'stale');
    base.write(`/usr/lib/modules/${NEW}/extra/addon.ko`, externalModule(NEW, { name: 'addon', thisModuleSize: 0x380, versions: [LAYOUT] }));
    const pkgs = await KernelPackages.open(debs);
    try {
      expect(pkgs.kernels).toEqual([NEW]);
      const fs = await pkgs.view(undefined, base.root);
      const ks = await discoverKernels({ root: base.root, fs });
      expect(ks.map((k) => [k.release, k.moduleDir, k.symvers?.source])).toEqual([[NEW, `/lib/modules/${NEW}`, 'debian-headers']]);
      expect((await fs.readdir(base.path(`/usr/lib/modules/${NEW}`))).sort()).toEqual(['build', 'extra', 'kernel', 'modules.builtin', 'modules.order']);
      expect((await fs.readdir(base.path(`/lib/modules/${NEW}/kernel`))).sort()).toEqual(['drivers', 'lib']);
      await expect(fs.readFile(base.path(`/lib/modules/${NEW}/kernel/gone.ko`))).rejects.toMatchObject({ code: 'ENOENT' });
      // The headers' absolute link resolves inside the root.
      expect(String(await fs.readFile(base.path(`/lib/modules/${NEW}/build/Module.symvers`)))).toMatch(/\tprintk\tvmlinux\t/);
      expect((await fs.stat(base.path(`/lib/modules/${NEW}/extra/addon.ko`))).isFile()).toBe(true);
      // Opened for reading as readers open files (O_NONBLOCK: never wait on a FIFO), read in pieces.
      const h = await fs.open(base.path(`/lib/modules/${NEW}/modules.order`), constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        expect((await h.stat()).isFile()).toBe(true);
        const buf = Buffer.alloc(256);
        const first = await h.read(buf, 0, 7, null);
        const rest = await h.read(buf, 7, 249, null);
        expect(buf.subarray(0, first.bytesRead + rest.bytesRead).toString()).toBe(readFileSync(installed.path(`/lib/modules/${NEW}/modules.order`), 'utf8'));
      } finally {
        await h.close();
      }
      await expect(fs.open(base.path(`/lib/modules/${NEW}/modules.order`), 'r+')).rejects.toMatchObject({ code: 'EROFS' });
      await expect(fs.open(base.path(`/lib/modules/${NEW}/nothing`), 'r')).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(fs.writeFile(base.path('/etc/x'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
      await expect(fs.mkdir(base.path(`/lib/modules/${NEW}/weak-updates`))).rejects.toMatchObject({ code: 'EROFS' });
      // The base root is untouched.
      expect(readdirSync(base.path(`/usr/lib/modules/${NEW}`)).sort()).toEqual(['extra', 'kernel', 'modules.dep']);
    } finally {
      await pkgs.close();
    }
  });

  it('kabi status --kernel-package adds the incoming kernel as a column; --incoming lists what will not load and why', async () => {
    const sys = makeRoot();
    addKernel(sys, kernel(OLD, 0x11111111));
    sys.write(`/lib/modules/${OLD}/extra/good.ko`, readFileSync(mods.good!));
    sys.write(`/lib/modules/${OLD}/extra/crc.ko`, readFileSync(mods.crc!));
    const report = await (async () => {
      const pkgs = await KernelPackages.open(newerDebs);
      try {
        return await statusReport({ root: sys.root, fs: await pkgs.view(undefined, sys.root) });
      } finally {
        await pkgs.close();
      }
    })();
    expect(report.kernels.map((k) => k.release)).toEqual([OLD, NEWER]);
    // printk's CRC changed in NEWER: good.ko no longer loads there either.
    expect(report.modules.map((m) => [m.name, m.cells.map((c) => c.state)])).toEqual([
      ['crc', ['built', 'incompatible']],
      ['good', ['built', 'incompatible']],
    ]);

    const r = await run(['status', '--root', sys.root, '--kernel-package', newerDebs[0]!, '--kernel-package', newerDebs[1]!]);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`[2] ${NEWER} is not installed: read from linux-image-${NEWER}_1.0-1_amd64.deb, linux-headers-${NEWER}_1.0-1_amd64.deb`);

    const inc = await run(['status', '--root', sys.root, '--incoming', '--kernel-package', newerDebs[0]!, '--kernel-package', newerDebs[1]!]);
    expect(inc.status).toBe(1);
    expect(inc.out).toBe(
      [
        `kabi: after installing linux-image-${NEWER}, linux-headers-${NEWER}: 2 out-of-tree modules will not load on ${NEWER}:`,
        `kabi:   crc (/lib/modules/${OLD}/extra/crc.ko, built for ${OLD})`,
        'kabi:     crc: disagrees about version of symbol printk',
        `kabi:   good (/lib/modules/${OLD}/extra/good.ko, built for ${OLD})`,
        'kabi:     good: disagrees about version of symbol printk',
        '',
      ].join('\n'),
    );
    // Where everything loads, --incoming is silent and exits 0.
    const fine = makeRoot();
    addKernel(fine, kernel(OLD, 0x11111111));
    fine.write(`/lib/modules/${OLD}/extra/good.ko`, readFileSync(mods.good!));
    const ok = await run(['status', '--root', fine.root, '--incoming', '--kernel-package', debs[0]!, '--kernel-package', debs[1]!]);
    expect(ok).toMatchObject({ status: 0, out: '' });
  });

  it('kabi check --kernel-package; --shard runs concatenated are one --json-lines run; --merge reads them back', async () => {
    const root = tempDir();
    const pk = [...debs, ...newerDebs].flatMap((f) => ['--kernel-package', f]);
    const table = await run(['check', '--root', root, ...pk, ...all]);
    expect(table.status).toBe(1);
    expect(table.out.split('\n')[0]).toMatch(new RegExp(`^module +${NEW} +${NEWER}`));
    const whole = await run(['check', '--root', root, '--json-lines', ...pk, ...all]);
    expect(whole.out.trim().split('\n')).toHaveLength(2 * all.length);
    let joined = '';
    for (const s of ['1/3', '2/3', '3/3']) joined += (await run(['check', '--root', root, '--shard', s, ...pk, ...all])).out;
    expect(joined).toBe(whole.out);
    // Shard 1 of 3 gets no kernel of two: it prints nothing and succeeds.
    expect(await run(['check', '--root', root, '--shard', '1/3', ...pk, ...all])).toMatchObject({ status: 0, out: '' });
    const lines = join(tempDir(), 'all.jsonl');
    writeFileSync(lines, joined);
    const merged = await run(['check', '--merge', lines]);
    expect(merged).toMatchObject({ status: 1, out: table.out });
    const mergedJson = await run(['check', '--merge', '--json', '-'], { stdin: joined });
    expect(JSON.parse(mergedJson.out)).toEqual(JSON.parse(`[${whole.out.trim().split('\n').join(',')}]`));
    writeFileSync(lines, joined + '{"module": 1}\n');
    expect(await run(['check', '--merge', lines])).toMatchObject({ status: 2, err: expect.stringContaining(`${lines}:${2 * all.length + 1}: not a kabi check --json-lines verdict`) });
    expect((await run(['check', '--shard', '0/2', ...pk, ...all])).status).toBe(2);
  });

  it('a module package given as MODULE stands for the modules it would install', async () => {
    const kmod = buildDeb(dir, [
      { path: `lib/modules/${OLD}/updates/good.ko`, data: readFileSync(mods.good!) },
      { path: `lib/modules/${OLD}/updates/crc.ko`, data: readFileSync(mods.crc!) },
      { path: 'usr/share/doc/kmod-demo/README', data: 'x' },
    ], { name: 'kmod-demo' });
    const r = await checkModules([kmod], { root: tempDir(), kernelPackages: debs });
    expect(r.verdicts.map((v) => [v.module, v.compatible]).sort()).toEqual([
      [`${kmod}:/lib/modules/${OLD}/updates/crc.ko`, false],
      [`${kmod}:/lib/modules/${OLD}/updates/good.ko`, true],
    ]);
  });

  it('a file named like a module is read as one, not sniffed for a package: a package renamed x.ko is an error naming it', async () => {
    const kmod = buildDeb(dir, [{ path: `lib/modules/${OLD}/updates/good.ko`, data: readFileSync(mods.good!) }], { name: 'kmod-renamed' });
    const renamed = join(dir, 'renamed.ko');
    copyFileSync(kmod, renamed);
    const e = await checkModules([renamed], { root: tempDir(), kernelPackages: debs }).then(
      () => undefined,
      (x: unknown) => x as { file?: string; code?: string },
    );
    expect(e).toMatchObject({ file: renamed });
  });

  it('a package that holds no kernel is not even decompressed; none at all is an error', async () => {
    const doc = buildDeb(dir, [{ path: 'usr/share/doc/x/README', data: 'x' }], { name: 'docs-only' });
    const pkgs = await KernelPackages.open([doc, ...debs]);
    try {
      expect(pkgs.read.map((m) => m.name)).toEqual([`linux-image-${NEW}`, `linux-headers-${NEW}`]);
    } finally {
      await pkgs.close();
    }
    const r = await run(['check', '--root', tempDir(), '--kernel-package', doc, mods.good!]);
    expect(r).toMatchObject({ status: 2, err: expect.stringContaining('no kernel in the packages given') });
  });

  it('builds a module into the package test tree', () => {
    // (guards the fixture: modules of the packaged kernel are .ko.xz, as in Debian's)
    expect(readdirSync(installed.path(`/lib/modules/${NEW}/kernel/lib`))).toEqual(['kabi_base.ko.xz']);
    expect(buildModuleBytes({ name: 'x' }).length).toBeGreaterThan(0);
  });
});
