// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi as SUSE's weak-modules2 under real rpm: kabi's SUSE package (integrations/suse/kabi.spec)
// takes /usr/lib/module-init-tools/weak-modules2 over from suse-module-tools; kernel-default and
// kernel-rt packages and KMPs, built here with rpmbuild from corpus kernels and modules, with
// scriptlets that behave as SUSE's rpm-script and kmp-script, are installed, upgraded and erased
// with `rpm --root` in a bookworm root with real dracut (rpm chroots into it for every scriptlet).
//
// Kernels: three Debian 6.1 ABIs of the corpus, installed as SUSE releases 6.1.0-<abi>-<flavor>.
// 56 and 57 share their kABI; 47 does not (a kABI break): modules built for 57 load on 56 (and
// weak-modules2 links them there, though 56 is older), modules built for 47 load nowhere else.

import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCorpus, type CorpusKernel } from '../../real/corpus.js';
import { makeHostRoot, type HostRoot } from '../host-root.js';
import { installedKernels } from '../oracle.js';
import { buildRpm, payloadDir, rpmRoot } from '../rpm.js';
import { initrdModules, links, rpmStep } from './steps.js';
import { kabiSuseRpm, kmpDir, kmpNvr, kmpRpm, suseBaseRpm, suseKernelExtraRpm, suseKernelRpm, suseModuleToolsRpm, suseRelease, WM2, type KmpPackage } from './suse-packages.js';

function vendorPayload(release: string, built: CorpusKernel): string {
  const dir = payloadDir();
  mkdirSync(`${dir}/usr/lib/modules/${release}/extra/vendor`, { recursive: true });
  writeFileSync(`${dir}/usr/lib/modules/${release}/extra/vendor/kabi_nongpl.ko`, readFileSync(built.builtModules!.kabi_nongpl));
  return dir;
}

