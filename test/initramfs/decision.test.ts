// The decision and the native rewrite around it: what a module brings along (soft
// dependencies, firmware), what goes when only a removed module needed it, an image that does
// not exist, a kernel-install entry's initrd, and the dry runs and deferred records of the
// paths that ask.

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot } from '../../corpus/fixtures/system-root.js';
import { analyseImage, imageNeedsUpdate } from '../../src/initramfs/check.js';
import { listDeferred } from '../../src/initramfs/deferred.js';
import { parseImage } from '../../src/initramfs/image.js';
import { ImageTree } from '../../src/initramfs/image-tree.js';
import { refreshInitramfs } from '../../src/initramfs/refresh.js';
import { updateImage } from '../../src/initramfs/update.js';
import { refreshStep } from '../../src/linker/initramfs-step.js';
import type { Plan } from '../../src/linker/types.js';
import type { Runner } from '../../src/util/run.js';
import { cleanupTemps, readBytes, tempDir } from './helpers.js';
import { beta, K, K2, makeImageSystem } from './image-system.js';

afterAll(cleanupTemps);

const MD = `usr/lib/modules/${K}`;
const opts = (root: string) => ({ root, release: K, level: 1 });
const tree = async (file: string) => new ImageTree(await parseImage(readBytes(file)));
const moduleNames = (t: ImageTree) => [...t.all()].filter((n) => /\.ko(\.xz)?$/.test(n.path)).map((n) => n.path).sort();

function recorder(): { runner: Runner; calls: string[][] } {
  const calls: string[][] = [];
  return { calls, runner: async (cmd, args) => (calls.push([cmd, ...args]), { status: 0, signal: null, stdout: '', stderr: '', spawnError: undefined }) };
}

describe('what a module brings along, and what goes with it', () => {
  it('a dependency only a removed module needed leaves the image, as the generator would leave it out', async () => {
    const s = makeImageSystem({ compression: 'zstd' });
    // alpha is in the image only because beta needs it.
    s.fx.write('/etc/dracut.conf.d/10-test.conf', 'add_drivers+=" beta delta "\n');
    rmSync(s.mod('kernel/drivers/beta.ko'));
    execFileSync('depmod', ['-a', '-b', s.root, K]);
    const c = await imageNeedsUpdate({ root: s.root, release: K, changedModules: [`/lib/modules/${K}/kernel/drivers/beta.ko`] });
    expect(c.changes.map((x) => [x.kind, x.name])).toEqual([['removed', 'beta']]);
    const r = await updateImage({ ...opts(s.root), changedModules: [`/lib/modules/${K}/kernel/drivers/beta.ko`] });
    expect(r.operations.map((o) => [o.op, o.path.replace(`${MD}/`, '')]).filter(([op]) => op === 'remove')).toEqual([
      ['remove', 'kernel/drivers/beta.ko'],
      ['remove', 'kernel/drivers/alpha.ko'],
    ]);
    const out = join(tempDir(), 'generated.img');
    s.generate({ names: ['delta'], out });
    expect(moduleNames(await tree(s.imageHost))).toEqual(moduleNames(await tree(out)));
  });

  it('soft dependencies (modprobe.d) and the firmware a module names come along, as dracut installs them', async () => {
    const s = makeImageSystem({ compression: 'zstd' });
    s.fx.write('/etc/modprobe.d/kabi-test.conf', 'softdep beta pre: gamma\n');
    s.fx.write('/lib/firmware/kabi/beta.fw', 'firmware blob');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '7', false, [['firmware', 'kabi/beta.fw']]));
    execFileSync('depmod', ['-a', '-b', s.root, K]);
    await updateImage(opts(s.root));
    const t = await tree(s.imageHost);
    expect(t.get(`${MD}/kernel/fs/gamma.ko`)?.kind).toBe('file');
    expect(new TextDecoder().decode(t.readFile('usr/lib/firmware/kabi/beta.fw'))).toBe('firmware blob');
    expect((await imageNeedsUpdate({ root: s.root, release: K })).needsUpdate).toBe(false);
  });

  it('firmware only an old copy named leaves the image with it; the new build names none', async () => {
    const s = makeImageSystem({ compression: 'zstd' });
    s.fx.write('/lib/firmware/kabi/beta.fw', 'firmware blob');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '7', false, [['firmware', 'kabi/beta.fw']]));
    execFileSync('depmod', ['-a', '-b', s.root, K]);
    await updateImage(opts(s.root));
    expect((await tree(s.imageHost)).get('usr/lib/firmware/kabi/beta.fw')?.kind).toBe('file');

    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '8'));
    execFileSync('depmod', ['-a', '-b', s.root, K]);
    const r = await updateImage(opts(s.root));
    expect(r.operations.filter((o) => o.path.includes('firmware'))).toEqual([{ op: 'remove', path: 'usr/lib/firmware/kabi/beta.fw', detail: 'firmware no module in the image names any more' }]);
    expect((await tree(s.imageHost)).get('usr/lib/firmware/kabi/beta.fw')).toBeUndefined();
    const out = join(tempDir(), 'generated.img');
    s.generate({ out });
    expect((await tree(out)).get('usr/lib/firmware/kabi/beta.fw')).toBeUndefined();
  });

  it("a module the image lacks that a module it holds now needs (its softdep) is added: that module's generator run would install it", async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.fx.write('/etc/modprobe.d/kabi-test.conf', 'softdep alpha post: gamma\n');
    const c = await imageNeedsUpdate({ root: s.root, release: K, changedModules: [`/lib/modules/${K}/kernel/fs/gamma.ko`] });
    expect(c.changes.map((x) => [x.kind, x.name])).toEqual([['added', 'gamma']]);
    expect(c.changes[0]!.detail).toMatch(/alpha, which the image holds, needs it/);
  });
});

