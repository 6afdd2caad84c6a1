import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureKernel, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { kmodDepmodInRoot, recorder, snapshot, weakLinks, wm } from './helpers.js';

const A = '5.14.0-100.el9.x86_64';
const B = '5.14.0-200.el9.x86_64';
const C = '5.14.0-300.el9.x86_64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
const PRINTK = { symbol: 'printk', crc: 0x11111111 };

function rhelKernel(release: string, printkCrc = 0x11111111, extra: Partial<FixtureKernel> = {}): FixtureKernel {
  return {
    release,
    symvers: 'boot-gz',
    vmlinux: [{ symbol: 'printk', crc: printkCrc }, { symbol: 'kfree', crc: 0x2222 }],
    config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)"' },
    dirs: ['extra'],
    ...extra,
  };
}

/** A root with A (modules built here), B (same CRCs) and C (printk changed). */
function threeKernels(extra: Partial<Record<'A' | 'B' | 'C', Partial<FixtureKernel>>> = {}): FixtureRoot {
  const fx = makeRoot('kabi-wm-');
  addKernel(fx, rhelKernel(A, 0x11111111, extra.A));
  addKernel(fx, rhelKernel(B, 0x11111111, extra.B));
  addKernel(fx, rhelKernel(C, 0x99999999, extra.C));
  return fx;
}

function extraModule(fx: FixtureRoot, release: string, rel: string, spec: Parameters<typeof externalModule>[1], compress?: 'xz' | 'zst'): string {
  let bytes: Uint8Array = externalModule(release, spec);
  if (compress === 'xz') bytes = execFileSync('xz', ['-c', '--check=crc32'], { input: bytes });
  if (compress === 'zst') bytes = execFileSync('zstd', ['-q', '-c'], { input: bytes });
  return fx.write(`/lib/modules/${release}/extra/${rel}`, bytes);
}

/** A fixture path as the installed system sees it (what link targets say). */
const sys = (fx: FixtureRoot, host: string) => host.slice(fx.root.length);

