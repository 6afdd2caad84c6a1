import { mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ABI, nvr, SuseSystem } from './suse-system.js';

const K1 = '6.4.0-150600.21-default';
const K2 = '6.4.0-150600.23-default';
const K3 = '6.4.0-150700.5-default'; // kABI B: printk changed
const R1 = '6.4.0-150600.23-rt';
const PRINTK_A = { printk: ABI.A[0].crc };

function system(): SuseSystem {
  return new SuseSystem({ [K1]: 'A', [K2]: 'A', [K3]: 'B', [R1]: 'A' });
}

describe('weak-modules2 --add-kmp', () => {
  it('links the KMP into every kernel of its flavor that it fits, under weak-updates/updates/ with absolute targets', async () => {
    const s = system();
    const p = s.kmp('foo', 'default', '1.0_k6.4.0_150600.21', K1, { 'foo.ko': s.module(K1, 'foo') });
    const r = await s.install(p, { WM2_VERBOSE: '1' });
    expect(r.status).toBe(0);
    expect(s.links(K1)).toEqual({}); // its own kernel has it in updates/
    expect(s.links(K2)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
    expect(s.links(K3)).toEqual({}); // kABI break
    expect(s.links(R1)).toEqual({}); // another flavor
    expect(r.err).toContain(`Package ${nvr(p)} does not need to be added to kernel ${K1}\n`);
    expect(r.err).toContain(`Package ${nvr(p)} added to kernel ${K2}\n`);
    expect(r.err).not.toContain(`kernel ${K3}\n`);
    // depmod ran for the kernels weak-modules2 refreshes: its own and the one it was linked into.
    expect(s.modulesDep(K1)).toContain('updates/foo.ko:');
    expect(s.modulesDep(K2)).toContain('weak-updates/updates/foo.ko:');
    expect(s.exists(`/usr/lib/modules/${K3}/modules.dep`)).toBe(false);
  });

  it('prints nothing without -v, and 0 when the KMP fits no kernel but its own', async () => {
    const s = system();
    const p = s.kmp('bar', 'default', '1.0', K3, { 'bar.ko': s.module(K3, 'bar', { new_api: 0x3333 }) });
    const r = await s.install(p);
    expect(r).toMatchObject({ status: 0, err: '' });
    expect([s.links(K1), s.links(K2)]).toEqual([{}, {}]);
  });

  it('leaves kernels without a System.map alone', async () => {
    const s = system();
    s.removeKernelFiles(K2);
    s.write(`/usr/lib/modules/${K2}/kernel/.keep`, '');
    const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    expect((await s.install(p)).status).toBe(0);
    expect(s.links(K2)).toEqual({});
  });

  it('skips KMPs built with the kernel (they provide kmp_in_kernel) and warns about a KMP without modules', async () => {
    const s = system();
    const inKernel = { ...s.kmp('ink', 'default', '1.0', K1, { 'ink.ko': s.module(K1, 'ink') }), provides: ['kmp_in_kernel'] };
    expect(await s.install(inKernel, { WM2_VERBOSE: '1' })).toMatchObject({ status: 0, err: '' });
    expect(s.links(K2)).toEqual({});
    const empty = { name: 'doc-kmp-default', version: '1', release: '1', files: { '/usr/share/doc/doc-kmp/README': 'x' } };
    expect(await s.install(empty)).toMatchObject({ status: 0, err: `WARNING: ${nvr(empty)} does not contain any kernel modules\n` });
  });

  it('refuses a KMP with modules for several kernels, or in kernel/ or weak-updates/ (exit 1)', async () => {
    const s = system();
    const multi = s.kmp('multi', 'default', '1.0', K1, { 'm.ko': s.module(K1, 'm') });
    multi.files[`/usr/lib/modules/${K2}/updates/m2.ko`] = s.module(K2, 'm2');
    expect(await s.install(multi)).toMatchObject({ status: 1, err: `Error: package ${nvr(multi)} seems to contain modules for multiple kernel versions\n` });
    const inKernelDir = { name: 'bad-kmp-default', version: '1', release: '1', files: { [`/usr/lib/modules/${K1}/kernel/drivers/bad.ko`]: s.module(K1, 'bad') } };
    const r = await s.install(inKernelDir);
    expect(r).toMatchObject({ status: 1, err: `Error: package ${nvr(inKernelDir)} must not install modules into kernel/ or weak-updates/\n` });
    expect(s.links(K2)).toEqual({});
  });

  it('a refused KMP does not keep another from being added (wm2 rules, and the newest rule that reads them all)', async () => {
    for (const env of [{}, { KABI_KMP_NEWEST: 'yes' }] as Record<string, string>[]) {
      const s = system();
      const multi = s.kmp('multi', 'default', '1.0', K1, { 'm.ko': s.module(K1, 'm') });
      multi.files[`/usr/lib/modules/${K2}/updates/m2.ko`] = s.module(K2, 'm2');
      expect((await s.install(multi, env)).status).toBe(1);
      const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
      const r = await s.install(p, env);
      expect(r.status, JSON.stringify(env)).toBe(0);
      expect(s.links(K2)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
    }
  });

  it('fails when the package is not installed at all', async () => {
    const s = system();
    const r = await s.wm2(['--add-kmp', 'ghost-kmp-default-1-1']);
    expect(r).toMatchObject({ status: 1, err: 'ERROR: package ghost-kmp-default-1-1 is not installed\n' });
  });

  it('swaps out the previous version of the same package, and says so', async () => {
    const s = system();
    const v1 = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    await s.install(v1);
    const v2 = s.kmp('foo', 'default', '2.0', K2, { 'foo.ko': s.module(K2, 'foo') });
    const r = await s.install(v2, { WM2_VERBOSE: '1' });
    expect(r.status).toBe(0);
    // K2 has its own copy now (updates/), K1 gets a link to 2.0 instead of having none.
    expect(r.err).toContain(`Package ${nvr(v2)} does not need to be added to kernel ${K2}\n`);
    expect(s.links(K2)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
  });

  it('replaces an older version linked into a third kernel with the newer one', async () => {
    const s = new SuseSystem({ [K1]: 'A', [K2]: 'A', '6.4.0-150600.25-default': 'A' });
    const K4 = '6.4.0-150600.25-default';
    const v1 = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    await s.install(v1);
    expect(s.links(K4)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
    const v2 = s.kmp('foo', 'default', '2.0', K2, { 'foo.ko': s.module(K2, 'foo') });
    const r = await s.install(v2, { WM2_VERBOSE: '1' });
    expect(r.err).toContain(`Package ${nvr(v1)} replaced by package ${nvr(v2)} in kernel ${K4}\n`);
    expect(s.links(K4)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K2}/updates/foo.ko` });
  });

  it('skips a kernel that already has a file of that name in updates/, extra/ or weak-updates/', async () => {
    const s = system();
    s.write(`/usr/lib/modules/${K2}/extra/foo.ko`, s.module(K2, 'foo'));
    const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    const r = await s.install(p, { WM2_VERBOSE: '2' });
    expect(s.links(K2)).toEqual({});
    expect(r.err).toContain(`add_kmp: skipped ${nvr(p)}\n`);
  });

  it('refuses a kernel whose out-of-tree modules are already inconsistent (depmod verdict), unless the loader verdict is asked for', async () => {
    for (const verdict of ['depmod', 'loader']) {
      const s = system();
      // Someone's module in K2's extra/ needs a symbol K2 does not have.
      s.write(`/usr/lib/modules/${K2}/extra/broken.ko`, s.module(K2, 'broken', { gone_sym: 0x1 }));
      const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
      const r = await s.install(p, { KABI_KMP_VERDICT: verdict, WM2_DEBUG: '1' });
      expect(r.status).toBe(0);
      if (verdict === 'depmod') {
        expect(r.err).toContain(`depmod: WARNING: /lib/modules/${K2}/extra/broken.ko needs unknown symbol gone_sym\n`);
        expect(r.err).toContain(`Warning: /usr/lib/modules/${K2} is inconsistent\nWarning: weak-updates symlinks might not be created\n`);
        expect(s.links(K2)).toEqual({});
      } else {
        expect(r.err).not.toContain('inconsistent');
        expect(s.links(K2)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
      }
    }
  });

  it('judges the KMP with the modules it brings: a consumer and its provider go in together', async () => {
    const s = system();
    const prov = s.module(K1, 'prov', PRINTK_A, { exports: [{ symbol: 'prov_fn', crc: 0x55 }] });
    const cons = s.module(K1, 'cons', { prov_fn: 0x55 });
    const p = s.kmp('pc', 'default', '1.0', K1, { 'prov.ko': prov, 'cons.ko': cons });
    await s.install(p);
    expect(s.links(K2)).toEqual({ 'updates/cons.ko': `/usr/lib/modules/${K1}/updates/cons.ko`, 'updates/prov.ko': `/usr/lib/modules/${K1}/updates/prov.ko` });
    expect(s.links(K3)).toEqual({});
  });
});

describe('weak-modules2 --remove-kmp', () => {
  it('removes the links and relinks the newest other version that fits; a kernel still linked to another version keeps it', async () => {
    const K4 = '6.4.0-150600.25-default';
    const s = new SuseSystem({ [K1]: 'A', [K2]: 'A', [K4]: 'A' });
    const v1 = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    const v2 = s.kmp('foo', 'default', '2.0', K2, { 'foo.ko': s.module(K2, 'foo') });
    await s.install(v1);
    await s.install(v2);
    expect(s.links(K4)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K2}/updates/foo.ko` });
    const r = await s.erase(nvr(v2), { WM2_VERBOSE: '1' });
    expect(r.status).toBe(0);
    expect(r.err).toContain(`Package ${nvr(v2)} replaced by package ${nvr(v1)} in kernel ${K4}\n`);
    expect(s.links(K4)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
    // K2 had 2.0 in its own updates/ and, from when 1.0 came, a link to 1.0 (its name was free
    // then): the link takes a name, so weak-modules2 cannot add 1.0 again, but it is there.
    expect(r.err).toContain(`Package ${nvr(v2)} removed from kernel ${K2}\n`);
    expect(s.links(K2)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
    expect(s.modulesDep(K4)).toContain(`weak-updates/updates/foo.ko:`);
  });

  it('says when no other version could be linked', async () => {
    const s = system();
    const v1 = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    const v3 = s.kmp('foo', 'default', '3.0', K3, { 'foo.ko': s.module(K3, 'foo', { printk: ABI.B[0].crc }) });
    await s.install(v1);
    await s.install(v3);
    const r = await s.erase(nvr(v1), { WM2_VERBOSE: '1' });
    expect(r.err).toContain(`Package ${nvr(v1)} removed from kernel ${K2}\n`);
    expect(r.err).toContain(`Weak-updates symlinks to no other foo-kmp-default package could be created\n`);
    expect(s.links(K2)).toEqual({});
  });

  it('recognises links made by SUSE\'s own weak-modules2 (targets spelled with /lib/modules too)', async () => {
    const s = system();
    const v1 = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    s.unpack(v1);
    // As the bash tool leaves them: weak-updates/updates/foo.ko -> absolute module path, here
    // spelled through /lib (-> usr/lib): by --remove-kmp the module is gone, and still recognised.
    mkdirSync(s.fx.path(`/usr/lib/modules/${K2}/weak-updates/updates`), { recursive: true });
    symlinkSync(`/lib/modules/${K1}/updates/foo.ko`, s.fx.path(`/usr/lib/modules/${K2}/weak-updates/updates/foo.ko`));
    mkdirSync(s.fx.path(`/usr/lib/modules/${R1}/weak-updates/updates`), { recursive: true });
    // (a stray link in another flavor is not the KMP's business)
    symlinkSync(`/lib/modules/${K1}/updates/foo.ko`, s.fx.path(`/usr/lib/modules/${R1}/weak-updates/updates/foo.ko`));
    const r = await s.wm2(['--add-kmp', nvr(v1)], { env: { WM2_VERBOSE: '1' } });
    expect(r.err).toContain(`Package ${nvr(v1)} does not need to be added to kernel ${K2}\n`);
    await s.erase(nvr(v1));
    expect(s.links(K2)).toEqual({});
    expect(s.links(R1)).toEqual({ 'updates/foo.ko': `/lib/modules/${K1}/updates/foo.ko` });
  });

  it('refuses a module list naming several kernels (exit 1)', async () => {
    const s = system();
    const r = await s.wm2(['--remove-kmp', 'foo-kmp-default-1-1'], { stdin: `/usr/lib/modules/${K1}/updates/a.ko\n/usr/lib/modules/${K2}/updates/b.ko\n` });
    expect(r).toMatchObject({ status: 1, err: 'Error: package foo-kmp-default-1-1 seems to contain modules for multiple kernel versions\n' });
  });
});

describe('weak-modules2 kernel modes', () => {
  it('--add-kernel links every fitting KMP of its flavor (newest version of each), runs depmod and builds the missing initrd', async () => {
    const s = system();
    const v1 = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    const v2 = s.kmp('foo', 'default', '2.0', K1, { 'foo2.ko': s.module(K1, 'foo2') }, '2');
    const rt = s.kmp('foo', 'rt', '1.0', R1, { 'foo.ko': s.module(R1, 'foo') });
    for (const p of [v1, v2, rt]) s.unpack(p);
    const K5 = '6.4.0-150600.30-default';
    s.addKernel(K5, 'A');
    const r = await s.wm2(['--add-kernel', K5], { env: { WM2_VERBOSE: '1' } });
    expect(r.status).toBe(0);
    expect(s.links(K5)).toEqual({
      'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko`,
      'updates/foo2.ko': `/usr/lib/modules/${K1}/updates/foo2.ko`,
    });
    expect(r.err).toContain(`Package ${nvr(v2)} added to kernel ${K5}\n`);
    expect(s.modulesDep(K5)).toContain('weak-updates/updates/foo.ko:');
    expect(s.commands).toEqual([`/usr/bin/dracut -f /boot/initrd-${K5} ${K5}`]);
  });

  it('--add-kernel-modules and --remove-kernel-modules read and ignore their module list, and relink', async () => {
    for (const mode of ['--add-kernel-modules', '--remove-kernel-modules']) {
      const s = system();
      s.unpack(s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') }));
      const r = await s.wm2([mode, K2], { stdin: `/usr/lib/modules/${K2}/kernel/x.ko\n` });
      expect(r.status).toBe(0);
      expect(s.links(K2)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
    }
  });

  it('--remove-kernel removes weak-updates and, once the kernel is gone, its directory', async () => {
    const s = system();
    await s.install(s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') }));
    expect(s.links(K2)).not.toEqual({});
    s.removeKernelFiles(K2);
    const r = await s.wm2(['--remove-kernel', K2]);
    expect(r).toMatchObject({ status: 0, err: '' });
    expect(s.exists(`/usr/lib/modules/${K2}`)).toBe(false);
    // A regular file someone put into weak-updates is theirs: it stays, and so does the directory.
    s.write(`/usr/lib/modules/${K1}/weak-updates/mine.ko`, 'data');
    await s.wm2(['--remove-kernel', K1]);
    expect(readdirSync(s.fx.path(`/usr/lib/modules/${K1}/weak-updates`))).toEqual(['mine.ko']);
  });

  it('erasing a KMP after its kernel (rpm may order it so) removes the kernel\'s emptied directory', async () => {
    const s = system();
    const p = s.kmp('foo', 'default', '1.0', K2, { 'foo.ko': s.module(K2, 'foo') });
    await s.install(p);
    s.removeKernelFiles(K2);
    await s.wm2(['--remove-kernel', K2]);
    expect(s.exists(`/usr/lib/modules/${K2}/updates/foo.ko`)).toBe(true);
    expect((await s.erase(nvr(p))).status).toBe(0);
    expect(s.exists(`/usr/lib/modules/${K2}`)).toBe(false);
  });

  it('--remove-kernel takes kabi\'s depmod cache away with the kernel even when others left files behind', async () => {
    const s = system();
    await s.install(s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') }));
    expect(s.exists(`/var/cache/kabi/depmod/${K2}`)).toBe(true);
    s.write(`/usr/lib/modules/${K2}/extra/left-behind.txt`, 'x');
    s.write(`/usr/lib/modules/${K2}/modules.kabi-cache`, 'what kabi 0.1 kept here');
    s.removeKernelFiles(K2);
    await s.wm2(['--remove-kernel', K2]);
    expect(readdirSync(s.fx.path(`/usr/lib/modules/${K2}`))).toEqual(['extra']);
    expect(s.exists(`/var/cache/kabi/depmod/${K2}`)).toBe(false);
    // A kernel whose directory rpm removed already (nothing was left in it): its cache goes too.
    expect(s.exists(`/var/cache/kabi/depmod/${K1}`)).toBe(true);
    s.removeKernelFiles(K1);
    rmSync(s.fx.path(`/usr/lib/modules/${K1}`), { recursive: true });
    await s.wm2(['--remove-kernel', K1]);
    expect(s.exists(`/var/cache/kabi/depmod/${K1}`)).toBe(false);
  });

  it('--add-kernel of a kernel whose files are gone only reaches the initrd step', async () => {
    const s = system();
    s.removeKernelFiles(K2);
    const r = await s.wm2(['--add-kernel', K2], { env: { WM2_VERBOSE: '2' } });
    expect(r.status).toBe(0);
    expect(r.err).toContain('kernel_changed: kernel removed\n');
    expect(r.err).toContain(`WARNING: kernel image for ${K2} not found!\n`);
  });
});