describe('a rule that no longer selects a module', () => {
  it('a new build of a module the image holds that nothing selects any more leaves it, as the generator would leave it out', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.fx.write('/etc/dracut.conf.d/10-test.conf', 'add_drivers+=" alpha beta "\n');
    s.install(`/lib/modules/${K2}/extra/delta.ko`, externalModule(K2, { name: 'delta', modinfo: [['version', '2']] }));
    const r = await updateImage(opts(s.root));
    expect(r.operations.filter((o) => o.op === 'remove').map((o) => o.path)).toEqual([`${MD}/weak-updates/delta.ko`, `usr/lib/modules/${K2}/extra/delta.ko`]);
    const out = join(tempDir(), 'generated.img');
    s.generate({ names: ['alpha', 'beta'], out });
    expect(moduleNames(await tree(s.imageHost))).toEqual(moduleNames(await tree(out)));
  });

  it("the image's dracut build parameters count as they did (the rebuild keeps them with --rebuild)", async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.fx.write('/etc/dracut.conf.d/10-test.conf', 'add_drivers+=" alpha beta delta "\n');
    // Built with --add-drivers gamma on the command line (and gamma was not installed then).
    s.generate({ buildParameters: " --add-drivers 'gamma' -f" });
    const changed = [`/lib/modules/${K}/kernel/fs/gamma.ko`];
    const c = await imageNeedsUpdate({ root: s.root, release: K, changedModules: changed });
    expect(c.changes.map((x) => [x.kind, x.name])).toEqual([['added', 'gamma']]);
    // RHEL's weak-modules rebuilds with a plain dracut -f: the configuration alone does not name gamma.
    expect((await imageNeedsUpdate({ root: s.root, release: K, changedModules: changed, rebuildWithParameters: false })).needsUpdate).toBe(false);
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '12'));
    s.fx.write('/usr/bin/dracut', '#!/bin/sh\n');
    chmodSync(s.fx.path('/usr/bin/dracut'), 0o755);
    const { runner, calls } = recorder();
    await refreshInitramfs({ root: s.root, release: K, strategy: 'generator', runner });
    expect(calls).toEqual([['chroot', s.root, 'dracut', '--rebuild', s.imageSys, '-f', s.imageSys, K]]);
    // Natively: beta still selected (by the parameters' add_drivers), replaced in place.
    await updateImage(opts(s.root));
    expect((await imageNeedsUpdate({ root: s.root, release: K })).needsUpdate).toBe(false);
  });
});

