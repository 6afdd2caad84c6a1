import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KabiError } from '../../src/errors.js';
import { nodeFs } from '../../src/fs.js';
import { isOlderKernel, modulePlace, releaseFromName, weakUpdatesRel } from '../../src/kmp/kmp.js';
import { isFlavorOf, kernelFlavor, parseKmpName } from '../../src/kmp/nvr.js';
import { parseRpmQuery, rpmQueryArgs } from '../../src/kmp/rpm-db.js';
import { KABI_POLICY, readInitrdGenerator, readKmpPolicy, readShellVars, WM2_POLICY } from '../../src/kmp/settings.js';

describe('KMP names', () => {
  it('takes name-version-release apart as weak-modules2 does', () => {
    expect(parseKmpName('drbd-kmp-default-9.1.16_k6.4.0_150600.21-150600.3.2')).toEqual({
      nvr: 'drbd-kmp-default-9.1.16_k6.4.0_150600.21-150600.3.2',
      name: 'drbd-kmp-default',
      version: '9.1.16_k6.4.0_150600.21',
      release: '150600.3.2',
      basename: 'drbd',
      flavor: 'default',
      family: 'drbd',
    });
    // A basename with dashes, a "-kmp-" inside it, and the kernel in the name (Hack Week naming).
    expect(parseKmpName('my-kmp-tool-kmp-rt-1-1')).toMatchObject({ basename: 'my-kmp-tool', flavor: 'rt', family: 'my-kmp-tool' });
    expect(parseKmpName('drbd-k6.4.0_150600.21-kmp-default-9.1-1')).toMatchObject({ basename: 'drbd-k6.4.0_150600.21', family: 'drbd' });
    for (const bad of ['drbd-default-1-1', 'kmp-default-1-1', 'a-kmp-b-1', 'a-kmp-b--1', 'a-kmp-b-1-1/x', '']) {
      expect(() => parseKmpName(bad), bad).toThrow(KabiError);
    }
  });

  it('flavors: a kernel release ends in -<flavor>', () => {
    expect(isFlavorOf('6.4.0-150600.23-default', 'default')).toBe(true);
    expect(isFlavorOf('6.4.0-150600.23-rt', 'default')).toBe(false);
    expect(isFlavorOf('default', 'default')).toBe(false);
    expect(kernelFlavor('6.4.0-150600.23-64kb')).toBe('64kb');
  });

  it('module places and link names: SUSE keeps the updates/ (or extra/) component; store modules from their last one', () => {
    expect(modulePlace('/usr/lib/modules/6.4.0-1-default/updates/drbd/drbd.ko.zst')).toEqual({ tree: true, release: '6.4.0-1-default', rel: 'updates/drbd/drbd.ko.zst' });
    expect(modulePlace('/lib/modules/6.4.0-1-default/extra/x.ko')).toMatchObject({ tree: true, rel: 'extra/x.ko' });
    expect(modulePlace('/usr/lib/kmp/x/1-1/updates/x.ko')).toEqual({ tree: false });
    expect(weakUpdatesRel('/usr/lib/modules/6.4.0-1-default/updates/drbd/drbd.ko')).toBe('updates/drbd/drbd.ko');
    expect(weakUpdatesRel('/usr/lib/kmp/drbd/9.1-1/updates/drbd/drbd.ko')).toBe('updates/drbd/drbd.ko');
    expect(weakUpdatesRel('/usr/lib/kmp/drbd/9.1-1/extra/drbd.ko')).toBe('extra/drbd.ko');
    expect(weakUpdatesRel('/opt/vendor/drbd.ko.xz')).toBe('updates/drbd.ko.xz');
  });

  it('the kernel a KMP was built for, from its name; kernel age without the flavor', () => {
    expect(releaseFromName(parseKmpName('drbd-kmp-default-9.1.16_k6.4.0_150600.21-3.2'))).toBe('6.4.0-150600.21-default');
    expect(releaseFromName(parseKmpName('drbd-k6.4.0_150600.21-kmp-rt-9.1-1'))).toBe('6.4.0-150600.21-rt');
    expect(releaseFromName(parseKmpName('drbd-kmp-default-9.1-1'))).toBeUndefined();
    expect(isOlderKernel('6.4.0-150600.21-default', '6.4.0-150600.23-default')).toBe(true);
    expect(isOlderKernel('6.1.0-47-default', '6.1.0-47-amd64')).toBe(false); // the same version, another flavor
    expect(isOlderKernel('6.4.0-150600.23-default', '6.4.0-150600.21-rt')).toBe(false);
  });
});

