import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, makeRoot, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { memoryIo } from '../../src/cli/io.js';
import { makeInitramfsCommand } from '../../src/cli/commands/initramfs.js';
import { deferRefresh, flushDeferred, listDeferred, DEFAULT_STATE_DIR } from '../../src/initramfs/deferred.js';
import { detectGenerator, regenerateWithGenerator } from '../../src/initramfs/generators.js';
import { discoverKernels } from '../../src/kernel/discover.js';
import type { Runner } from '../../src/util/run.js';
import { beta, K, makeImageSystem } from './image-system.js';
import { cleanupTemps, lsinitramfs, readBytes } from './helpers.js';

afterAll(cleanupTemps);

/** A runner that records each command and answers with the given status. */
function recorder(status = 0): { runner: Runner; calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    runner: async (cmd, args) => {
      calls.push([cmd, ...args]);
      return { status, signal: null, stdout: '', stderr: status === 0 ? '' : 'generator exploded', spawnError: undefined };
    },
  };
}

function tool(fx: FixtureRoot, name: string): void {
  fx.write(`/usr/sbin/${name}`, '#!/bin/sh\nexit 0\n');
  chmodSync(fx.path(`/usr/sbin/${name}`), 0o755);
}

const R = '6.1.0-5-amd64';

async function kernelIn(fx: FixtureRoot) {
  return (await discoverKernels({ root: fx.root })).find((k) => k.release === R)!;
}

describe('choosing and driving the generator', () => {
  it('dracut for a dracut-named image: dracut -f IMAGE K, run inside the root', async () => {
    const fx = makeRoot();
    addKernel(fx, { release: R, initramfs: 'dracut' });
    tool(fx, 'dracut');
    tool(fx, 'update-initramfs');
    expect(await detectGenerator(await import('../../src/fs.js').then((m) => m.nodeFs), fx.root, await kernelIn(fx))).toBe('dracut');
    const { runner, calls } = recorder();
    const r = await regenerateWithGenerator({ root: fx.root, release: R, runner });
    expect(r).toMatchObject({ generator: 'dracut', ran: true });
    expect(calls).toEqual([['chroot', fx.root, 'dracut', '-f', `/boot/initramfs-${R}.img`, R]]);
  });

  it('initramfs-tools for a Debian-named image: update-initramfs -u -k K', async () => {
    const fx = makeRoot();
    addKernel(fx, { release: R, initramfs: 'debian' });
    tool(fx, 'dracut');
    tool(fx, 'update-initramfs');
    const { runner, calls } = recorder();
    await regenerateWithGenerator({ root: fx.root, release: R, runner });
    expect(calls).toEqual([['chroot', fx.root, 'update-initramfs', '-u', '-k', R]]);
  });

  it('mkinitcpio: -p PRESET when the kernel has a preset, else -k K -g IMAGE', async () => {
    const fx = makeRoot();
    addKernel(fx, { release: R });
    fx.write(`/lib/modules/${R}/pkgbase`, 'linux-lts\n');
    fx.write('/boot/initramfs-linux-lts.img', 'x');
    tool(fx, 'mkinitcpio');
    const { runner, calls } = recorder();
    await regenerateWithGenerator({ root: fx.root, release: R, runner });
    expect(calls.at(-1)).toEqual(['chroot', fx.root, 'mkinitcpio', '-k', R, '-g', '/boot/initramfs-linux-lts.img']);
    fx.write('/etc/mkinitcpio.d/linux-lts.preset', 'PRESETS=(default)\n');
    await regenerateWithGenerator({ root: fx.root, release: R, runner });
    expect(calls.at(-1)).toEqual(['chroot', fx.root, 'mkinitcpio', '-p', 'linux-lts']);
  });

  it('kernel-install add K KERNEL for BLS layouts; any generator can be chosen explicitly', async () => {
    const fx = makeRoot();
    addKernel(fx, { release: R });
    fx.write(`/lib/modules/${R}/vmlinuz`, 'kernel');
    fx.write(`/lib/modules/${R}/initrd`, 'x');
    tool(fx, 'kernel-install');
    tool(fx, 'mkinitcpio');
    const { runner, calls } = recorder();
    await regenerateWithGenerator({ root: fx.root, release: R, runner });
    expect(calls.at(-1)).toEqual(['chroot', fx.root, 'kernel-install', 'add', R, `/lib/modules/${R}/vmlinuz`]);
    await regenerateWithGenerator({ root: fx.root, release: R, runner, generator: 'mkinitcpio' });
    expect(calls.at(-1)?.slice(2, 3)).toEqual(['mkinitcpio']);
  });

  it('a dry run runs nothing; a failing generator is a clear error; a missing one too', async () => {
    const fx = makeRoot();
    addKernel(fx, { release: R, initramfs: 'dracut' });
    const { runner, calls } = recorder(1);
    await expect(regenerateWithGenerator({ root: fx.root, release: R, runner })).rejects.toThrow(/no initramfs generator/);
    tool(fx, 'dracut');
    expect((await regenerateWithGenerator({ root: fx.root, release: R, runner, dryRun: true })).ran).toBe(false);
    expect(calls).toEqual([]);
    await expect(regenerateWithGenerator({ root: fx.root, release: R, runner })).rejects.toThrow(/failed \(exit status 1\): generator exploded/);
    await expect(regenerateWithGenerator({ root: fx.root, release: R, runner, generator: 'mkinitcpio' })).rejects.toThrow(/mkinitcpio .* is not installed/);
  });
});

