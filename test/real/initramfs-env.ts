// SPDX-License-Identifier: GPL-2.0-or-later
//
// What the inclusion tests (initramfs-inclusion*.test.ts) run on: a Debian kernel tree (a
// reduced one, so a generator run takes seconds), four out-of-tree test modules built twice
// (two versions) against its headers, and a private mount namespace in which / is this
// machine with the test's /lib/modules, /boot and generator configuration bound over its own,
// so dracut, update-initramfs and kabi itself (root /) all run as on an installed system.

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tempDir } from '../initramfs/helpers.js';
import { loadCorpus, type CorpusKernel } from './corpus.js';

/*
 * The test modules, each in a place and with a name that puts it under one kind of rule:
 *   kabi_add    extra/            named in the generator's configuration (dracut add_drivers,
 *                                 initramfs-tools' modules file)
 *   kabi_blk    kernel/drivers/block/  a block driver: it imports blk_mq_alloc_request, so
 *                                 dracut's "=drivers" rule and initramfs-tools' block group take it
 *   kabi_plain  extra/            no rule names it
 *   kabi_omit   kernel/drivers/block/  a block driver dracut is told to omit (omit_drivers)
 *   hid-kabiff  kernel/drivers/hid/    initramfs-tools' hid group leaves out hid-*ff.ko
 */
export const INCLUSION_MODULES = ['kabi_add', 'kabi_blk', 'kabi_plain', 'kabi_omit', 'hid-kabiff'] as const;
export type InclusionModule = (typeof INCLUSION_MODULES)[number];

export const PLACE: Record<InclusionModule, string> = {
  kabi_add: 'extra',
  kabi_blk: 'kernel/drivers/block',
  kabi_plain: 'extra',
  kabi_omit: 'kernel/drivers/block',
  'hid-kabiff': 'kernel/drivers/hid',
};

const SOURCE = (block: boolean) => `// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include <linux/init.h>
${block ? '#include <linux/blk-mq.h>\n/* Imported, never called: enough for a generator to see a block driver. */\nstatic void *kabi_block_ref __used = (void *)&blk_mq_alloc_request;\n' : ''}
static int __init kabi_test_init(void) { return 0; }
static void __exit kabi_test_exit(void) { }
module_init(kabi_test_init);
module_exit(kabi_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kabi initramfs inclusion test module");
MODULE_VERSION(KABI_VERSION);
`;

