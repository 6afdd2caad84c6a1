import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addKernel, makeRoot } from '../../corpus/fixtures/system-root.js';
import { discoverKernels, holdsKernel } from '../../src/kernel/discover.js';
import { resolveInRoot } from '../../src/kernel/paths.js';
import { nodeFs } from '../../src/fs.js';

describe('discoverKernels', () => {
  it('finds each distribution’s symvers, System.map, config and initramfs', async () => {
    const fx = makeRoot();
    addKernel(fx, { release: '5.14.0-427.13.1.el9_4.x86_64', symvers: 'boot-xz', initramfs: 'dracut' });
    addKernel(fx, { release: '5.14.0-362.8.1.el9_3.x86_64', symvers: 'modules-gz', initramfs: 'dracut' });
    addKernel(fx, { release: '5.14.21-150500.55.19-default', symvers: 'boot-gz' });
    addKernel(fx, { release: '6.1.0-18-amd64', symvers: 'debian-headers', initramfs: 'debian' });
    addKernel(fx, { release: '6.9.7-arch1-1', symvers: 'arch-build', systemMap: false, config: false });
    addKernel(fx, { release: '4.18.0-553.el8_10.x86_64', symvers: 'modules-xz' });
    addKernel(fx, { release: '6.2.0-nosymvers', symvers: 'none' });
    const kernels = await discoverKernels({ root: fx.root });
    const by = Object.fromEntries(kernels.map((k) => [k.release, k]));
    expect(kernels.map((k) => k.release)).toEqual([
      '4.18.0-553.el8_10.x86_64',
      '5.14.0-362.8.1.el9_3.x86_64',
      '5.14.0-427.13.1.el9_4.x86_64',
      '5.14.21-150500.55.19-default',
      '6.1.0-18-amd64',
      '6.2.0-nosymvers',
      '6.9.7-arch1-1',
    ]);
    expect(by['5.14.0-427.13.1.el9_4.x86_64']!.symvers).toEqual({ path: '/boot/symvers-5.14.0-427.13.1.el9_4.x86_64.xz', source: 'boot' });
    expect(by['5.14.0-362.8.1.el9_3.x86_64']!.symvers).toEqual({ path: '/lib/modules/5.14.0-362.8.1.el9_3.x86_64/symvers.gz', source: 'modules-dir' });
    expect(by['5.14.21-150500.55.19-default']!.symvers?.path).toBe('/boot/symvers-5.14.21-150500.55.19-default.gz');
    expect(by['6.1.0-18-amd64']!.symvers).toEqual({ path: '/usr/src/linux-headers-6.1.0-18-amd64/Module.symvers', source: 'debian-headers' });
    expect(by['6.9.7-arch1-1']!.symvers).toEqual({ path: '/lib/modules/6.9.7-arch1-1/build/Module.symvers', source: 'build-link' });
    expect(by['4.18.0-553.el8_10.x86_64']!.symvers?.path).toBe('/lib/modules/4.18.0-553.el8_10.x86_64/symvers.xz');
    expect(by['6.2.0-nosymvers']!.symvers).toBeUndefined();

    expect(by['6.1.0-18-amd64']!.systemMap).toBe('/boot/System.map-6.1.0-18-amd64');
    expect(by['6.9.7-arch1-1']!.systemMap).toBeUndefined();
    expect(by['6.9.7-arch1-1']!.config).toBeUndefined();
    expect(by['6.1.0-18-amd64']!.config).toBe('/boot/config-6.1.0-18-amd64');
    expect(by['5.14.0-427.13.1.el9_4.x86_64']!.initramfs).toEqual({ path: '/boot/initramfs-5.14.0-427.13.1.el9_4.x86_64.img', exists: true, style: 'dracut' });
    expect(by['6.1.0-18-amd64']!.initramfs).toEqual({ path: '/boot/initrd.img-6.1.0-18-amd64', exists: true, style: 'initramfs-tools' });
    expect(by['6.2.0-nosymvers']!.initramfs.exists).toBe(false);
  });

  it('counts a merged-/usr kernel once and keeps + and ~ releases', async () => {
    const fx = makeRoot();
    addKernel(fx, { release: '6.12.7+deb12-amd64', usrMerged: true });
    addKernel(fx, { release: '6.13.0~rc2', usrMerged: true });
    const kernels = await discoverKernels({ root: fx.root });
    expect(kernels.map((k) => k.release)).toEqual(['6.12.7+deb12-amd64', '6.13.0~rc2']);
    expect(kernels[0]!.moduleDir).toBe('/lib/modules/6.12.7+deb12-amd64');
  });

  it('resolves absolute symlinks inside the root, never on the host', async () => {
    const fx = makeRoot();
    fx.write('/usr/src/linux-headers-9.9.9/Module.symvers', 'x');
    mkdirSync(fx.path('/lib/modules/9.9.9'), { recursive: true });
    symlinkSync('/usr/src/linux-headers-9.9.9', fx.path('/lib/modules/9.9.9/build'));
    symlinkSync('/etc/passwd', fx.path('/lib/modules/9.9.9/escape'));
    expect(await resolveInRoot(nodeFs, fx.root, fx.path('/lib/modules/9.9.9/build/Module.symvers'))).toBe(fx.path('/usr/src/linux-headers-9.9.9/Module.symvers'));
    // /etc/passwd exists on the host but not in the root: the link dangles.
    expect(existsSync('/etc/passwd')).toBe(true);
    expect(await resolveInRoot(nodeFs, fx.root, fx.path('/lib/modules/9.9.9/escape'))).toBeUndefined();
    symlinkSync('../../../../../../../../etc/shadow', fx.path('/lib/modules/9.9.9/dotdot'));
    expect(await resolveInRoot(nodeFs, fx.root, fx.path('/lib/modules/9.9.9/dotdot'))).toBeUndefined();
  });

  it('a directory that holds no kernel is not an installed kernel', async () => {
    const fx = makeRoot();
    addKernel(fx, { release: '6.1.0-18-amd64', symvers: 'boot-gz' });
    // What a removed kernel leaves behind: a kmod package's extra/, weak-updates links,
    // depmod's outputs, kabi's old cache.
    fx.write('/lib/modules/6.1.0-17-amd64/extra/foo.ko', 'x');
    fx.write('/lib/modules/6.1.0-17-amd64/modules.dep', '');
    fx.write('/lib/modules/6.1.0-17-amd64/modules.kabi-cache', '');
    mkdirSync(fx.path('/lib/modules/6.1.0-16-amd64/weak-updates'), { recursive: true });
    // Debian 7.x: only vmlinuz, System.map and config in /usr/lib/modules/K, nothing in /boot.
    fx.write('/usr/lib/modules/7.0.1+deb13-amd64/vmlinuz', 'kernel');
    // A kernel whose modules are not unpacked yet, seen by its /boot image.
    fx.write('/boot/vmlinuz-6.1.0-19-amd64', 'kernel');
    mkdirSync(fx.path('/lib/modules/6.1.0-19-amd64'), { recursive: true });
    expect((await discoverKernels({ root: fx.root })).map((k) => k.release)).toEqual(['6.1.0-18-amd64', '6.1.0-19-amd64', '7.0.1+deb13-amd64']);
    expect(await holdsKernel(nodeFs, fx.root, '6.1.0-17-amd64')).toBe(false);
    expect(await holdsKernel(nodeFs, fx.root, '7.0.1+deb13-amd64', '/usr/lib/modules/7.0.1+deb13-amd64')).toBe(true);
  });

  it('a kernel directory that is an absolute link is followed inside the root', async () => {
    const fx = makeRoot();
    const host = makeRoot();
    // On the host the link names a real kernel; inside the root that path holds nothing.
    addKernel(host, { release: '6.1.0-18-amd64', symvers: 'boot-gz' });
    mkdirSync(fx.path('/lib/modules'), { recursive: true });
    symlinkSync(host.path('/lib/modules/6.1.0-18-amd64'), fx.path('/lib/modules/6.1.0-18-amd64'));
    expect(await discoverKernels({ root: fx.root })).toEqual([]);
    // The same path made inside the root is found there.
    addKernel({ ...fx, path: (p) => fx.path(host.path(p)), write: (p, d) => fx.write(host.path(p), d) }, { release: '6.1.0-18-amd64', symvers: 'none', config: false, systemMap: false });
    expect((await discoverKernels({ root: fx.root })).map((k) => k.release)).toEqual(['6.1.0-18-amd64']);
  });
});
