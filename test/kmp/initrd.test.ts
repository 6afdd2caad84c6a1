import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gnuCpio, writeTree } from '../initramfs/helpers.js';
import { nvr, SuseSystem } from './suse-system.js';

const K1 = '6.4.0-150600.21-default';
const K2 = '6.4.0-150600.23-default';

function system(): SuseSystem {
  return new SuseSystem({ [K1]: 'A', [K2]: 'A' });
}

/** A gzip initrd for `release` holding these files (paths inside the image). */
function initrd(s: SuseSystem, release: string, files: Record<string, Uint8Array>): void {
  const dir = mkdtempSync(join(tmpdir(), 'wm2-initrd-'));
  writeTree(dir, [{ path: 'init', data: '#!/bin/sh\n', mode: 0o755 }, ...Object.entries(files).map(([path, data]) => ({ path, data }))]);
  s.write(`/boot/initrd-${release}`, gzipSync(gnuCpio(dir)));
}

/** A root with foo 1.0 (built for K1) unpacked; K2's initrd built as given. */
function withKmp(s: SuseSystem) {
  const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
  s.unpack(p);
  return p;
}

const noPosttrans = { INITRD_IN_POSTTRANS: '' };

describe('weak-modules2 initrd step', () => {
  it('builds a missing initrd with dracut (DRACUT names another one)', async () => {
    const s = system();
    const p = withKmp(s);
    expect((await s.wm2(['--add-kmp', nvr(p)])).status).toBe(0);
    expect(s.commands).toEqual([`/usr/bin/dracut -f /boot/initrd-${K1} ${K1}`, `/usr/bin/dracut -f /boot/initrd-${K2} ${K2}`]);
    s.commands.length = 0;
    s.write('/opt/dracut', '#!/bin/sh\n');
    await s.wm2(['--add-kernel', K2], { env: { DRACUT: '/opt/dracut' } });
    expect(s.commands).toEqual([`/opt/dracut -f /boot/initrd-${K2} ${K2}`]);
  });

  // Which images are rebuilt is the generator's own rule (what dracut would put there, run
  // now); a module its configuration leaves out (omit_drivers) is one it would not take.
  it('leaves an initrd alone whose generator would not take the changed module, rebuilds one that holds it', async () => {
    const s = system();
    const p = withKmp(s);
    s.write('/etc/dracut.conf.d/50-omit.conf', 'omit_drivers+=" foo "\n');
    initrd(s, K1, { [`usr/lib/modules/${K1}/kernel/lib/kabi_base.ko`]: new Uint8Array(readFileSync(s.fx.path(`/usr/lib/modules/${K1}/kernel/lib/kabi_base.ko`))) });
    // K2's image has an older foo at the place the link will be.
    initrd(s, K2, { [`usr/lib/modules/${K2}/weak-updates/updates/foo.ko`]: s.module(K1, 'foo', { printk: 0x11111111, kfree: 0x2222 }) });
    const r = await s.wm2(['--add-kmp', nvr(p), '-v']);
    expect(r.status).toBe(0);
    expect(r.err).toContain(`changed initrd modules for kernel ${K1}: none\n`);
    expect(r.err).toContain(`changed initrd modules for kernel ${K2}: foo\n`);
    expect(s.commands).toEqual([`/usr/bin/dracut -f /boot/initrd-${K2} ${K2}`]);
  });

  it('rebuilds when a changed module is named in dracut.conf.d even if the image lacks it', async () => {
    const s = system();
    const p = withKmp(s);
    for (const k of [K1, K2]) initrd(s, k, { [`usr/lib/modules/${k}/kernel/lib/kabi_base.ko`]: new Uint8Array([1]) });
    s.write('/etc/dracut.conf.d/50-foo.conf', 'add_drivers+=" foo "\n');
    await s.wm2(['--add-kmp', nvr(p)]);
    expect(s.commands).toEqual([`/usr/bin/dracut -f /boot/initrd-${K1} ${K1}`, `/usr/bin/dracut -f /boot/initrd-${K2} ${K2}`]);
  });

  it('KMP_NEEDS_MKINITRD forces a rebuild (unless 0)', async () => {
    for (const [value, expected] of [['1', 2], ['yes', 2], ['0', 0], ['', 0]] as const) {
      const s = system();
      const p = withKmp(s);
      // Left to the generator alone, no image would change (it omits foo).
      s.write('/etc/dracut.conf.d/50-omit.conf', 'omit_drivers+=" foo "\n');
      for (const k of [K1, K2]) initrd(s, k, { [`usr/lib/modules/${k}/kernel/lib/kabi_base.ko`]: new Uint8Array([1]) });
      await s.wm2(['--add-kmp', nvr(p)], { env: { KMP_NEEDS_MKINITRD: value } });
      expect(s.commands.length, `KMP_NEEDS_MKINITRD=${value}`).toBe(expected);
    }
  });

  it('INITRD_IN_POSTTRANS records the kernel in /run/regenerate-initrd instead of building', async () => {
    const s = system();
    const p = withKmp(s);
    const r = await s.wm2(['--add-kmp', nvr(p), '-v'], { env: { INITRD_IN_POSTTRANS: '1' } });
    expect(r.status).toBe(0);
    expect(s.commands).toEqual([]);
    expect(s.exists(`/run/regenerate-initrd/${K1}`) && s.exists(`/run/regenerate-initrd/${K2}`)).toBe(true);
    expect(r.err).toContain(`touch /run/regenerate-initrd/${K2}\n`);
  });

  it('skips kdump kernels, and in a build environment asks for dracut (or mkosi-initrd) later', async () => {
    const s = new SuseSystem({ '6.4.0-150600.21-kdump': 'A' });
    expect(await s.wm2(['--add-kernel', '6.4.0-150600.21-kdump'])).toMatchObject({ status: 0, err: '' });
    expect(s.commands).toEqual([]);

    const b = system();
    rmSync(b.fx.path('/etc/fstab'));
    const r = await b.wm2(['--add-kernel', K1]);
    expect(r).toMatchObject({ status: 0, err: `Please run "/usr/bin/dracut -f /boot/initrd-${K1} ${K1}" as soon as your system is complete.\n` });
    b.write('/etc/fstab', '');
    b.write('/.buildenv', '');
    b.write('/etc/sysconfig/bootloader', 'LOADER_TYPE="grub2"\nINITRD_GENERATOR="mkosi"\n');
    const m = await b.wm2(['--add-kernel', K1]);
    expect(m.err).toBe(`Please run "/usr/bin/mkosi-initrd --kernel-version ${K1} -O /boot -o initrd-${K1}" as soon as your system is complete.\n`);
    expect(b.commands).toEqual([]);
  });

  it('runs mkosi-initrd (MKOSI_INITRD) when /etc/sysconfig/bootloader says so, and refuses an unknown generator', async () => {
    const s = system();
    s.write('/etc/sysconfig/bootloader', 'INITRD_GENERATOR=mkosi-initrd\n');
    await s.wm2(['--add-kernel', K1], { env: { MKOSI_INITRD: '/opt/mkosi-initrd' } });
    expect(s.commands).toEqual([`/opt/mkosi-initrd --kernel-version ${K1} -O /boot -o initrd-${K1}`]);
    s.write('/etc/sysconfig/bootloader', 'INITRD_GENERATOR="booster"\n');
    const r = await s.wm2(['--add-kernel', K1]);
    expect(r).toMatchObject({ status: 1, err: 'ERROR: the initrd generator "booster" configured in /etc/sysconfig/bootloader is not supported.\n' });
  });

  it('hands the kernel to sdbootutil (SDBOOTUTIL), or records it inside a transactional update', async () => {
    const s = system();
    s.write('/usr/bin/sdbootutil', '#!/bin/sh\n');
    chmodSync(s.fx.path('/usr/bin/sdbootutil'), 0o755);
    await s.wm2(['--add-kernel', K1]);
    expect(s.commands).toEqual(['/usr/bin/sdbootutil is-installed', `/usr/bin/sdbootutil --no-reuse-initrd add-kernel ${K1}`]);
    s.commands.length = 0;
    await s.wm2(['--add-kernel', K2], { env: { SDBOOTUTIL: '/usr/bin/sdbootutil', TRANSACTIONAL_UPDATE: 'true' } });
    expect(s.commands).toEqual([]);
    expect(s.exists(`/run/regenerate-initrd/${K2}`)).toBe(true);
  });

  it('exits 1 when the generator fails, 0 when the kernel image is missing (with a warning)', async () => {
    const s = system();
    s.failing.add('/usr/bin/dracut');
    const r = await s.wm2(['--add-kernel', K1]);
    expect(r.status).toBe(1);
    expect(r.err).toContain('/usr/bin/dracut failed\n');
    s.failing.clear();
    rmSync(s.fx.path(`/usr/lib/modules/${K2}/vmlinuz`));
    expect(await s.wm2(['--add-kernel', K2])).toMatchObject({ status: 0, err: `WARNING: kernel image for ${K2} not found!\n` });
  });

  it("DEPMOD runs the system's depmod instead of kabi's own; its failure fails the run", async () => {
    const s = system();
    const dir = mkdtempSync(join(tmpdir(), 'wm2-depmod-'));
    const log = join(dir, 'calls');
    for (const [name, rc] of [['depmod-ok', 0], ['depmod-bad', 1]] as const) {
      writeFileSync(join(dir, name), `#!/bin/sh\necho "$@" >> '${log}'\nexit ${rc}\n`);
      chmodSync(join(dir, name), 0o755);
    }
    const ok = await s.wm2(['--add-kernel', K1], { env: { DEPMOD: join(dir, 'depmod-ok'), ...noPosttrans } });
    expect(ok.status).toBe(0);
    expect(readFileSync(log, 'utf8')).toBe(`-b ${s.root} -ae -F ${s.root}/boot/System.map-${K1} ${K1}\n`);
    expect(existsSync(s.fx.path(`/usr/lib/modules/${K1}/modules.dep`))).toBe(false);
    const bad = await s.wm2(['--add-kernel', K1], { env: { DEPMOD: join(dir, 'depmod-bad') } });
    expect(bad.status).toBe(1);
  });
});