/** The test modules built against `k` (cached beside the corpus), by version. */
export function inclusionModules(k: CorpusKernel): Record<1 | 2, Record<InclusionModule, string>> {
  const base = join(loadCorpus().manifest.cacheDir, 'initramfs-modules', k.krel);
  const out = {} as Record<1 | 2, Record<InclusionModule, string>>;
  for (const v of [1, 2] as const) {
    const dir = join(base, `v${v}`);
    const files = Object.fromEntries(INCLUSION_MODULES.map((m) => [m, join(dir, `${m}.ko`)])) as Record<InclusionModule, string>;
    if (!Object.values(files).every((f) => existsSync(f))) {
      const build = `${dir}.build-${process.pid}`;
      rmSync(build, { recursive: true, force: true });
      mkdirSync(build, { recursive: true });
      for (const m of INCLUSION_MODULES) writeFileSync(join(build, `${m}.c`), SOURCE(m === 'kabi_blk' || m === 'kabi_omit'));
      writeFileSync(join(build, 'Kbuild'), `obj-m := ${INCLUSION_MODULES.map((m) => `${m}.o`).join(' ')}\nccflags-y := -DKABI_VERSION='"${v}.0"'\n`);
      const env: Record<string, string | undefined> = { ...process.env, LC_ALL: 'C' };
      for (const e of ['ARCH', 'CROSS_COMPILE', 'KBUILD_OUTPUT', 'O', 'KCFLAGS', 'MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'CC', 'LD']) delete env[e];
      const r = spawnSync('make', ['-C', k.headersDir, `M=${build}`, 'modules', '-j2'], { encoding: 'utf8', env });
      if (r.status !== 0) throw new Error(`building the inclusion test modules against ${k.krel} failed:\n${r.stdout}\n${r.stderr}`);
      // Several test files build these at once on a new machine: each renames a whole set into
      // place, and a complete set, once there, is never removed under another file's feet.
      const ready = `${dir}.ready-${process.pid}`;
      rmSync(ready, { recursive: true, force: true });
      mkdirSync(ready, { recursive: true });
      for (const m of INCLUSION_MODULES) copyFileSync(join(build, `${m}.ko`), join(ready, `${m}.ko`));
      rmSync(build, { recursive: true, force: true });
      const complete = () => Object.values(files).every((f) => existsSync(f));
      if (!complete()) {
        // A set a killed run left half-copied (looked at again: another file may have just finished).
        if (existsSync(dir) && !complete()) rmSync(dir, { recursive: true, force: true });
        try {
          renameSync(ready, dir);
        } catch (e) {
          if (!complete()) throw e;
        }
      }
      rmSync(ready, { recursive: true, force: true });
    }
    out[v] = files;
  }
  return out;
}

/** The parts of a Debian tree the generators' rules look at, and enough besides to tell rule from accident. */
const TREE_DIRS = [
  'kernel/drivers/block', 'kernel/drivers/scsi', 'kernel/drivers/ata', 'kernel/drivers/nvme', 'kernel/drivers/usb/storage',
  'kernel/drivers/usb/host', 'kernel/drivers/usb/common', 'kernel/drivers/usb/core', 'kernel/drivers/hid', 'kernel/drivers/input',
  'kernel/drivers/virtio', 'kernel/drivers/md', 'kernel/drivers/cdrom', 'kernel/drivers/net/dummy.ko', 'kernel/drivers/net/virtio_net.ko',
  'kernel/drivers/net/net_failover.ko', 'kernel/net/core', 'kernel/fs/ext4', 'kernel/fs/jbd2', 'kernel/fs/mbcache.ko', 'kernel/fs/fat',
  'kernel/fs/nls', 'kernel/crypto', 'kernel/lib', 'kernel/arch/x86/crypto',
];

export interface InclusionRoot {
  readonly root: string;
  readonly work: string;
  readonly release: string;
  /** The kernel's module file extension (.ko, or .ko.xz from 6.12). */
  readonly ext: string;
  /** Bound over /etc/dracut.conf.d and /etc/initramfs-tools inside the namespace. */
  readonly dracutConf: string;
  readonly toolsConf: string;
}

export function inclusionRoot(k: CorpusKernel): InclusionRoot {
  const root = tempDir('kabi-incl-root-');
  const work = tempDir('kabi-incl-work-');
  const md = join(root, 'lib/modules', k.krel);
  mkdirSync(md, { recursive: true });
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) copyFileSync(join(k.moduleDir, f), join(md, f));
  for (const d of TREE_DIRS) {
    const src = join(k.moduleDir, d);
    const cands = [src, `${src}.xz`].filter((p) => existsSync(p));
    for (const p of cands) {
      mkdirSync(dirname(join(md, d)), { recursive: true });
      // Hard links: the tree is only ever read; files the tests change are new files.
      execFileSync('cp', ['-al', p, join(md, d) + p.slice(src.length)]);
    }
  }
  mkdirSync(join(root, 'boot'), { recursive: true });
  copyFileSync(k.config, join(root, 'boot', `config-${k.krel}`));
  copyFileSync(k.systemMap, join(root, 'boot', `System.map-${k.krel}`));
  const dracutConf = join(work, 'dracut.conf.d');
  mkdirSync(dracutConf, { recursive: true });
  const toolsConf = join(work, 'initramfs-tools');
  cpSync('/etc/initramfs-tools', toolsConf, { recursive: true });
  mkdirSync(join(work, 'var-lib-initramfs-tools'), { recursive: true });
  return { root, work, release: k.krel, ext: k.compression === 'xz' ? '.ko.xz' : '.ko', dracutConf, toolsConf };
}

const NS_SCRIPT = `#!/bin/sh
# ns.sh ROOT WORK CMD...: CMD with ROOT's lib/modules and boot, and WORK's generator configuration, in place of this machine's.
set -e
R=$1; W=$2; shift 2
rm -rf "$W/ovl-upper" "$W/ovl-work"; mkdir -p "$W/ovl-upper" "$W/ovl-work"
mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$W/ovl-upper,workdir=$W/ovl-work" /usr/lib
mkdir -p /usr/lib/modules
mount --bind "$R/lib/modules" /usr/lib/modules
mount --bind "$R/boot" /boot
mount --bind "$W/dracut.conf.d" /etc/dracut.conf.d
mount --bind "$W/initramfs-tools" /etc/initramfs-tools
mkdir -p /var/lib/initramfs-tools
mount --bind "$W/var-lib-initramfs-tools" /var/lib/initramfs-tools
exec "$@"
`;

export interface NsResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run argv in the test system's namespace. */
export function inSystem(r: InclusionRoot, argv: string[], opts: { check?: boolean; env?: Record<string, string> } = {}): NsResult {
  const script = join(r.work, 'ns.sh');
  if (!existsSync(script)) {
    writeFileSync(script, NS_SCRIPT);
    chmodSync(script, 0o755);
  }
  const res = spawnSync('unshare', ['--mount', '--propagation', 'private', script, r.root, r.work, ...argv], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C', TMPDIR: r.work, ...(opts.env ?? {}) },
    maxBuffer: 1 << 28,
    timeout: 900_000,
  });
  if (opts.check !== false && res.status !== 0) throw new Error(`${argv.join(' ')} failed (${res.status ?? res.signal}):\n${res.stdout}\n${res.stderr}`);
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

export function depmodIn(r: InclusionRoot): void {
  execFileSync('depmod', ['-a', '-b', r.root, r.release]);
}

/** Put a test module at its place in the tree (compressed like the tree); returns its system path. */
export function installModule(r: InclusionRoot, m: InclusionModule, file: string): string {
  const rel = `${PLACE[m]}/${m}${r.ext}`;
  const host = join(r.root, 'lib/modules', r.release, rel);
  mkdirSync(dirname(host), { recursive: true });
  rmSync(host, { force: true });
  if (r.ext === '.ko.xz') writeFileSync(host, execFileSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c', file]));
  else copyFileSync(file, host);
  return `/lib/modules/${r.release}/${rel}`;
}

export function removeModule(r: InclusionRoot, m: InclusionModule): string {
  const rel = `${PLACE[m]}/${m}${r.ext}`;
  rmSync(join(r.root, 'lib/modules', r.release, rel), { force: true });
  return `/lib/modules/${r.release}/${rel}`;
}

/**
 * Module files named in a dracut-style listing (lsinitrd's, or `cpio --list --verbose`'s): the
 * name from the ninth field on, a symlink's ` -> target` cut off, in sorted order with repeats kept.
 */
export function modulesInListing(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.split(/\s+/).slice(8).join(' ').replace(/ -> .*$/, ''))
    .filter((n) => MODULE_FILE.test(n))
    .sort();
}

const MODULE_FILE = /\.ko(\.(xz|zst|gz))?$/;

/** Module files an image holds, as lsinitrd (dracut) or lsinitramfs (initramfs-tools) lists them. */
export function imageModules(file: string, lister: 'lsinitrd' | 'lsinitramfs'): string[] {
  const out = execFileSync(lister, [file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const names = lister === 'lsinitrd' ? modulesInListing(out) : out.split('\n').filter((n) => MODULE_FILE.test(n));
  return [...new Set(names)].sort();
}

/** A system the scenario runs on: where things are and how its tools are run. */
export interface InclusionSystem {
  readonly root: InclusionRoot;
  /** Host path of the image kabi keeps up to date. */
  readonly image: string;
  /** Host path the oracle's fresh image is written to. */
  readonly freshImage: string;
  /** depmod for the kernel, as the system runs it. */
  depmod(): void;
  /** `kabi initramfs update --json --module PATH KERNEL` on the system; its JSON. */
  kabi(changed: string): { action: string; reasons: string[] };
  /** A fresh generator run for the same tree, into freshImage. */
  fresh(): void;
  /** The module files an image (host path) holds, as the generator's own lister shows them. */
  list(image: string): string[];
}

async function moduleBytes(file: string, path: string): Promise<Uint8Array | undefined> {
  const { readImageFile } = await import('../../src/initramfs/image.js');
  const { ImageTree } = await import('../../src/initramfs/image-tree.js');
  const { moduleContents } = await import('../../src/initramfs/module-compare.js');
  const { nodeFs } = await import('../../src/fs.js');
  const data = new ImageTree(await readImageFile(nodeFs, file)).readFile(path);
  return data === undefined ? undefined : moduleContents(data, path);
}

/**
 * For each module, its add, upgrade (another build) and removal: after kabi, the image's
 * module list is the fresh run's; kabi rebuilt the image if and only if the fresh run's list
 * differs from the image's before, or a module the image holds changed; the changed module's
 * bytes in the image are the fresh run's. Returns one line per step (what kabi did and why).
 */
export async function runInclusionScenario(sys: InclusionSystem, modules: readonly InclusionModule[], built: Record<1 | 2, Record<InclusionModule, string>>): Promise<string[]> {
  const log: string[] = [];
  const holds = (list: string[], m: InclusionModule) => list.find((p) => p.endsWith(`/${m}.ko`) || p.endsWith(`/${m}.ko.xz`));
  // The image changes only when kabi changes it: its list after one step is its list before the next.
  let before = sys.list(sys.image);
  for (const m of modules) {
    for (const op of ['add', 'upgrade', 'remove'] as const) {
      const t0 = performance.now();
      const changed = op === 'remove' ? removeModule(sys.root, m) : installModule(sys.root, m, built[op === 'add' ? 1 : 2][m]);
      sys.depmod();
      const t1 = performance.now();
      const result = sys.kabi(changed);
      const t2 = performance.now();
      const after = sys.list(sys.image);
      const t3 = performance.now();
      sys.fresh();
      const t4 = performance.now();
      const fresh = sys.list(sys.freshImage);
      const rebuildDue = JSON.stringify(fresh) !== JSON.stringify(before) || (op === 'upgrade' && holds(fresh, m) !== undefined);
      const ms = (a: number, b: number) => Math.round(b - a);
      log.push(`${m} ${op}: ${result.action}${result.reasons.length ? ` (${result.reasons.join('; ')})` : ''} [${ms(t0, performance.now())} ms: kabi ${ms(t1, t2)}, fresh generator run ${ms(t3, t4)}, depmod ${ms(t0, t1)}, listing ${ms(t2, t3) + ms(t4, performance.now())}]`);
      const where = `${m} ${op}\n${log.join('\n')}`;
      if (JSON.stringify(after) !== JSON.stringify(fresh)) {
        throw new Error(`${where}\nkabi's image holds ${JSON.stringify(after.filter((x) => !fresh.includes(x)))} more and ${JSON.stringify(fresh.filter((x) => !after.includes(x)))} less than a fresh run`);
      }
      if ((result.action !== 'none') !== rebuildDue) throw new Error(`${where}\nkabi ${result.action === 'none' ? 'did not rebuild' : 'rebuilt'} the image, the fresh run ${rebuildDue ? 'differs' : 'is the same'}`);
      const path = op === 'remove' ? undefined : holds(fresh, m);
      if (path !== undefined) {
        const ours = await moduleBytes(sys.image, path);
        const theirs = await moduleBytes(sys.freshImage, path);
        if (ours === undefined || theirs === undefined || !Buffer.from(ours).equals(Buffer.from(theirs))) throw new Error(`${where}\n${path} in kabi's image is not the generator's`);
      }
      before = after;
    }
  }
  return log;
}