describe('where the image is, and whether to make one', () => {
  it("SUSE's weak-modules2 makes a missing image; RHEL's and kabi link do not", async () => {
    const fx = makeRoot('kabi-suse-');
    addKernel(fx, { release: K, initramfs: false });
    fx.write('/etc/SUSE-brand', 'openSUSE\n');
    fx.write('/usr/bin/dracut', '#!/bin/sh\n');
    chmodSync(fx.path('/usr/bin/dracut'), 0o755);
    const c = await imageNeedsUpdate({ root: fx.root, release: K });
    expect(c).toMatchObject({ exists: false, needsUpdate: true, style: 'suse' });
    expect(c.changes.map((x) => x.kind)).toEqual(['create']);
    const { runner, calls } = recorder();
    const r = await refreshInitramfs({ root: fx.root, release: K, runner });
    expect(r.action).toBe('generator');
    expect(calls).toEqual([['chroot', fx.root, 'dracut', '-f', `/boot/initrd-${K}`, K]]);
    expect((await imageNeedsUpdate({ root: fx.root, release: K, createMissing: false })).needsUpdate).toBe(false);
  });

  it("a kernel-install (Boot Loader Specification) entry's initrd is found by the machine's entry token", async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.fx.write('/etc/machine-id', '0123456789abcdef0123456789abcdef\n');
    const bls = `/boot/0123456789abcdef0123456789abcdef/${K}/initrd`;
    mkdirSync(s.fx.path(bls.replace(/\/initrd$/, '')), { recursive: true });
    writeFileSync(s.fx.path(bls), readBytes(s.imageHost));
    rmSync(s.imageHost);
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '3'));
    const c = await imageNeedsUpdate({ root: s.root, release: K });
    expect(c).toMatchObject({ image: bls, style: 'kernel-install', needsUpdate: true });
    await updateImage(opts(s.root));
    expect((await imageNeedsUpdate({ root: s.root, release: K })).needsUpdate).toBe(false);
  });
});