describe('the rpm query', () => {
  it('asks once, with the root when it is not /', () => {
    expect(rpmQueryArgs('x-kmp-default').slice(0, 4)).toEqual(['-qa', '--nodigest', '--nosignature', '--qf']);
    expect(rpmQueryArgs('x-kmp-default', { root: '/mnt', dbpath: '/var/lib/rpm' }).slice(0, 4)).toEqual(['--root', '/mnt', '--dbpath', '/var/lib/rpm']);
  });

  it('reads the answer, and refuses one it does not understand', () => {
    const text = '@\ta-kmp-default\t1.0\t1\t(none)\nP\ta-kmp-default\nF\t/usr/lib/modules/K/updates/a.ko\n@\tb-kmp-default\t2\t3\t4\nP\tkmp_in_kernel\n';
    expect(parseRpmQuery(text)).toEqual([
      { name: 'a-kmp-default', version: '1.0', release: '1', epoch: undefined, nvr: 'a-kmp-default-1.0-1', provides: ['a-kmp-default'], files: ['/usr/lib/modules/K/updates/a.ko'] },
      { name: 'b-kmp-default', version: '2', release: '3', epoch: 4, nvr: 'b-kmp-default-2-3', provides: ['kmp_in_kernel'], files: [] },
    ]);
    expect(parseRpmQuery('')).toEqual([]);
    for (const bad of ['F\t/x\n', '@\tonly-name\n', 'warning: something\n']) expect(() => parseRpmQuery(bad), bad).toThrow(KabiError);
  });
});

describe('settings', () => {
  function root(files: Record<string, string>): string {
    const r = mkdtempSync(join(tmpdir(), 'kabi-kmp-settings-'));
    for (const [p, t] of Object.entries(files)) {
      mkdirSync(join(r, p, '..'), { recursive: true });
      writeFileSync(join(r, p), t);
    }
    return r;
  }

  it('reads shell assignments without running anything', () => {
    expect(readShellVars('A=1\nexport B="two words" # c\nC=\'x\'\n# D=4\nE=$(rm -rf /)\nA=5\n')).toEqual(
      new Map([
        ['A', '5'],
        ['B', 'two words'],
        ['C', 'x'],
      ]),
    );
  });

  it('policy: wm2 by default, the file, the environment over it, kabi as a preset', async () => {
    expect(await readKmpPolicy(nodeFs, root({}), {})).toEqual(WM2_POLICY);
    const r = root({ '/etc/kabi/kmp.conf': 'KABI_KMP_FORWARD_ONLY=yes\nKABI_KMP_VERDICT=loader\n' });
    expect(await readKmpPolicy(nodeFs, r, {})).toEqual({ ...WM2_POLICY, forwardOnly: true, verdict: 'loader' });
    expect(await readKmpPolicy(nodeFs, r, { KABI_KMP_FORWARD_ONLY: 'no' })).toEqual({ ...WM2_POLICY, verdict: 'loader' });
    expect(await readKmpPolicy(nodeFs, root({}), { KABI_KMP_POLICY: 'kabi', KABI_KMP_STORE: '0' })).toEqual({ ...KABI_POLICY, store: false });
    await expect(readKmpPolicy(nodeFs, root({ '/etc/kabi/kmp.conf': 'KABI_KMP_NEWEST=maybe\n' }), {})).rejects.toThrow(/KABI_KMP_NEWEST="maybe": expected yes or no/);
    await expect(readKmpPolicy(nodeFs, root({}), { KABI_KMP_VERDICT: 'guess' })).rejects.toThrow(/expected depmod or loader/);
  });

  it('the initrd generator from /etc/sysconfig/bootloader', async () => {
    expect(await readInitrdGenerator(nodeFs, root({}))).toBe('dracut');
    expect(await readInitrdGenerator(nodeFs, root({ '/etc/sysconfig/bootloader': 'INITRD_GENERATOR="mkosi"\n' }))).toBe('mkosi-initrd');
    await expect(readInitrdGenerator(nodeFs, root({ '/etc/sysconfig/bootloader': 'INITRD_GENERATOR=booster\n' }))).rejects.toThrow(/"booster" configured in \/etc\/sysconfig\/bootloader is not supported/);
  });
});
