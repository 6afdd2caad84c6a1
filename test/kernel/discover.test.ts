import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addKernel, makeRoot } from '../../corpus/fixtures/system-root.js';
import { discoverKernels } from '../../src/kernel/discover.js';
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
});
