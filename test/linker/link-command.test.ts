import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { main } from '../../src/cli/main.js';
import { memoryIo } from '../../src/cli/io.js';
import { snapshot, weakLinks } from './helpers.js';

const OLD = '6.1.0-10-amd64';
const MID = '6.1.0-20-amd64';
const NEW = '6.1.0-30-amd64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };

async function kabi(argv: string[]) {
  const io = memoryIo();
  const status = await main(argv, io);
  return { status, out: io.out(), err: io.err() };
}

function root(): FixtureRoot {
  const fx = makeRoot('kabi-link-');
  for (const r of [OLD, MID, NEW]) {
    const vmlinux = [{ symbol: 'printk', crc: 0x11 }, { symbol: 'gpl_fn', crc: 0x22, gpl: true }];
    if (r === NEW) vmlinux.push({ symbol: 'new_api', crc: 0x33 });
    addKernel(fx, { release: r, symvers: 'debian-headers', vmlinux, moduleStructSize: 0x380 });
  }
  return fx;
}

const mod = (fx: FixtureRoot, release: string, name: string, extra: Parameters<typeof externalModule>[1] | object = {}) =>
  fx.write(`/lib/modules/${release}/updates/dkms/${name}.ko`, externalModule(release, { name, versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }], undefinedSymbols: ['printk'], thisModuleSize: 0x380, ...extra }));