describe('dry runs and deferred records', () => {
  it("kabi link's dry run decides for the tree the plan will leave and prints the image and why; nothing is written", async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.fx.write('/etc/dracut.conf.d/20-epsilon.conf', 'add_drivers+=" epsilon "\n');
    s.fx.write(`/lib/modules/${K2}/extra/epsilon.ko`, externalModule(K2, { name: 'epsilon' }));
    const link = `/lib/modules/${K}/weak-updates/epsilon.ko`;
    const plan = {
      mode: 'add-modules',
      root: s.root,
      messages: [],
      warnings: [],
      kernels: [{ release: K, installed: true, ops: [{ kind: 'add', link, target: `/lib/modules/${K2}/extra/epsilon.ko`, why: 'compatible' }], depmod: true, initramfs: true, fellBack: false, changedModules: [link] }],
    } as unknown as Plan;
    const before = readBytes(s.imageHost);
    const lines: string[] = [];
    await refreshStep({ root: s.root, plan, strategy: 'auto', dryRun: true, log: (l) => lines.push(l), warn: (l) => lines.push(`warn ${l}`) })(K);
    expect(lines[0]).toMatch(new RegExp(`^initramfs /boot/initramfs-${K.replace(/\./g, '\\.')}\\.img: would be rewritten by kabi \\(dracut 059`));
    expect(lines.join('\n')).toMatch(/added would include epsilon \(weak-updates\/epsilon\.ko\) but the image lacks it: dracut configuration \(add_drivers\)/);
    expect(Buffer.from(readBytes(s.imageHost)).equals(Buffer.from(before))).toBe(true);
    expect(existsSync(s.fx.path(link))).toBe(false);
  });

  it('kabi-defer-initramfs records the changed modules weak-modules passes it, and flush takes the same decision', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    const bin = tempDir('kabi-bin-');
    const kabi = join(import.meta.dirname, '../../dist/bin/kabi.js');
    if (!existsSync(kabi)) throw new Error('dist/ is missing: run `npm run build` first');
    symlinkSync(kabi, join(bin, 'kabi'));
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '9'));
    const changed = `/lib/modules/${K}/kernel/drivers/beta.ko`;
    const r = spawnSync(join(import.meta.dirname, '../../integrations/rpm/kabi-defer-initramfs'), [K], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, KABI_ROOT: s.root, KABI_INITRAMFS_MODULES: `${changed}\n/lib/modules/${K}/kernel/fs/gamma.ko` },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(await listDeferred({ root: s.root })).toMatchObject([{ release: K, changedModules: [changed, `/lib/modules/${K}/kernel/fs/gamma.ko`] }]);
    // Nothing in gamma's name would change the image: only beta's record matters, and flush rewrites it.
    const { flushDeferred } = await import('../../src/initramfs/deferred.js');
    const out = await flushDeferred({ root: s.root, level: 1 });
    expect(out.map((o) => [o.release, o.result?.action, o.result?.reasons])).toEqual([[K, 'native', [`changed kernel/drivers/beta.ko: contents differ`]]]);
    expect(readdirSync(s.fx.path('/run/kabi/initramfs'))).toEqual([]);
  });

  it('a flush killed after claiming a record leaves it for the next flush', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    const dir = s.fx.path('/run/kabi/initramfs');
    mkdirSync(dir, { recursive: true });
    // What a flush with pid 4194301 (not running) left: a claimed record.
    writeFileSync(join(dir, `${K}@1-abc.json.flushing-4194301-deadbeef`), JSON.stringify({ release: K, changedModules: [`/lib/modules/${K}/kernel/drivers/beta.ko`], since: '' }) + '\n');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '11'));
    const { flushDeferred } = await import('../../src/initramfs/deferred.js');
    const out = await flushDeferred({ root: s.root, level: 1 });
    expect(out.map((o) => o.result?.action)).toEqual(['native']);
    expect(readdirSync(dir)).toEqual([]);
    expect((await analyseImage({ root: s.root, release: K })).check.needsUpdate).toBe(false);
  });
});

describe('the decision reads only what it needs', () => {
  it('listing the image (bodies of the changed modules only) decides as reading it whole does', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.fx.write('/etc/dracut.conf.d/10-test.conf', 'add_drivers+=" beta delta "\n');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '7', false));
    execFileSync('depmod', ['-a', '-b', s.root, K]);
    for (const names of [['beta'], ['gamma'], ['alpha', 'beta', 'delta'], ['nosuch']]) {
      const changedModules = names.map((n) => `/lib/modules/${K}/kernel/drivers/${n}.ko`);
      const listed = await analyseImage({ root: s.root, release: K, changedModules });
      const whole = await analyseImage({ root: s.root, release: K, changedModules, wholeImage: true });
      // With every module of the image named, nothing is skipped.
      expect(listed.image?.partial).toBe(names.length < 3 ? true : undefined);
      expect(whole.image?.partial).toBeUndefined();
      expect(listed.check).toEqual(whole.check);
    }
    expect((await analyseImage({ root: s.root, release: K, changedModules: [`/lib/modules/${K}/kernel/drivers/beta.ko`] })).check.changes.map((c) => [c.kind, c.name])).toEqual([['changed', 'beta']]);
  });
});