const basic = (name: string) => ({ name, versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'] });

describe('weak-modules --add-modules', () => {
  it('links a module into every compatible kernel, never its own, and prints the verbose lines tools grep', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'foo/bar.ko', basic('bar'));
    const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--no-initramfs'], `${m}\n`);
    expect(r.status).toBe(0);
    expect(weakLinks(fx.root, A)).toEqual({});
    expect(weakLinks(fx.root, B)).toEqual({ 'foo/bar.ko': sys(fx, m) });
    expect(weakLinks(fx.root, C)).toEqual({});
    expect(r.out).toContain(`Module bar.ko from kernel ${A} is compatible with kernel ${B}\n`);
    expect(r.out).toContain(`Module bar.ko from kernel ${A} is not compatible with kernel ${C} in symbols:  printk\n`);
    expect(r.out).toContain(`Falling back weak-modules state for kernel ${C}\n`);
    // depmod ran once for B (links changed) and once for A (the module's own kernel), not for C.
    const depmodLines = r.out.split('\n').filter((l) => / -ae -F /.test(l));
    expect(depmodLines.map((l) => l.split(' ').pop())).toEqual([A, B]);
    expect(readFileSync(join(fx.root, 'lib/modules', B, 'modules.dep'), 'utf8')).toContain('weak-updates/foo/bar.ko:');
  });

  it('reports a missing symbol as well as a CRC mismatch (both exit 0)', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'miss.ko', { name: 'miss', versions: [LAYOUT, { symbol: 'gone_in_b', crc: 1 }], undefinedSymbols: ['gone_in_b'] });
    const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--no-initramfs'], m);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`Module miss.ko from kernel ${A} is not compatible with kernel ${B} in symbols:  gone_in_b\n`);
    expect(weakLinks(fx.root, B)).toEqual({});
  });

  it('cascades: a consumer whose provider is incompatible is not linked either', async () => {
    const fx = threeKernels();
    const prov = extraModule(fx, A, 'prov.ko', { name: 'prov', versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'], exports: [{ symbol: 'prov_fn', crc: 0x55 }] });
    const cons = extraModule(fx, A, 'cons.ko', { name: 'cons', versions: [LAYOUT, { symbol: 'prov_fn', crc: 0x55 }], undefinedSymbols: ['prov_fn'] });
    const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--no-initramfs'], `${prov}\n${cons}\n`);
    expect(weakLinks(fx.root, B)).toEqual({ 'prov.ko': sys(fx, prov), 'cons.ko': sys(fx, cons) });
    expect(weakLinks(fx.root, C)).toEqual({});
    expect(r.out).toContain(`Module prov.ko from kernel ${A} is not compatible with kernel ${C} in symbols:  printk\n`);
    expect(r.out).toContain(`Module cons.ko from kernel ${A} is not compatible with kernel ${C} in symbols:  prov_fn\n`);
  });

  it('is all-or-nothing per kernel: one incompatible module keeps the kernel as it was', async () => {
    const fx = threeKernels();
    const ok = extraModule(fx, A, 'ok.ko', { name: 'ok', versions: [LAYOUT, { symbol: 'kfree', crc: 0x2222 }], undefinedSymbols: ['kfree'] });
    const bad = extraModule(fx, A, 'bad.ko', basic('bad'));
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${ok}\n${bad}\n`);
    expect(weakLinks(fx.root, B)).toEqual({ 'ok.ko': sys(fx, ok), 'bad.ko': sys(fx, bad) });
    expect(weakLinks(fx.root, C)).toEqual({}); // ok.ko alone would be fine on C, but not with bad.ko
  });

  it('RPM upgrade order: add the new version, then remove the old one whose file is still there', async () => {
    const fx = threeKernels();
    const v1 = extraModule(fx, A, 'drv.ko', basic('drv'));
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], v1);
    expect(weakLinks(fx.root, B)).toEqual({ 'drv.ko': sys(fx, v1) });
    // The new package replaces the file (same path), %post adds, old %postun removes the same path.
    extraModule(fx, A, 'drv.ko', { ...basic('drv'), modinfo: [['version', '2.0']] });
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], v1);
    const r = await wm(['--basedir', fx.root, '--remove-modules', '--verbose', '--no-initramfs'], v1);
    expect(r.status).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({ 'drv.ko': sys(fx, v1) });
  });

  it('--remove-modules after the file is gone removes the link and prunes empty directories', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'vendor/deep/drv.ko', basic('drv'));
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    expect(weakLinks(fx.root, B)).toEqual({ 'vendor/deep/drv.ko': sys(fx, m) });
    rmSync(m);
    const r = await wm(['--basedir', fx.root, '--remove-modules', '--verbose', '--no-initramfs'], m);
    expect(r.status).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({});
    expect(existsSync(join(fx.root, 'lib/modules', B, 'weak-updates/vendor'))).toBe(false);
    expect(existsSync(join(fx.root, 'lib/modules', B, 'weak-updates'))).toBe(true);
    expect(r.out).toContain(`Removing compatible module drv.ko from kernel ${B}\n`);
  });

  it('--remove-modules also drops links that lost their provider (cascade)', async () => {
    const fx = threeKernels();
    const prov = extraModule(fx, A, 'prov.ko', { name: 'prov', versions: [LAYOUT], exports: [{ symbol: 'prov_fn', crc: 0x55 }] });
    const cons = extraModule(fx, A, 'cons.ko', { name: 'cons', versions: [LAYOUT, { symbol: 'prov_fn', crc: 0x55 }], undefinedSymbols: ['prov_fn'] });
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${prov}\n${cons}\n`);
    expect(Object.keys(weakLinks(fx.root, C)).sort()).toEqual(['cons.ko', 'prov.ko']);
    rmSync(prov);
    await wm(['--basedir', fx.root, '--remove-modules', '--no-initramfs'], prov);
    expect(weakLinks(fx.root, C)).toEqual({});
  });

  it('links a module stored outside /lib/modules under its full (system) path', async () => {
    const fx = threeKernels();
    const m = fx.write('/opt/vendor/drv.ko', externalModule(A, basic('drv')));
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    // Outside any kernel tree the module is "foreign" to every kernel, A included. The link is
    // named after the path the installed system sees (the el9 script would put the host's
    // --basedir into the name too); its target is that path too, so it resolves inside the root.
    expect(weakLinks(fx.root, A)).toEqual({ 'opt/vendor/drv.ko': sys(fx, m) });
    expect(weakLinks(fx.root, B)).toEqual({ 'opt/vendor/drv.ko': sys(fx, m) });
    expect(weakLinks(fx.root, C)).toEqual({});
  });

  it('handles kernel releases with + (regex characters) and skips kernels without System.map', async () => {
    const fx = makeRoot('kabi-wm-');
    const P = '6.12.7+deb12-amd64';
    const N = '6.12.8+deb12-amd64';
    addKernel(fx, rhelKernel(A));
    addKernel(fx, rhelKernel(P));
    addKernel(fx, rhelKernel(N, 0x11111111, { systemMap: false }));
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--no-initramfs'], m);
    expect(weakLinks(fx.root, P)).toEqual({ 'drv.ko': sys(fx, m) });
    expect(weakLinks(fx.root, N)).toEqual({});
    expect(r.out).not.toContain(N);
  });

  it('reads a symvers that exists only as .xz (the el9 script feeds it to zcat)', async () => {
    const fx = makeRoot('kabi-wm-');
    addKernel(fx, rhelKernel(A));
    addKernel(fx, rhelKernel(B, 0x11111111, { symvers: 'boot-xz' }));
    addKernel(fx, rhelKernel(C, 0x99999999, { symvers: 'modules-xz' }));
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    expect(weakLinks(fx.root, B)).toEqual({ 'drv.ko': sys(fx, m) });
    expect(weakLinks(fx.root, C)).toEqual({});
  });

  it('accepts .ko.zst and .ko.xz modules', async () => {
    const fx = threeKernels();
    const z = extraModule(fx, A, 'zdrv.ko.zst', basic('zdrv'), 'zst');
    const x = extraModule(fx, A, 'xdrv.ko.xz', basic('xdrv'), 'xz');
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${z}\n${x}\n`);
    expect(weakLinks(fx.root, B)).toEqual({ 'zdrv.ko.zst': sys(fx, z), 'xdrv.ko.xz': sys(fx, x) });
    expect(readFileSync(join(fx.root, 'lib/modules', B, 'modules.dep'), 'utf8')).toContain('weak-updates/zdrv.ko.zst:');
  });

  it('is idempotent: a second identical run changes nothing (but refreshes as an update case)', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    const before = snapshot(join(fx.root, 'lib/modules', B, 'weak-updates'));
    const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--no-initramfs'], m);
    expect(snapshot(join(fx.root, 'lib/modules', B, 'weak-updates'))).toEqual(before);
    expect(r.out).toContain(`weak module for drv.ko already exists for kernel ${B}, update case?`);
  });

  it('an RPM upgrade that replaces a linked module in place refreshes the other kernels\' depmod files', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'drv.ko', { ...basic('drv'), exports: [{ symbol: 'drv_v1', crc: 0x55 }] });
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    expect(readFileSync(join(fx.root, 'lib/modules', B, 'modules.symbols'), 'utf8')).toContain('alias symbol:drv_v1 drv');
    // The package manager writes the new file beside and renames it over the old one: the
    // link in B and its directory stay exactly as they were.
    const bytes = externalModule(A, { ...basic('drv'), exports: [{ symbol: 'drv_v2', crc: 0x66 }] });
    const tmp = fx.write(`/lib/modules/${A}/extra/drv.ko;6543abcd`, bytes);
    renameSync(tmp, m);
    const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--no-initramfs'], m);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`weak module for drv.ko already exists for kernel ${B}, update case?`);
    const copy = kmodDepmodInRoot(fx.root, B);
    for (const f of ['modules.dep', 'modules.dep.bin', 'modules.symbols', 'modules.symbols.bin']) {
      expect(readFileSync(join(fx.root, 'lib/modules', B, f)), f).toEqual(readFileSync(join(copy, 'lib/modules', B, f)));
    }
    expect(readFileSync(join(fx.root, 'lib/modules', B, 'modules.symbols'), 'utf8')).not.toContain('drv_v1');
    rmSync(copy, { recursive: true, force: true });
  });

  it('a dry run leaves no trace: the whole root is byte-for-byte the same, nothing is run', async () => {
    const fx = threeKernels({ B: { initramfs: 'dracut' } });
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    const dracut = recorder(fx.root + '/..', `dracut-${Date.now()}`);
    const before = snapshot(fx.root);
    const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--dry-run', '--dracut', dracut.path], m);
    expect(r.status).toBe(0);
    expect(snapshot(fx.root)).toEqual(before);
    expect(dracut.calls()).toEqual([]);
    expect(r.out).toContain(`Module drv.ko from kernel ${A} is compatible with kernel ${B}`);
    expect(r.out).toMatch(/depmod -b .* -ae -F .*System\.map-5\.14\.0-200\.el9\.x86_64 5\.14\.0-200\.el9\.x86_64/);
  });
});

describe('weak-modules --add-kernel / --remove-kernel', () => {
  it('links extra/ modules of other kernels, newest source first; a basename taken from a newer kernel wins', async () => {
    const fx = makeRoot('kabi-wm-');
    const NEW = '5.14.0-400.el9.x86_64';
    for (const r of [A, B, NEW]) addKernel(fx, rhelKernel(r));
    const fromA = extraModule(fx, A, 'drv.ko', basic('drv'));
    const fromB = extraModule(fx, B, 'drv.ko', basic('drv'));
    const onlyA = extraModule(fx, A, 'other.ko', basic('other'));
    const r = await wm(['--basedir', fx.root, '--add-kernel', NEW, '--verbose', '--no-initramfs']);
    expect(r.status).toBe(0);
    expect(weakLinks(fx.root, NEW)).toEqual({ 'drv.ko': sys(fx, fromB), 'other.ko': sys(fx, onlyA) });
    expect(fromA).not.toBe(fromB);
  });

  it('takes an older version when the newest one is incompatible', async () => {
    const fx = makeRoot('kabi-wm-');
    const NEW = '5.14.0-400.el9.x86_64';
    addKernel(fx, rhelKernel(A));
    addKernel(fx, rhelKernel(B));
    addKernel(fx, rhelKernel(NEW));
    const fromA = extraModule(fx, A, 'drv.ko', basic('drv'));
    extraModule(fx, B, 'drv.ko', { name: 'drv', versions: [LAYOUT, { symbol: 'printk', crc: 0xbad }], undefinedSymbols: ['printk'] });
    await wm(['--basedir', fx.root, '--add-kernel', NEW, '--no-initramfs']);
    expect(weakLinks(fx.root, NEW)).toEqual({ 'drv.ko': sys(fx, fromA) });
  });

  it('links a group of interdependent modules all-or-nothing, independent ones one by one', async () => {
    const fx = makeRoot('kabi-wm-');
    const NEW = '5.14.0-400.el9.x86_64';
    addKernel(fx, rhelKernel(A));
    addKernel(fx, rhelKernel(NEW, 0x99999999));
    const prov = extraModule(fx, A, 'prov.ko', { name: 'prov', versions: [LAYOUT], exports: [{ symbol: 'prov_fn', crc: 0x55 }] });
    extraModule(fx, A, 'cons.ko', { name: 'cons', versions: [LAYOUT, { symbol: 'prov_fn', crc: 0x55 }, PRINTK], undefinedSymbols: ['prov_fn', 'printk'] });
    const solo = extraModule(fx, A, 'solo.ko', { name: 'solo', versions: [LAYOUT, { symbol: 'kfree', crc: 0x2222 }], undefinedSymbols: ['kfree'] });
    extraModule(fx, A, 'solobad.ko', basic('solobad'));
    await wm(['--basedir', fx.root, '--add-kernel', NEW, '--no-initramfs']);
    // cons needs printk (changed): the prov+cons group stays out as a whole; solo goes in, solobad not.
    expect(weakLinks(fx.root, NEW)).toEqual({ 'solo.ko': sys(fx, solo) });
    expect(prov).toBeTruthy();
  });

  it('exits 1 with the weak-modules message when the kernel has no symvers', async () => {
    const fx = makeRoot('kabi-wm-');
    addKernel(fx, rhelKernel(A, 0x1, { symvers: 'none' }));
    const r = await wm(['--basedir', fx.root, '--add-kernel', A, '--no-initramfs']);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/^Symvers dump file is not found in .*symvers-5\.14\.0-100\.el9\.x86_64\.xz/);
  });

  it('does nothing (exit 0) for a kernel without System.map', async () => {
    const fx = makeRoot('kabi-wm-');
    addKernel(fx, rhelKernel(A));
    addKernel(fx, rhelKernel(B, 0x11111111, { systemMap: false }));
    extraModule(fx, A, 'drv.ko', basic('drv'));
    const r = await wm(['--basedir', fx.root, '--add-kernel', B, '--no-initramfs']);
    expect(r.status).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({});
  });

  it('--remove-kernel empties weak-updates but keeps the directory, runs nothing and exits 0', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'sub/drv.ko', basic('drv'));
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    expect(weakLinks(fx.root, B)).toEqual({ 'sub/drv.ko': sys(fx, m) });
    const prog = recorder(fx.root + '/..', `prog-${Date.now()}`);
    const r = await wm(['--basedir', fx.root, '--remove-kernel', B, '--check-initramfs-prog', prog.path]);
    expect(r.status).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({});
    const dir = join(fx.root, 'lib/modules', B, 'weak-updates');
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(existsSync(join(dir, 'sub'))).toBe(false);
    expect(prog.calls()).toEqual([]);
    // Also for a kernel that never had weak-updates, or does not exist at all.
    expect((await wm(['--basedir', fx.root, '--remove-kernel', '9.9.9'])).status).toBe(0);
  });

  it('--remove-kernel takes kabi\'s depmod cache of the kernel with it (the host\'s removal path does not know it)', async () => {
    const fx = threeKernels();
    mkdirSync(join(fx.root, 'var/cache'), { recursive: true });
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    const cache = (k: string) => join(fx.root, 'var/cache/kabi/depmod', k);
    expect(existsSync(cache(B))).toBe(true);
    expect((await wm(['--basedir', fx.root, '--remove-kernel', B, '--dry-run'])).status).toBe(0);
    expect(existsSync(cache(B))).toBe(true);
    expect((await wm(['--basedir', fx.root, '--remove-kernel', B])).status).toBe(0);
    expect(existsSync(cache(B))).toBe(false);
    expect(existsSync(cache(A))).toBe(true);
    // A link in place of either of kabi's cache directories names someone else's files: neither
    // the file named like the kernel nor another "gone" kernel's cache there is touched.
    for (const [linked, files] of [
      ['var/cache/kabi/depmod', 'srv/important'],
      ['var/cache/kabi', 'srv/important/depmod'],
    ] as const) {
      rmSync(join(fx.root, 'var/cache/kabi'), { recursive: true, force: true });
      mkdirSync(join(fx.root, files), { recursive: true });
      mkdirSync(join(fx.root, linked, '..'), { recursive: true });
      writeFileSync(join(fx.root, files, 'notes.txt'), 'x');
      writeFileSync(join(fx.root, files, A), 'named like the kernel');
      symlinkSync('/srv/important', join(fx.root, linked));
      expect((await wm(['--basedir', fx.root, '--remove-kernel', A])).status).toBe(0);
      expect(readFileSync(join(fx.root, files, 'notes.txt'), 'utf8')).toBe('x');
      expect(readFileSync(join(fx.root, files, A), 'utf8')).toBe('named like the kernel');
      rmSync(join(fx.root, linked));
    }
    expect((await wm(['--basedir', fx.root, '--remove-kernel', A])).status).toBe(0);
    // The last kernel's removal leaves no directory of kabi's behind.
    await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], extraModule(fx, C, 'drv2.ko', basic('drv2')));
    expect(existsSync(join(fx.root, 'var/cache/kabi/depmod', C))).toBe(true);
    // (B's modules are still there: the new module's links went there too, and B's cache came back.)
    for (const k of [A, B, C]) expect((await wm(['--basedir', fx.root, '--remove-kernel', k])).status).toBe(0);
    expect(existsSync(join(fx.root, 'var/cache/kabi/depmod'))).toBe(false);
  });

  for (const [what, setup] of [
    ['/var/cache a loop of links', (r: string) => symlinkSync('cache', join(r, 'var/cache'))],
    ['/var/cache/kabi a loop of links', (r: string) => (mkdirSync(join(r, 'var/cache'), { recursive: true }), symlinkSync('kabi', join(r, 'var/cache/kabi')))],
    ['/var/cache/kabi/depmod a loop of links', (r: string) => (mkdirSync(join(r, 'var/cache/kabi'), { recursive: true }), symlinkSync('depmod', join(r, 'var/cache/kabi/depmod')))],
    ['/var/cache/kabi a link to /', (r: string) => (mkdirSync(join(r, 'var/cache'), { recursive: true }), symlinkSync('/', join(r, 'var/cache/kabi')))],
  ] as const) {
    it(`${what}: the links are made and indexed without a cache, status 0`, async () => {
      const fx = threeKernels();
      mkdirSync(join(fx.root, 'var'), { recursive: true });
      setup(fx.root);
      const m = extraModule(fx, A, 'drv.ko', basic('drv'));
      const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
      expect(r.status, r.err).toBe(0);
      expect(readFileSync(join(fx.root, 'lib/modules', B, 'modules.dep'), 'utf8')).toContain('weak-updates/drv.ko');
      expect(existsSync(join(fx.root, 'depmod'))).toBe(false);
      expect((await wm(['--basedir', fx.root, '--remove-kernel', B])).status).toBe(0);
    });
  }
});

describe('weak-modules initramfs handling and the command line', () => {
  it('calls --check-initramfs-prog once per changed kernel', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    const prog = recorder(fx.root + '/..', `check-${Date.now()}`);
    await wm(['--basedir', fx.root, '--add-modules', '--check-initramfs-prog', prog.path], m);
    expect(prog.calls()).toEqual([A, B]);
  });

  it('rebuilds an existing image with dracut, and does not create a missing one', async () => {
    const fx = threeKernels({ B: { initramfs: 'dracut' } });
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    const dracut = recorder(fx.root + '/..', `dracut-${Date.now()}`);
    const r = await wm(['--basedir', fx.root, '--add-modules', '--dracut', dracut.path], m);
    expect(r.status).toBe(0);
    expect(dracut.calls()).toEqual([`-f ${join(fx.root, 'boot', `initramfs-${B}.img`)} ${B}`]);
  });

  it('a looping link among the kernels is skipped, never the end of the run', async () => {
    const fx = threeKernels();
    symlinkSync('/lib/modules/zz', join(fx.root, 'lib/modules/zz'));
    symlinkSync('zz2', join(fx.root, 'lib/modules/zz2'));
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    expect(r.status, r.err).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({ 'drv.ko': sys(fx, m) });
    expect((await wm(['--basedir', fx.root, '--remove-kernel', B])).status).toBe(0);
  });

  it('--dry-run says which image it would rebuild and why, and runs nothing', async () => {
    const fx = threeKernels({ B: { initramfs: 'dracut' } });
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    const dracut = recorder(fx.root + '/..', `dracut-dry-${Date.now()}`);
    const before = snapshot(fx.root);
    const r = await wm(['--basedir', fx.root, '--add-modules', '--dry-run', '--verbose', '--dracut', dracut.path], m);
    expect(r.status).toBe(0);
    // The reason: the generator's rule, or (this fixture's image is not a real archive) that it cannot be read.
    const image = `initramfs-${B}.img`;
    expect([`${image}: would rebuild it`, `${image} (`].some((t) => (r.out + r.err).includes(t)) && (r.out + r.err).includes('rebuil')).toBe(true);
    expect(r.out).toContain(`${dracut.path} -f ${join(fx.root, 'boot', `initramfs-${B}.img`)} ${B}`);
    expect(dracut.calls()).toEqual([]);
    expect(snapshot(fx.root)).toEqual(before);
  });

  it('needs dracut only to rebuild an image: with el9\'s line and status 1 then, links made all the same', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    expect((await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs', '--dracut', '/nonexistent/dracut'], m)).status).toBe(0);
    // No image anywhere (a kernel's %posttrans runs before its first image exists): no dracut needed.
    const none = await wm(['--basedir', fx.root, '--add-modules', '--dracut', '/nonexistent/dracut'], m);
    expect(none).toMatchObject({ status: 0, out: '' });
    const withImage = threeKernels({ B: { initramfs: 'dracut' } });
    const m2 = extraModule(withImage, A, 'drv.ko', basic('drv'));
    const r = await wm(['--basedir', withImage.root, '--add-modules', '--dracut', '/nonexistent/dracut'], m2);
    expect(r.status).toBe(1);
    expect(r.out).toBe('weak-modules: could not find dracut at /nonexistent/dracut\n');
    expect(weakLinks(withImage.root, B)).toEqual({ 'drv.ko': sys(withImage, m2) });
  });

  it('a dracut that cannot be started is tried once: one warning, then a line per image not rebuilt (an empty --dracut too)', async () => {
    for (const dracut of ['/nonexistent/dracut', '']) {
      const fx = threeKernels({ A: { initramfs: 'dracut' }, B: { initramfs: 'dracut' } });
      const m = extraModule(fx, A, 'drv.ko', basic('drv'));
      const r = await wm(['--basedir', fx.root, '--add-modules', '--dracut', dracut], m);
      expect(r.status, r.err).toBe(1);
      expect(r.out).toBe(`weak-modules: could not find dracut at ${dracut}\n`);
      const lines = r.err.split('\n').filter((l) => l.includes('not rebuilt'));
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(new RegExp(`^weak-modules: cannot run ${dracut}: \\w+; /boot/initramfs-.* not rebuilt$`));
      expect(lines[1]).toMatch(new RegExp(`^weak-modules: /boot/initramfs-.* not rebuilt \\(cannot run ${dracut}\\)$`));
      expect(lines[0]).not.toContain(lines[1]!.split(' ')[1]!);
      expect(weakLinks(fx.root, B)).toEqual({ 'drv.ko': sys(fx, m) });
    }
  });

  it('speaks getopt: abbreviations, --opt=value, permutation, -h, unknown options, no mode', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    const r = await wm([`--basedir=${fx.root}`, '--no-initr', '--add-mod'], m);
    expect(r.status).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({ 'drv.ko': sys(fx, m) });
    expect((await wm(['-h'])).status).toBe(0);
    expect((await wm(['-h'])).out).toMatch(/^Usage: weak-modules/);
    expect((await wm(['--bogus'])).status).toBe(1);
    expect((await wm(['--verbose'])).status).toBe(1);
    const del = await wm([`--basedir=${fx.root}`, '--no-initramfs', '--delete-modules', '--add-modules'], '');
    expect(del.out).toBe('WARNING: --delete-modules is deprecated, no effect\n');
    expect(del.status).toBe(0);
  });

  it('makes relative stdin paths absolute against the working directory, never canonicalised', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], 'drv.ko\n\n', undefined, join(fx.root, 'lib/modules', A, 'extra'));
    expect(r.status).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({ 'drv.ko': sys(fx, m) });
  });
});

describe('kernel trees that vary', () => {
  it('skips a kernel whose weak-updates is a symlink instead of following it', async () => {
    const fx = threeKernels();
    const m = extraModule(fx, A, 'drv.ko', basic('drv'));
    mkdirSync(join(fx.root, 'elsewhere'));
    execFileSync('ln', ['-s', join(fx.root, 'elsewhere'), join(fx.root, 'lib/modules', B, 'weak-updates')]);
    const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], m);
    // As a drop-in: that kernel is skipped with a warning, the run does the rest and exits 0.
    expect(r.status).toBe(0);
    expect(r.err).toMatch(new RegExp(`weak-modules: kernel ${B} left as it is: .*not a directory \\(refusing to follow`));
    expect(existsSync(join(fx.root, 'elsewhere', 'drv.ko'))).toBe(false);
  });
});