describe('kabi link', () => {
  it('links into older and newer kernels by default, only newer ones with --forward-only', async () => {
    const fx = root();
    const m = mod(fx, MID, 'drv');
    expect((await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', '--no-depmod', m])).status).toBe(0);
    expect(weakLinks(fx.root, OLD)).toEqual({ 'dkms/drv.ko': `/lib/modules/${MID}/updates/dkms/drv.ko` });
    expect(weakLinks(fx.root, NEW)).toEqual({ 'dkms/drv.ko': `/lib/modules/${MID}/updates/dkms/drv.ko` });
    const fy = root();
    const n = mod(fy, MID, 'drv');
    await kabi(['link', '--root', fy.root, '--add', '--forward-only', '--no-initramfs', '--no-depmod', n]);
    expect(weakLinks(fy.root, OLD)).toEqual({});
    expect(weakLinks(fy.root, NEW)).toEqual({ 'dkms/drv.ko': `/lib/modules/${MID}/updates/dkms/drv.ko` });
  });

  it('writes links as the installed system sees them (not the host path of --root)', async () => {
    const fx = root();
    const m = mod(fx, OLD, 'drv');
    await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', '--no-depmod', m]);
    expect(Object.values(weakLinks(fx.root, NEW))).toEqual([`/lib/modules/${OLD}/updates/dkms/drv.ko`]);
  });

  it('judges as the loader does by default: a GPL-only import by a proprietary module is not linked', async () => {
    const fx = root();
    const m = mod(fx, OLD, 'prop', { license: 'Proprietary', versions: [LAYOUT, { symbol: 'gpl_fn', crc: 0x22 }], undefinedSymbols: ['gpl_fn'] });
    await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', '--no-depmod', m]);
    expect(weakLinks(fx.root, NEW)).toEqual({});
    await kabi(['link', '--root', fx.root, '--add', '--semantics', 'depmod', '--no-initramfs', '--no-depmod', m]);
    expect(Object.keys(weakLinks(fx.root, NEW))).toEqual(['dkms/prop.ko']);
  });

  it('with --multi-version links, per kernel, the newest version that kernel can load', async () => {
    const fx = root();
    // v2 needs new_api, which only NEW has; v1 loads everywhere.
    const v1 = fx.write('/opt/store/drv/1.0/drv.ko', externalModule(OLD, { name: 'drv', modinfo: [['version', '1.0']], versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }], undefinedSymbols: ['printk'], thisModuleSize: 0x380 }));
    const v2 = fx.write('/opt/store/drv/2.0/drv.ko', externalModule(NEW, { name: 'drv', modinfo: [['version', '2.0']], versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }, { symbol: 'new_api', crc: 0x33 }], undefinedSymbols: ['printk', 'new_api'], thisModuleSize: 0x380 }));
    fx.write(`/boot/unused`, '');
    const r = await kabi(['link', '--root', fx.root, '--add', '--multi-version', '--json', '--dry-run', v1, v2]);
    expect(r.status).toBe(0);
    const plan = JSON.parse(r.out);
    const target = (rel: string) => plan.kernels.find((k: { release: string }) => k.release === rel)?.ops.map((o: { target: string }) => o.target);
    expect(target(OLD)).toEqual(['/opt/store/drv/1.0/drv.ko']);
    expect(target(MID)).toEqual(['/opt/store/drv/1.0/drv.ko']);
    expect(target(NEW)).toEqual(['/opt/store/drv/2.0/drv.ko']);
    // Without the policy both versions are tried together, and the kernels without new_api keep nothing.
    const plain = JSON.parse((await kabi(['link', '--root', fx.root, '--add', '--json', '--dry-run', v1, v2])).out);
    expect(plain.kernels.find((k: { release: string }) => k.release === OLD)?.fellBack ?? true).toBe(true);
  });

  it('prints a JSON plan with the verdict behind each link, and a dry run changes nothing', async () => {
    const fx = root();
    const m = mod(fx, OLD, 'drv');
    const before = snapshot(fx.root);
    const r = await kabi(['link', '--root', fx.root, '--add', '--dry-run', '--json', m]);
    expect(r.status).toBe(0);
    expect(snapshot(fx.root)).toEqual(before);
    const plan = JSON.parse(r.out);
    expect(plan).toMatchObject({ mode: 'add-modules', root: fx.root, dryRun: true });
    const k = plan.kernels.find((x: { release: string }) => x.release === NEW);
    expect(k).toMatchObject({ installed: true, depmod: true, initramfs: true, fellBack: false });
    expect(k.ops).toEqual([
      {
        kind: 'add',
        link: `/lib/modules/${NEW}/weak-updates/dkms/drv.ko`,
        target: `/lib/modules/${OLD}/updates/dkms/drv.ko`,
        verdict: expect.objectContaining({ compatible: true, kernel: NEW, name: 'drv' }),
      },
    ]);
  });

  it('--add-kernel reads a kernel directory linked by an absolute path inside the root, as a chroot would', async () => {
    const fx = root();
    mod(fx, OLD, 'drv');
    const { renameSync, symlinkSync } = await import('node:fs');
    renameSync(join(fx.root, 'lib/modules', OLD), join(fx.root, 'opt-old'));
    symlinkSync('/opt-old', join(fx.root, 'lib/modules', OLD));
    const r = await kabi(['link', '--root', fx.root, '--add-kernel', NEW, '--no-initramfs', '--no-depmod']);
    expect(r.status, r.err).toBe(0);
    expect(Object.keys(weakLinks(fx.root, NEW))).toEqual(['dkms/drv.ko']);
  });

  it('removes links whose module is gone, and empties a removed kernel', async () => {
    const fx = root();
    const m = mod(fx, OLD, 'drv');
    await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', '--no-depmod', m]);
    expect(Object.keys(weakLinks(fx.root, NEW))).toEqual(['dkms/drv.ko']);
    expect((await kabi(['link', '--root', fx.root, '--remove-kernel', MID])).status).toBe(0);
    expect(weakLinks(fx.root, MID)).toEqual({});
    // No package owns weak-updates/ outside RHEL: left empty, it goes, so the kernel's directory can.
    expect(existsSync(join(fx.root, 'lib/modules', MID, 'weak-updates'))).toBe(false);
    expect(Object.keys(weakLinks(fx.root, NEW))).toEqual(['dkms/drv.ko']);
    const { rmSync } = await import('node:fs');
    rmSync(m);
    await kabi(['link', '--root', fx.root, '--remove', '--no-initramfs', '--no-depmod', m]);
    expect(weakLinks(fx.root, NEW)).toEqual({});
  });

  it('--add-kernel works on a kernel without Module.symvers (Debian without headers), judging from its own modules', async () => {
    const fx = makeRoot('kabi-link-');
    addKernel(fx, { release: OLD, symvers: 'debian-headers', vmlinux: [{ symbol: 'printk', crc: 0x11 }], moduleStructSize: 0x380 });
    // NEW has no symvers; its in-tree module uses printk, so its CRC is known.
    addKernel(fx, {
      release: NEW,
      symvers: 'none',
      vmlinux: [{ symbol: 'printk', crc: 0x11 }],
      moduleStructSize: 0x380,
      modules: [{ path: 'kernel/lib/base', spec: { versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }], undefinedSymbols: ['printk'] } }],
    });
    mod(fx, OLD, 'drv');
    const r = await kabi(['link', '--root', fx.root, '--add-kernel', NEW, '--no-initramfs', '--no-depmod']);
    expect(r.status, r.err).toBe(0);
    expect(weakLinks(fx.root, NEW)).toEqual({ 'dkms/drv.ko': `/lib/modules/${OLD}/updates/dkms/drv.ko` });
    // weak-modules keeps the original's rule: no symvers, exit 1.
    const wm = await kabi(['weak-modules', '--basedir', fx.root, '--add-kernel', NEW, '--no-initramfs']);
    expect(wm.status).toBe(1);
  });

  it('refuses ambiguous or missing modes with exit 2', async () => {
    expect((await kabi(['link', '--add', '--remove', 'x.ko'])).status).toBe(2);
    expect((await kabi(['link'])).status).toBe(2);
    expect((await kabi(['link', '--add'])).status).toBe(2);
  });
});