describe('deferred refreshes (RPM %post records, %posttrans flushes)', () => {
  it('records merge; flush refreshes each kernel once and clears the record', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    await deferRefresh({ root: s.root, release: K, changedModules: [`/lib/modules/${K}/kernel/drivers/beta.ko`] });
    await deferRefresh({ root: s.root, release: K, changedModules: [`/lib/modules/${K}/kernel/drivers/alpha.ko`] });
    expect(await listDeferred({ root: s.root })).toMatchObject([
      { release: K, changedModules: [`/lib/modules/${K}/kernel/drivers/alpha.ko`, `/lib/modules/${K}/kernel/drivers/beta.ko`] },
    ]);
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '7'));
    const out = await flushDeferred({ root: s.root, strategy: 'native', level: 1 });
    expect(out).toHaveLength(1);
    expect(out[0]!.result!.action).toBe('native');
    expect(await listDeferred({ root: s.root })).toEqual([]);
    expect(await flushDeferred({ root: s.root })).toEqual([]);
    expect(lsinitramfs(s.imageHost)).toContain(`usr/lib/modules/${K}/kernel/drivers/beta.ko`);
  });

  it('a failed refresh stays recorded for the next flush; a removed kernel is dropped', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '8'));
    await deferRefresh({ root: s.root, release: K });
    tool(s.fx, 'dracut');
    const { runner } = recorder(1);
    const out = await flushDeferred({ root: s.root, strategy: 'generator', runner });
    expect(out[0]!.error?.message).toMatch(/generator exploded/);
    expect((await listDeferred({ root: s.root })).map((r) => r.release)).toEqual([K]);
    expect(readdirSync(s.fx.path(DEFAULT_STATE_DIR))).toEqual([expect.stringMatching(new RegExp(`^${K.replace(/\./g, "\\.")}@\\d+-[0-9a-f]+\\.json$`))]);

    await deferRefresh({ root: s.root, release: '6.1.0-1-gone' });
    const again = await flushDeferred({ root: s.root, strategy: 'generator', runner: recorder(0).runner });
    expect(again.find((o) => o.release === '6.1.0-1-gone')).toMatchObject({ dropped: true });
    expect(await listDeferred({ root: s.root })).toEqual([]);
  });

  it('refuses release names that are paths', async () => {
    const fx = makeRoot();
    await expect(deferRefresh({ root: fx.root, release: '../../etc' })).rejects.toThrow(/not a kernel release/);
  });
});

describe('kabi initramfs (CLI)', () => {
  async function cli(argv: string[], runner?: Runner) {
    const io = memoryIo();
    const cmd = makeInitramfsCommand(runner ? { runner } : {});
    const status = await cmd.run(argv, io);
    return { status, out: io.out(), err: io.err() };
  }

  it('ls --names prints exactly what lsinitramfs prints; --json has segments and entries', async () => {
    const s = makeImageSystem({ compression: 'xz', early: true });
    const names = await cli(['ls', '--names', s.imageHost]);
    expect(names.out.split('\n').filter(Boolean)).toEqual(lsinitramfs(s.imageHost));
    const j = JSON.parse((await cli(['ls', '--json', s.imageHost])).out);
    expect(j.segments.map((x: { compression: string }) => x.compression)).toEqual(['none', 'xz']);
    expect(j.segments[1].entries).toBe(j.entries.filter((e: { segment: number }) => e.segment === 1).length);
    expect(j.entries.find((e: { name: string }) => e.name === 'lib')).toMatchObject({ kind: 'symlink', target: 'usr/lib' });
    const text = (await cli(['ls', s.imageHost])).out;
    expect(text).toMatch(/segment 1 \(xz at 0x[0-9a-f]+\): \d+ entries/);
  });

  it('check exits 0 when current and 1 when stale; update rewrites; dry run does not', async () => {
    const s = makeImageSystem({ compression: 'zstd' });
    expect((await cli(['check', '--root', s.root, K])).status).toBe(0);
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '6'));
    const c = await cli(['check', '--root', s.root, '--json', K]);
    expect(c.status).toBe(1);
    expect(JSON.parse(c.out).changes).toMatchObject([{ kind: 'changed', name: 'beta' }]);
    const before = readBytes(s.imageHost);
    const dry = await cli(['update', '--root', s.root, '--dry-run', K]);
    expect(dry.out).toMatch(/would rewrite/);
    expect(Buffer.from(readBytes(s.imageHost)).equals(Buffer.from(before))).toBe(true);
    const u = await cli(['update', '--root', s.root, '--level', '1', K]);
    expect(u.status).toBe(0);
    expect(u.out).toMatch(/segments rewritten: 0 \(zstd\)/);
    expect((await cli(['check', '--root', s.root, K])).status).toBe(0);
  });

  it('update --generator runs it through the injected runner; --strategy defer records, flush drains', async () => {
    const s = makeImageSystem({ compression: 'gzip' });
    tool(s.fx, 'dracut');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, beta(K, '6'));
    const { runner, calls } = recorder();
    await cli(['update', '--root', s.root, '--generator', 'dracut', K], runner);
    expect(calls).toEqual([['chroot', s.root, 'dracut', '-f', s.imageSys, K]]);
    await cli(['update', '--root', s.root, '--strategy', 'defer', K], runner);
    expect((await listDeferred({ root: s.root })).map((r) => r.release)).toEqual([K]);
    const f = await cli(['flush', '--root', s.root, '--strategy', 'generator'], runner);
    expect(f.status).toBe(0);
    expect(calls).toHaveLength(2);
    rmSync(s.fx.path(DEFAULT_STATE_DIR), { recursive: true });
  });

  it('usage errors', async () => {
    await expect(cli([])).rejects.toThrow(/no subcommand/);
    await expect(cli(['frobnicate'])).rejects.toThrow(/unknown subcommand/);
    await expect(cli(['update', '--strategy', 'magic', K])).rejects.toThrow(/--strategy/);
    await expect(cli(['update', '--generator', 'genkernel', K])).rejects.toThrow(/--generator/);
  });
});
