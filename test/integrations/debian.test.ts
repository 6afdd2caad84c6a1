import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { snapshot, weakLinks } from '../linker/helpers.js';
import { INTEGRATIONS, runSh } from './host.js';
import { twoKernelRoot } from './kernels.js';

const OLD = '6.1.0-18-amd64';
const NEW = '6.1.0-21-amd64';
const POSTINST = join(INTEGRATIONS, 'debian/postinst.d/dkms-kabi');
const PRERM = join(INTEGRATIONS, 'debian/prerm.d/kabi');
const roots: FixtureRoot[] = [];
afterAll(() => {
  for (const fx of roots) rmSync(fx.root, { recursive: true, force: true });
});

describe('Debian /etc/kernel hooks', () => {
  it('postinst.d links into the installed kernel; prerm.d drops its links, never the modules', () => {
    const { fx, drv } = twoKernelRoot({ symvers: 'debian-headers', initramfs: 'debian' }, OLD, NEW);
    roots.push(fx);
    // As the kernel package's postinst runs them: run-parts --arg=VERSION --arg=IMAGE.
    const inst = runSh([POSTINST, NEW, `/boot/vmlinuz-${NEW}`], { KABI_ROOT: fx.root, DEB_MAINT_PARAMS: 'configure' });
    expect(inst, inst.stderr).toMatchObject({ status: 0 });
    expect(weakLinks(fx.root, NEW)).toEqual({ 'drv/drv.ko': drv });

    const rm = runSh([PRERM, NEW, `/boot/vmlinuz-${NEW}`], { KABI_ROOT: fx.root, DEB_MAINT_PARAMS: 'remove' });
    expect(rm, rm.stderr).toMatchObject({ status: 0 });
    expect(weakLinks(fx.root, NEW)).toEqual({});
    expect(snapshot(fx.root).has(drv)).toBe(true);
  });

  it('sorts between dkms and initramfs-tools in run-parts order', () => {
    const ours = readdirSync(join(INTEGRATIONS, 'debian/postinst.d'));
    expect(ours).toHaveLength(1);
    const name = ours[0]!;
    expect(name).toMatch(/^[A-Za-z0-9_-]+$/); // run-parts skips other names
    // run-parts sorts with LC_COLLATE=C: byte order.
    const order = ['initramfs-tools', name, 'dkms', 'zz-update-grub'].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(order.indexOf(name)).toBe(order.indexOf('dkms') + 1);
    expect(order.indexOf('initramfs-tools')).toBe(order.indexOf(name) + 1);
  });

  it('does nothing on abort-* or without a version', () => {
    const { fx } = twoKernelRoot({ symvers: 'debian-headers' }, OLD, NEW);
    roots.push(fx);
    const before = snapshot(fx.root);
    expect(runSh([POSTINST, NEW, `/boot/vmlinuz-${NEW}`], { KABI_ROOT: fx.root, DEB_MAINT_PARAMS: 'abort-configure' })).toMatchObject({ status: 0 });
    expect(runSh([POSTINST], { KABI_ROOT: fx.root })).toMatchObject({ status: 0 });
    expect(snapshot(fx.root)).toEqual(before);
  });
});
