import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { snapshot, weakLinks } from '../linker/helpers.js';
import { INTEGRATIONS, runSh } from './host.js';
import { twoKernelRoot } from './kernels.js';

const OLD = '6.8.5-301.fc40.x86_64';
const NEW = '6.9.7-200.fc40.x86_64';
const PLUGIN = join(INTEGRATIONS, 'kernel-install/40-kabi.install');
const MACHINE = '0123456789abcdef0123456789abcdef';
const roots: FixtureRoot[] = [];
afterAll(() => {
  for (const fx of roots) rmSync(fx.root, { recursive: true, force: true });
});

/** The environment kernel-install gives its plugins. */
function env(root: string, verbose = '1') {
  return {
    KABI_ROOT: root,
    KERNEL_INSTALL_MACHINE_ID: MACHINE,
    KERNEL_INSTALL_ENTRY_TOKEN: MACHINE,
    KERNEL_INSTALL_BOOT_ROOT: '/boot',
    KERNEL_INSTALL_LAYOUT: 'bls',
    KERNEL_INSTALL_INITRD_GENERATOR: 'dracut',
    KERNEL_INSTALL_UKI_GENERATOR: '',
    KERNEL_INSTALL_STAGING_AREA: join(root, 'tmp/kernel-install.staging'),
    KERNEL_INSTALL_VERBOSE: verbose,
  };
}

describe('kernel-install plugin 40-kabi.install', () => {
  it('add: links the compatible modules of other kernels into the new one; remove: drops them', () => {
    const { fx, drv } = twoKernelRoot({ symvers: 'boot-xz' }, OLD, NEW);
    roots.push(fx);
    const entry = `/boot/${MACHINE}/${NEW}`;
    const add = runSh([PLUGIN, 'add', NEW, entry, `/lib/modules/${NEW}/vmlinuz`, `${entry}/initrd`], env(fx.root));
    expect(add, add.stderr).toMatchObject({ status: 0 });
    expect(add.stdout).toContain(`kabi: linking compatible out-of-tree modules into ${NEW}`);
    expect(weakLinks(fx.root, NEW)).toEqual({ 'drv/drv.ko': drv });
    expect(weakLinks(fx.root, OLD)).toEqual({});

    const remove = runSh([PLUGIN, 'remove', NEW, entry], env(fx.root, '0'));
    expect(remove, remove.stderr).toMatchObject({ status: 0, stdout: '' });
    expect(weakLinks(fx.root, NEW)).toEqual({});
    expect(snapshot(fx.root).has(drv)).toBe(true);
  });

  it('does nothing for other commands, or when kabi is not installed', () => {
    const { fx } = twoKernelRoot({ symvers: 'boot-xz' }, OLD, NEW);
    roots.push(fx);
    const before = snapshot(fx.root);
    expect(runSh([PLUGIN, 'inspect', NEW], env(fx.root))).toMatchObject({ status: 0 });
    expect(runSh([PLUGIN, 'add', NEW, '/boot/x', '/boot/vmlinuz'], { ...env(fx.root), PATH: '/usr/bin:/bin' })).toMatchObject({ status: 0 });
    expect(snapshot(fx.root)).toEqual(before);
  });
});