describe('rpm --root on a SUSE-like system: kabi as weak-modules2', () => {
  let root: HostRoot;
  let K47: CorpusKernel, K56: CorpusKernel, K57: CorpusKernel;
  let D47: string, D56: string, D57: string, R57: string;
  const pkg: Record<string, string> = {};
  const kmps: Record<string, KmpPackage> = {};

  beforeAll(async () => {
    const corpus = loadCorpus();
    const byAbi = (abi: string) => corpus.kernels({ arch: 'amd64', series: '6.1' }).find((k) => k.krel === `6.1.0-${abi}-amd64`)!;
    [K47, K56, K57] = [byAbi('47'), byAbi('56'), byAbi('57')];
    [D47, D56, D57, R57] = [suseRelease(K47, 'default'), suseRelease(K56, 'default'), suseRelease(K57, 'default'), suseRelease(K57, 'rt')];
    root = await makeHostRoot({ chroot: 'hostDracut', prefix: 'kabi-suse-' });
    // A small, quick initrd: dracut's base module and the drivers named here.
    mkdirSync(root.path('etc/dracut.conf.d'), { recursive: true });
    writeFileSync(root.path('etc/dracut.conf.d/50-kabi-test.conf'), 'hostonly="no"\ndracutmodules="base"\ncompress="gzip"\n');
    writeFileSync(root.path('etc/fstab'), '/dev/vda / ext4 defaults 0 1\n');
    pkg.base = suseBaseRpm();
    pkg.tools = suseModuleToolsRpm();
    pkg.kabi = kabiSuseRpm();
    pkg.d47 = suseKernelRpm(K47, 'default');
    pkg.d56 = suseKernelRpm(K56, 'default');
    pkg.d57 = suseKernelRpm(K57, 'default');
    pkg.r57 = suseKernelRpm(K57, 'rt');
    pkg.k57 = suseKernelRpm(K57, 'kdump');
    kmps.bar = { base: 'bar', flavor: 'default', version: '1.0', kernel: K57, modules: ['kabi_minimal'] };
    kmps.barRt = { base: 'bar', flavor: 'rt', version: '1.0', kernel: K57, modules: ['kabi_minimal'] };
    kmps.foo1 = { base: 'foo', flavor: 'default', version: '1.0', kernel: K47, modules: ['kabi_provider', 'kabi_consumer'], needsInitrd: true };
    kmps.foo2 = { base: 'foo', flavor: 'default', version: '2.0', kernel: K57, modules: ['kabi_provider', 'kabi_consumer'] };
    kmps.baz = { base: 'baz', flavor: 'default', version: '1.0', kernel: K57, modules: ['kabi_ns_ok'] };
    // Modules for two kernels in one package: weak-modules2 refuses it.
    kmps.bad = { base: 'bad', flavor: 'default', version: '1.0', kernel: K47, modules: ['kabi_minimal'], extra: { [`/usr/lib/modules/${D57}/updates/bad/other.ko`]: readFileSync(K57.builtModules!.kabi_minimal) } };
    // Problem 2: two builds of one driver for the same kernel, in SUSE's layout and as store KMPs.
    kmps.two30 = { base: 'two', flavor: 'default', version: '3.0', kernel: K57, modules: ['kabi_provider', 'kabi_consumer'] };
    kmps.two31 = { ...kmps.two30, version: '3.1', rebuilt: true };
    kmps.two30s = { ...kmps.two30, layout: 'store' };
    kmps.two31s = { ...kmps.two31, layout: 'store' };
    // Problem 3: an older build for 56 (in 56's tree), a newer one for 57; as store KMPs, with one for 47.
    kmps.new10 = { base: 'new', flavor: 'default', version: '1.0', kernel: K57, tree: K56, modules: ['kabi_minimal'] };
    kmps.new20 = { base: 'new', flavor: 'default', version: '2.0', kernel: K57, modules: ['kabi_minimal'] };
    kmps.new09s = { base: 'new', flavor: 'default', version: '0.9', kernel: K47, modules: ['kabi_minimal'], layout: 'store' };
    kmps.new10s = { ...kmps.new10, layout: 'store' };
    kmps.new20s = { ...kmps.new20, layout: 'store' };
    // Problem 4: the driver 47 needs to boot, and its update built for 57 after the kABI break.
    kmps.boot1 = { base: 'boot', flavor: 'default', version: '1.0', kernel: K47, modules: ['kabi_minimal'] };
    kmps.boot2 = { base: 'boot', flavor: 'default', version: '2.0', kernel: K57, modules: ['kabi_minimal'] };
    for (const [k, p] of Object.entries(kmps)) pkg[k] = kmpRpm(p);
    // Modules built with the kernel, in a sub-package (56 and 57 share their kABI: 57's build stands in).
    pkg.x56 = suseKernelExtraRpm(K56, 'default', { kabi_ns_ok: K57 });
    // Not a KMP: someone's module for 47 dropped into 56's extra/, where it cannot load.
    pkg.vendor = buildRpm({
      name: 'vendor-blob',
      version: '1',
      release: '1',
      payload: vendorPayload(D56, K47),
      files: [`%dir /usr/lib/modules/${D56}/extra`, `/usr/lib/modules/${D56}/extra/vendor`],
      scripts: `%post\n/usr/sbin/depmod -a ${D56}\n%postun\n/usr/sbin/depmod -a ${D56}\n`,
    });
    expect(root.chroot(['rpm', '--initdb']).status).toBe(0);
  });
  afterAll(() => root?.remove());

  it('installs kabi: weak-modules2 is kabi’s, through alternatives, suse-module-tools’ moved aside', () => {
    const s = rpmStep(root, 'rpm -i base suse-module-tools', ['-i', pkg.base!, pkg.tools!], { kabiRuns: false });
    expect(s.problems).toEqual([]);
    const k = rpmStep(root, 'rpm -i kabi', ['-i', pkg.kabi!], { kabiRuns: false });
    expect(k.problems).toEqual([]);
    expect(readlinkSync(root.path(WM2))).toBe('/etc/alternatives/weak-modules2');
    expect(readlinkSync(root.path('etc/alternatives/weak-modules2'))).toBe('/usr/libexec/kabi/weak-modules2');
    expect(existsSync(root.path(`${WM2}.suse`))).toBe(true);
  });

  it('installs kernel-default 47 and 56 and kernel-rt 57: depmod and an initrd for each', () => {
    const s = rpmStep(root, 'rpm -i kernels', ['-i', pkg.d47!, pkg.d56!, pkg.r57!]);
    expect(s.problems).toEqual([]);
    expect(installedKernels(root)).toEqual([D47, D56, R57]);
    for (const k of [D47, D56, R57]) expect(statSync(root.path(`boot/initrd-${k}`)).size).toBeGreaterThan(0);
  });

  it('installs and erases kernel-kdump 57: depmod runs, no initrd is built for a kdump kernel; nothing is left', () => {
    const K = suseRelease(K57, 'kdump');
    const s = rpmStep(root, 'rpm -i kernel-kdump', ['-i', pkg.k57!]);
    expect(s.problems).toEqual([]);
    expect(installedKernels(root)).toContain(K);
    expect(existsSync(root.path(`boot/initrd-${K}`))).toBe(false);
    expect(readdirIfAny(root.path('run/regenerate-initrd'))).toEqual([]);
    expect(rpmStep(root, 'rpm -e kernel-kdump', ['-e', 'kernel-kdump']).problems).toEqual([]);
    expect(root.listing([`usr/lib/modules/${K}`])).toEqual([]);
    expect(installedKernels(root)).toEqual([D47, D56, R57]);
  });

  it('installs a KMP built for the update kernel 57 before that kernel: linked into 56 (older, same kABI), not 47; the rt one stays rt', () => {
    const s = rpmStep(root, 'rpm -i bar-kmp-default bar-kmp-rt', ['-i', pkg.bar!, pkg.barRt!]);
    expect(s.problems).toEqual([]);
    expect(links(root, D56)).toEqual({ 'updates/bar/kabi_minimal.ko': `${kmpDir(kmps.bar!)}/kabi_minimal.ko` });
    expect(links(root, D47)).toEqual({});
    expect(links(root, R57)).toEqual({});
    // No initrd holds kabi_minimal: none was rebuilt, nothing was left for %posttrans.
    expect(readdirIfAny(root.path('run/regenerate-initrd'))).toEqual([]);
  });

  it('installs kernel-default 57: its own bar is in updates/, the others keep theirs', () => {
    const s = rpmStep(root, 'rpm -i kernel-default 57', ['-i', pkg.d57!]);
    expect(s.problems).toEqual([]);
    expect(links(root, D57)).toEqual({});
    expect(readFileSync(root.path(`usr/lib/modules/${D57}/modules.dep`), 'utf8')).toMatch(/^updates\/bar\/kabi_minimal\.ko:/m);
    expect(Object.keys(links(root, D56))).toEqual(['updates/bar/kabi_minimal.ko']);
  });

  it('installs a KMP for 47 built with -b (KMP_NEEDS_MKINITRD): 47’s initrd is rebuilt in %posttrans', () => {
    const before = statSync(root.path(`boot/initrd-${D47}`)).mtimeMs;
    const s = rpmStep(root, 'rpm -i foo-kmp-default 1.0', ['-i', pkg.foo1!]);
    expect(s.problems).toEqual([]);
    expect(links(root, D56)).not.toHaveProperty('updates/foo/kabi_provider.ko');
    expect(statSync(root.path(`boot/initrd-${D47}`)).mtimeMs).toBeGreaterThan(before);
    expect(readdirIfAny(root.path('run/regenerate-initrd'))).toEqual([]);
  });

  it('upgrades the KMP to a build for 57 (rpm -U): 56 gets 2.0; 47, which 2.0 does not fit, loses foo (weak-modules2’s rule)', () => {
    const s = rpmStep(root, 'rpm -U foo-kmp-default 2.0', ['-U', pkg.foo2!]);
    expect(s.problems).toEqual([]);
    const want = { 'updates/foo/kabi_consumer.ko': `${kmpDir(kmps.foo2!)}/kabi_consumer.ko`, 'updates/foo/kabi_provider.ko': `${kmpDir(kmps.foo2!)}/kabi_provider.ko` };
    expect(links(root, D56)).toMatchObject(want);
    expect(links(root, D47)).toEqual({});
    expect(readFileSync(root.path(`usr/lib/modules/${D47}/modules.dep`), 'utf8')).not.toContain('foo/');
  });

  it('refuses a KMP whose modules are for two kernels: its %post fails, nothing is linked', () => {
    const s = rpmStep(root, 'rpm -i bad-kmp-default', ['-i', pkg.bad!], { expectFailure: /%post\(bad-kmp-default-\S+\) scriptlet failed, exit status 1/, depmodLeftStale: [D47, D57] });
    expect(s.problems).toEqual([]);
    expect(s.out).toContain('seems to contain modules for multiple kernel versions');
    expect(Object.keys(links(root, D56)).filter((l) => l.includes('bad'))).toEqual([]);
    const e = rpmStep(root, 'rpm -e bad-kmp-default', ['-e', 'bad-kmp-default'], { expectFailure: /%postun\(bad-kmp-default-\S+\) scriptlet failed, exit status 1/ });
    expect(e.problems).toEqual([]);
  });

  it('refuses to link into a kernel whose out-of-tree modules are inconsistent; the loader verdict (kmp.conf) links anyway', () => {
    const v = rpmStep(root, 'rpm -i vendor-blob', ['-i', pkg.vendor!], { kabiRuns: false });
    expect(v.problems).toEqual([]);
    const s = rpmStep(root, 'rpm -i baz-kmp-default', ['-i', pkg.baz!]);
    expect(s.problems).toEqual([]);
    expect(s.out).toContain(`Warning: /usr/lib/modules/${D56} is inconsistent`);
    expect(links(root, D56)).not.toHaveProperty('updates/baz/kabi_ns_ok.ko');
    writeFileSync(root.path('etc/kabi/kmp.conf'), 'KABI_KMP_VERDICT=loader\n');
    const r = rpmStep(root, 'rpm --reinstall baz-kmp-default', ['--reinstall', pkg.baz!], { semantics: 'loader' });
    expect(r.problems).toEqual([]);
    expect(links(root, D56)).toHaveProperty('updates/baz/kabi_ns_ok.ko');
    writeFileSync(root.path('etc/kabi/kmp.conf'), '');
    expect(rpmStep(root, 'rpm -e vendor-blob baz-kmp-default', ['-e', 'vendor-blob', 'baz-kmp-default']).problems).toEqual([]);
    expect(links(root, D56)).not.toHaveProperty('updates/baz/kabi_ns_ok.ko');
  });

  it('in a build environment, asks for dracut to be run later instead of building', () => {
    writeFileSync(root.path('.buildenv'), '');
    const s = rpmStep(root, 'rpm -e bar-kmp-default', ['-e', 'bar-kmp-default']);
    rmSync(root.path('.buildenv'));
    expect(s.problems).toEqual([]);
    expect(s.out).toContain(`Please run "/usr/bin/dracut -f /boot/initrd-${D56} ${D56}" as soon as your system is complete.`);
    expect(links(root, D56)).not.toHaveProperty('updates/bar/kabi_minimal.ko');
  });

  it('takes over a link SUSE’s own weak-modules2 made (target spelled /lib/modules): erasing the KMP removes it', () => {
    // As before kabi: the KMP installed and linked by SUSE's script, depmod run by it.
    expect(rpmRoot(root, ['-i', '--noscripts', pkg.bar!]).status).toBe(0);
    mkdirSync(root.path(`usr/lib/modules/${D56}/weak-updates/updates/bar`), { recursive: true });
    symlinkSync(`/lib/modules/${D57}/updates/bar/kabi_minimal.ko`, root.path(`usr/lib/modules/${D56}/weak-updates/updates/bar/kabi_minimal.ko`));
    for (const k of [D56, D57]) expect(root.chroot(['depmod', '-a', k]).status).toBe(0);
    expect(links(root, D56)).toHaveProperty('updates/bar/kabi_minimal.ko', `/lib/modules/${D57}/updates/bar/kabi_minimal.ko`);
    const s = rpmStep(root, 'rpm -e bar-kmp-default (linked by SUSE’s script)', ['-e', 'bar-kmp-default']);
    expect(s.problems).toEqual([]);
    expect(links(root, D56)).not.toHaveProperty('updates/bar/kabi_minimal.ko');
    expect(readFileSync(root.path(`usr/lib/modules/${D56}/modules.dep`), 'utf8')).not.toContain('bar/');
  });

  it('erases kernel-default 56: its weak-updates and its directory go', () => {
    expect(Object.keys(links(root, D56)).length).toBeGreaterThan(0);
    const s = rpmStep(root, 'rpm -e kernel-default 56', ['-e', 'kernel-default-6.1.0-56']);
    expect(s.problems).toEqual([]);
    expect(root.listing([`usr/lib/modules/${D56}`])).toEqual([]);
  });

  it('erases the KMPs: no link, no record, no copy left', () => {
    const s = rpmStep(root, 'rpm -e KMPs', ['-e', 'foo-kmp-default', 'bar-kmp-rt']);
    expect(s.problems).toEqual([]);
    for (const k of installedKernels(root)) expect(links(root, k)).toEqual({});
    expect(readdirIfAny(root.path('run/regenerate-initrd'))).toEqual([]);
    expect(readdirIfAny(root.path('run')).filter((f) => f.startsWith('rpm-'))).toEqual([]);
    expect(existsSync(root.path('usr/lib/kabi'))).toBe(false);
    expect(installedKernels(root)).toEqual([D47, D57, R57]);
  });

  const policy = (text: string) => writeFileSync(root.path('etc/kabi/kmp.conf'), text);

  describe('problem 1: compatibility is forward-only', () => {
    it('wm2 rules: the KMP built for 57 goes into the older 56', () => {
      expect(rpmStep(root, 'rpm -i kernel-default 56', ['-i', '--oldpackage', pkg.d56!]).problems).toEqual([]);
      expect(rpmStep(root, 'rpm -i bar-kmp-default', ['-i', pkg.bar!]).problems).toEqual([]);
      expect(links(root, D56)).toEqual({ 'updates/bar/kabi_minimal.ko': `${kmpDir(kmps.bar!)}/kabi_minimal.ko` });
      expect(rpmStep(root, 'rpm -e bar-kmp-default', ['-e', 'bar-kmp-default']).problems).toEqual([]);
    });

    it('KABI_KMP_FORWARD_ONLY: not into a kernel older than the one it was built for', () => {
      policy('KABI_KMP_FORWARD_ONLY=yes\n');
      expect(rpmStep(root, 'rpm -i bar-kmp-default', ['-i', pkg.bar!]).problems).toEqual([]);
      expect(links(root, D56)).toEqual({});
      expect(readFileSync(root.path(`usr/lib/modules/${D57}/modules.dep`), 'utf8')).toMatch(/^updates\/bar\/kabi_minimal\.ko:/m);
      expect(rpmStep(root, 'rpm -e bar-kmp-default', ['-e', 'bar-kmp-default']).problems).toEqual([]);
      policy('');
    });
  });

  describe('problem 2: two builds of a KMP for the same kernel cannot coexist', () => {
    it('SUSE’s layout: both install into 57’s updates/: rpm refuses the second', () => {
      expect(rpmStep(root, 'rpm -i two-kmp-default 3.0', ['-i', pkg.two30!]).problems).toEqual([]);
      const s = rpmStep(root, 'rpm -i two-kmp-default 3.1', ['-i', pkg.two31!], { rpmRefuses: /conflicts with file from package two-kmp-default-3\.0/, kabiRuns: false });
      expect(s.problems).toEqual([]);
      expect(rpmStep(root, 'rpm -e two-kmp-default', ['-e', '--allmatches', 'two-kmp-default']).problems).toEqual([]);
    });

    it('KABI_KMP_STORE: each build in a directory of its own version: both installed, the newer linked, the older back when it goes', () => {
      policy('KABI_KMP_STORE=yes\n');
      expect(rpmStep(root, 'rpm -i two 3.0 (store)', ['-i', pkg.two30s!]).problems).toEqual([]);
      expect(rpmStep(root, 'rpm -i two 3.1 (store)', ['-i', pkg.two31s!]).problems).toEqual([]);
      const at = (p: KmpPackage) => ({ 'updates/two/kabi_consumer.ko': `${kmpDir(p)}/kabi_consumer.ko`, 'updates/two/kabi_provider.ko': `${kmpDir(p)}/kabi_provider.ko` });
      for (const k of [D56, D57]) expect(links(root, k)).toEqual(at(kmps.two31s!));
      expect(root.chroot(['rpm', '-q', 'two-kmp-default']).stdout.trim().split('\n')).toHaveLength(2);
      expect(rpmStep(root, 'rpm -e two 3.1', ['-e', kmpNvr(kmps.two31s!)]).problems).toEqual([]);
      for (const k of [D56, D57]) expect(links(root, k)).toEqual(at(kmps.two30s!));
      expect(links(root, D47)).toEqual({});
      expect(rpmStep(root, 'rpm -e two', ['-e', '--allmatches', 'two-kmp-default']).problems).toEqual([]);
      policy('');
    });
  });

  describe('problem 3: a newer KMP built for 57 does not reach 56, where an older one is installed', () => {
    it('wm2 rules: 56 keeps its own older build though the newer one loads there', () => {
      expect(rpmStep(root, 'rpm -i new 1.0 (56)', ['-i', pkg.new10!]).problems).toEqual([]);
      expect(rpmStep(root, 'rpm -i new 2.0 (57)', ['-i', pkg.new20!]).problems).toEqual([]);
      expect(links(root, D56)).toEqual({});
      expect(links(root, D47)).toEqual({});
      expect(readFileSync(root.path(`usr/lib/modules/${D56}/modules.dep`), 'utf8')).toMatch(/^updates\/new\/kabi_minimal\.ko:/m);
      // 2.0 goes: 57 gets the newest other version that fits there, 1.0 (from 56's tree).
      expect(rpmStep(root, 'rpm -e new 2.0', ['-e', kmpNvr(kmps.new20!)]).problems).toEqual([]);
      expect(links(root, D57)).toEqual({ 'updates/new/kabi_minimal.ko': `${kmpDir(kmps.new10!)}/kabi_minimal.ko` });
      expect(links(root, D47)).toEqual({});
      expect(rpmStep(root, 'rpm -e new', ['-e', '--allmatches', 'new-kmp-default']).problems).toEqual([]);
      expect(links(root, D57)).toEqual({});
    });

    it('KABI_KMP_NEWEST (store KMPs): each kernel links the newest build that loads there, in any order', () => {
      policy('KABI_KMP_STORE=yes\nKABI_KMP_NEWEST=yes\n');
      for (const p of ['new20s', 'new09s', 'new10s']) expect(rpmStep(root, `rpm -i ${p}`, ['-i', '--oldpackage', pkg[p]!]).problems).toEqual([]);
      const at = (p: KmpPackage) => ({ 'updates/new/kabi_minimal.ko': `${kmpDir(p)}/kabi_minimal.ko` });
      expect(links(root, D56)).toEqual(at(kmps.new20s!));
      expect(links(root, D57)).toEqual(at(kmps.new20s!));
      expect(links(root, D47)).toEqual(at(kmps.new09s!));
      expect(rpmStep(root, 'rpm -e new 2.0', ['-e', kmpNvr(kmps.new20s!)]).problems).toEqual([]);
      expect(links(root, D56)).toEqual(at(kmps.new10s!));
      expect(links(root, D47)).toEqual(at(kmps.new09s!));
      expect(rpmStep(root, 'rpm -e new', ['-e', '--allmatches', 'new-kmp-default']).problems).toEqual([]);
      policy('');
    });
  });

  describe('kernel sub-packages (SUSE’s inkmp-script): --add-kernel-modules, --remove-kernel-modules', () => {
    const extra = (k: string) => `usr/lib/modules/${k}/kernel/drivers/kabi-extra/kabi_ns_ok.ko`;
    const inInitrd = (k: string) => initrdModules(root, k).filter((m) => m.endsWith('/kabi_ns_ok.ko'));
    const dep = (k: string) => readFileSync(root.path(`usr/lib/modules/${k}/modules.dep`), 'utf8');

    it('kernel-default-extra for 56: depmod and 56’s initrd take its module in, the KMP linked there stays; erased, neither keeps it', () => {
      writeFileSync(root.path('etc/dracut.conf.d/60-extra-driver.conf'), 'drivers+=" kabi_ns_ok "\n');
      expect(rpmStep(root, 'rpm -i bar-kmp-default', ['-i', pkg.bar!]).problems).toEqual([]);
      const bar = { 'updates/bar/kabi_minimal.ko': `${kmpDir(kmps.bar!)}/kabi_minimal.ko` };
      expect(links(root, D56)).toEqual(bar);
      expect(inInitrd(D56)).toEqual([]);
      const i = rpmStep(root, 'rpm -i kernel-default-extra 56', ['-i', pkg.x56!]);
      expect(i.problems).toEqual([]);
      expect(dep(D56)).toMatch(/^kernel\/drivers\/kabi-extra\/kabi_ns_ok\.ko:/m);
      expect(inInitrd(D56)).toEqual([extra(D56)]);
      expect(links(root, D56)).toEqual(bar);
      expect(readdirIfAny(root.path('run/regenerate-initrd'))).toEqual([]);
      const e = rpmStep(root, 'rpm -e kernel-default-extra', ['-e', 'kernel-default-extra']);
      expect(e.problems).toEqual([]);
      expect(dep(D56)).not.toContain('kabi_ns_ok');
      expect(inInitrd(D56)).toEqual([]);
      expect(links(root, D56)).toEqual(bar);
      expect(readdirIfAny(root.path('run')).filter((f) => f.startsWith('rpm-'))).toEqual([]);
      rmSync(root.path('etc/dracut.conf.d/60-extra-driver.conf'));
      expect(rpmStep(root, 'rpm -e bar-kmp-default', ['-e', 'bar-kmp-default']).problems).toEqual([]);
    });
  });

  describe('problem 4: kernel and KMP updated across a kABI break; the kernel to fall back to must still boot', () => {
    const driver = (k: string) => initrdModules(root, k).filter((m) => m.endsWith('/kabi_minimal.ko'));

    it('the driver is in 47’s initrd (dracut is told to include it)', () => {
      writeFileSync(root.path('etc/dracut.conf.d/60-boot-driver.conf'), 'drivers+=" kabi_minimal "\n');
      expect(rpmStep(root, 'rpm -e kernel-default 56', ['-e', 'kernel-default-6.1.0-56']).problems).toEqual([]);
      expect(rpmStep(root, 'rpm -i boot 1.0 (47)', ['-i', pkg.boot1!]).problems).toEqual([]);
      expect(driver(D47)).toEqual([`usr/lib/modules/${D47}/updates/boot/kabi_minimal.ko`]);
    });

    it('wm2 rules: rpm -U to the build for 57 leaves 47 without the driver, and its initrd without it', () => {
      expect(rpmStep(root, 'rpm -U boot 2.0 (57)', ['-U', pkg.boot2!]).problems).toEqual([]);
      expect(links(root, D47)).toEqual({});
      expect(driver(D47)).toEqual([]);
      expect(driver(D57)).toEqual([`usr/lib/modules/${D57}/updates/boot/kabi_minimal.ko`]);
      // Back to before the update.
      expect(rpmStep(root, 'rpm -e boot', ['-e', 'boot-kmp-default']).problems).toEqual([]);
      expect(rpmStep(root, 'rpm -i boot 1.0 (47)', ['-i', pkg.boot1!]).problems).toEqual([]);
      expect(driver(D47)).toEqual([`usr/lib/modules/${D47}/updates/boot/kabi_minimal.ko`]);
    });

    it('KABI_KMP_KEEP_FALLBACK: 47 keeps 1.0 (a copy kabi keeps), in its tree and in its initrd, until 47 is removed', () => {
      policy('KABI_KMP_KEEP_FALLBACK=yes\n');
      expect(rpmStep(root, 'rpm -U boot 2.0 (57)', ['-U', pkg.boot2!]).problems).toEqual([]);
      const copy = `/usr/lib/kabi/kmp/${kmpNvr(kmps.boot1!)}/updates/boot/kabi_minimal.ko`;
      expect(links(root, D47)).toEqual({ 'updates/boot/kabi_minimal.ko': copy });
      // dracut keeps the link and puts the copy it points to beside.
      expect(driver(D47)).toEqual([copy.slice(1), `usr/lib/modules/${D47}/weak-updates/updates/boot/kabi_minimal.ko`]);
      expect(driver(D57)).toEqual([`usr/lib/modules/${D57}/updates/boot/kabi_minimal.ko`]);
      expect(rpmStep(root, 'rpm -e kernel-default 47', ['-e', 'kernel-default-6.1.0-47']).problems).toEqual([]);
      expect(existsSync(root.path('usr/lib/kabi'))).toBe(false);
      expect(root.listing([`usr/lib/modules/${D47}`])).toEqual([]);
      policy('');
    });

    it('erases the rest: no kernel, KMP, link, copy or record is left', () => {
      const s = rpmStep(root, 'rpm -e everything', ['-e', '--allmatches', 'boot-kmp-default', 'kernel-default', 'kernel-rt']);
      expect(s.problems).toEqual([]);
      expect(root.listing(['usr/lib/modules', 'usr/lib/kabi', 'usr/lib/kmp'])).toEqual(['usr/lib/modules/']);
      // kabi's depmod cache went with each kernel.
      expect(root.listing(['var/cache/kabi']).filter((p) => !p.endsWith('/'))).toEqual([]);
      expect(readdirIfAny(root.path('run/regenerate-initrd'))).toEqual([]);
    });
  });

  it('erases kabi: SUSE’s weak-modules2 is back on its name, nothing of kabi’s is left', () => {
    const s = rpmStep(root, 'rpm -e kabi', ['-e', 'kabi'], { kabiRuns: false });
    expect(s.problems).toEqual([]);
    expect(readFileSync(root.path(WM2), 'utf8')).toContain('test stand-in');
    expect(existsSync(root.path(`${WM2}.suse`))).toBe(false);
    expect(existsSync(root.path('etc/alternatives/weak-modules2'))).toBe(false);
    expect(root.listing(['var/cache/kabi', 'usr/lib/kabi', 'usr/libexec/kabi', 'usr/lib/node_modules/kabi'])).toEqual([]);
  });
});

function readdirIfAny(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
