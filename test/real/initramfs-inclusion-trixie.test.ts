// SPDX-License-Identifier: GPL-2.0-or-later
//
// The same acceptance as initramfs-inclusion-*.test.ts (inclusion-generators.ts) for trixie's dracut 106 (dracut-ng) and
// kmod 34, in a trixie chroot (corpus/debian/chroot.mjs): kabi runs on the host with --root
// pointing at the chroot, as on a mounted image, and runs dracut inside it (chroot), with
// /proc, /sys and /dev mounted there as a booted system has them.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs module without types
import { copyChroot, ensureChroot, runInChroot, TEST_CHROOTS } from '../../corpus/debian/chroot.mjs';
import { cleanupTemps, tempDir } from '../initramfs/helpers.js';
import { generatorKernels } from './corpus.js';
import { inclusionModules, modulesInListing, runInclusionScenario, type InclusionRoot } from './initramfs-env.js';

afterAll(cleanupTemps);

const REPO = join(import.meta.dirname, '../..');
const { K61 } = generatorKernels();
const TREE_DIRS = ['kernel/drivers/block', 'kernel/drivers/scsi', 'kernel/drivers/ata', 'kernel/drivers/nvme', 'kernel/drivers/usb/storage', 'kernel/drivers/hid', 'kernel/drivers/virtio', 'kernel/drivers/md', 'kernel/drivers/cdrom', 'kernel/fs/ext4', 'kernel/fs/jbd2', 'kernel/fs/mbcache.ko', 'kernel/crypto', 'kernel/lib'];

type Chroot = { status: number | null; stdout: string; stderr: string };
const inChroot = (dir: string, argv: string[]): Chroot => {
  const r = runInChroot(dir, argv, { timeoutMs: 900_000 }) as Chroot;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} in the chroot failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
};

/** Run argv on the host with the chroot's /proc, /sys and /dev mounted, in a private mount namespace. */
function withMounts(dir: string, argv: string[]): Chroot {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = `set -e\nmount -t proc proc ${q(join(dir, 'proc'))}\nmount -t sysfs sys ${q(join(dir, 'sys'))}\nmount --rbind /dev ${q(join(dir, 'dev'))}\nexec ${argv.map(q).join(' ')}`;
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--fork', 'sh', '-c', script], { encoding: 'utf8', timeout: 900_000, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("trixie's dracut 106 in a chroot", () => {
  it('for the add, upgrade and removal of each kind of module, kabi (--root) leaves the module list a fresh dracut run makes, and rebuilds only when it differs', async () => {
    const pristine = ensureChroot(TEST_CHROOTS.trixieDracut) as string;
    const dir = copyChroot(pristine, join(tempDir('kabi-trixie-'), 'root')) as string;
    expect(inChroot(dir, ['dracut', '--version']).stdout).toMatch(/dracut 10[6-9]/);
    const k = K61;
    const md = join(dir, 'lib/modules', k.krel);
    mkdirSync(md, { recursive: true });
    for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) copyFileSync(join(k.moduleDir, f), join(md, f));
    for (const d of TREE_DIRS) {
      mkdirSync(join(md, d, '..'), { recursive: true });
      execFileSync('cp', ['-a', join(k.moduleDir, d), join(md, d)]);
    }
    copyFileSync(k.config, join(dir, 'boot', `config-${k.krel}`));
    copyFileSync(k.systemMap, join(dir, 'boot', `System.map-${k.krel}`));
    writeFileSync(join(dir, 'etc/dracut.conf.d/10-kabi-test.conf'), 'compress="zstd -1 -q"\nearly_microcode="no"\nadd_drivers+=" kabi_add "\nomit_drivers+=" kabi_omit "\n');
    inChroot(dir, ['depmod', '-a', k.krel]);
    const first = `/boot/initramfs-${k.krel}.img`;
    inChroot(dir, ['dracut', '-q', '-f', first, k.krel]);
    const root: InclusionRoot = { root: dir, work: tempDir('kabi-trixie-work-'), release: k.krel, ext: '.ko', dracutConf: join(dir, 'etc/dracut.conf.d'), toolsConf: '' };
    // What lsinitrd's listing step runs (its list_files: skipcpio past an early cpio, the
    // image's decompressor, cpio --list), with trixie's own tools. lsinitrd itself also reads
    // the whole image five more times for the rest of what it prints (version, arguments,
    // dracut modules, squashfs, cmdline): 4.1 s a call in the chroot against 0.4 s, twice for
    // each of the 12 steps. The first image is listed both ways, and the two must agree.
    const list = (sysPath: string) =>
      modulesInListing(inChroot(dir, ['bash', '-c', 'set -o pipefail; /usr/lib/dracut/skipcpio "$1" | zstd -d -c | cpio --extract --verbose --quiet --list', 'bash', sysPath]).stdout);
    const listedFirst = list(first);
    expect(listedFirst.length).toBeGreaterThan(50);
    expect(listedFirst).toEqual(modulesInListing(inChroot(dir, ['lsinitrd', first]).stdout));
    const log = await runInclusionScenario(
      {
        root,
        image: join(dir, 'boot', `initramfs-${k.krel}.img`),
        freshImage: join(dir, 'tmp', 'fresh.img'),
        depmod: () => void inChroot(dir, ['depmod', '-a', k.krel]),
        kabi: (changed) => JSON.parse(withMounts(dir, [process.execPath, join(REPO, 'dist/bin/kabi.js'), 'initramfs', 'update', '--json', '--root', dir, '--module', changed, k.krel]).stdout),
        fresh: () => void inChroot(dir, ['dracut', '-q', '-f', '/tmp/fresh.img', k.krel]),
        list: (image) => list(image.slice(dir.length)),
      },
      ['kabi_add', 'kabi_blk', 'kabi_plain', 'kabi_omit'],
      inclusionModules(k),
    );
    console.log(`trixie dracut 106:\n${log.join('\n')}`);
  });
});
