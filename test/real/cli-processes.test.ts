// SPDX-License-Identifier: GPL-2.0-or-later
//
// Every CLI command and both drop-ins, run as the built bins (dist/bin/*.js), each as a process
// with a time limit, on a root holding four Debian kernels from the corpus and 206 out-of-tree
// modules (the test modules built against three of them, a slice of each kernel's own drivers
// copied into its extra/, and corrupt files): none hangs, and each exits with the status its
// --help and the README document.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync, readFileSync, rmSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runBin, type BinRun } from '../reliability/harness.js';
import { loadCorpus, TEST_MODULES, type CorpusKernel } from './corpus.js';
import { rootWithKernels } from './roots.js';
import { moduleFiles } from './util.js';

const corpus = loadCorpus();
const oldest = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'oldest' })[0]!;
const twin = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'twin' })[0]!;
const newest = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'newest' })[0]!;
const k612 = corpus.kernels({ arch: 'amd64', suite: 'bookworm', series: '6.12', role: 'newest' })[0]!;
const KERNELS = [oldest, twin, newest, k612];
/** Generous: the machine is shared, and a full depmod of a .ko.xz tree is seconds of work. A hang is minutes. */
const LIMIT = 600_000;
const BULK = 45;

let root: string;
const outOfTree = new Map<string, string[]>(); // krel → module paths (host)
const corrupt: string[] = [];

function placeModules(k: CorpusKernel): string[] {
  const dir = join(root, 'lib/modules', k.krel);
  const out: string[] = [];
  const put = (src: string, sub: string, name = basename(src)) => {
    mkdirSync(join(dir, sub), { recursive: true });
    const dst = join(dir, sub, name);
    copyFileSync(src, dst);
    out.push(dst);
    return dst;
  };
  // The test modules, where they were built (not against the 6.1 twin, whose ABI is the newest's).
  if (k.builtModules) for (const m of TEST_MODULES) put(corpus.builtModule(k, m), 'extra/kabi');
  // A slice of the kernel's own network drivers, as if built out of tree for it.
  const drivers = moduleFiles(join(k.moduleDir, 'kernel/drivers/net'));
  const step = Math.max(1, Math.floor(drivers.length / BULK));
  for (let i = 0; i < BULK; i++) put(drivers[(i * step) % drivers.length]!, 'extra/bulk', `oot_${i}_${basename(drivers[(i * step) % drivers.length]!)}`);
  // And what a broken package leaves: a truncated module and an empty one.
  const trunc = join(dir, 'extra/broken/trunc.ko');
  mkdirSync(join(dir, 'extra/broken'), { recursive: true });
  writeFileSync(trunc, readFileSync(out[0]!).subarray(0, 300));
  writeFileSync(join(dir, 'extra/broken/empty.ko'), '');
  corrupt.push(trunc, join(dir, 'extra/broken/empty.ko'));
  out.push(trunc, join(dir, 'extra/broken/empty.ko'));
  return out;
}

const kabi = (args: string[], stdin = '') => runBin('kabi', args, { stdin, timeoutMs: LIMIT });
const wm = (args: string[], stdin = '') => runBin('weak-modules', args, { stdin, timeoutMs: LIMIT });
const expectStatus = (r: BinRun, status: number, what: string) => expect(r.status, `${what} (${r.ms} ms): ${r.stderr.slice(-2000)}`).toBe(status);

beforeAll(() => {
  root = rootWithKernels(KERNELS, 'kabi-real-cli-');
  for (const k of KERNELS) {
    mkdirSync(join(root, 'lib/modules', k.krel, 'weak-updates'), { recursive: true });
    outOfTree.set(k.krel, placeModules(k));
  }
}, LIMIT);

describe('the built bins as processes on Debian kernels with 206 out-of-tree modules', () => {
  it('has the modules it claims: at least 200, several per kernel, some corrupt', () => {
    const all = [...outOfTree.values()].flat();
    expect(all.length).toBeGreaterThanOrEqual(200);
    for (const k of KERNELS) expect(outOfTree.get(k.krel)!.length).toBeGreaterThan(5);
    expect(corrupt.length).toBe(2 * KERNELS.length);
  });

  it('help, version and usage errors', async () => {
    expectStatus(await kabi(['--help']), 0, 'kabi --help');
    expectStatus(await kabi(['--version']), 0, 'kabi --version');
    expectStatus(await kabi([]), 2, 'kabi with no command');
    expectStatus(await kabi(['nonsense']), 2, 'kabi nonsense');
    for (const c of ['inspect', 'check', 'link', 'status', 'initramfs', 'depmod', 'preserve']) expectStatus(await kabi([c, '--help']), 0, `kabi ${c} --help`);
    expectStatus(await kabi(['link', '--root', root]), 2, 'kabi link without a mode');
    expectStatus(await wm(['-h']), 0, 'weak-modules -h');
    expectStatus(await wm([]), 1, 'weak-modules without a mode');
    expectStatus(await wm(['--no-such-option']), 1, 'weak-modules --no-such-option');
  }, LIMIT);

  it('kabi inspect and kabi check: 0/1 on modules, 2 on a corrupt one', async () => {
    const good = outOfTree.get(newest.krel)!.filter((p) => p.includes('/extra/kabi/'));
    expectStatus(await kabi(['inspect', '--json', ...good]), 0, 'kabi inspect');
    expectStatus(await kabi(['inspect', corrupt[0]!]), 2, 'kabi inspect of a truncated module');
    const check = await kabi(['check', '--root', root, ...good]);
    expect([0, 1], check.stderr).toContain(check.status); // some of them do not load everywhere
    expectStatus(await kabi(['check', '--root', root, '--kernel', newest.krel, outOfTree.get(newest.krel)![0]!]), 0, 'kabi check on its own kernel');
    expectStatus(await kabi(['check', '--root', root, corrupt[1]!]), 2, 'kabi check of an empty module');
  }, LIMIT);

  it('weak-modules --add-modules of all 206 (corrupt ones skipped with a warning), then the other modes', async () => {
    const all = [...outOfTree.values()].flat();
    const add = await wm(['--basedir', root, '--add-modules', '--no-initramfs'], all.join('\n') + '\n');
    expectStatus(add, 0, 'weak-modules --add-modules');
    for (const c of corrupt) expect(add.stderr).toContain(`weak-modules: ${c}: `);
    // All or nothing per kernel: with modules of every kernel at once, a kernel keeps what it
    // had when one of them cannot load there. One package at a time: the 6.1 twin shares the
    // newest 6.1's ABI, and takes the newest's test modules.
    const pkg = outOfTree.get(newest.krel)!.filter((p) => p.includes('/extra/kabi/'));
    expectStatus(await wm(['--basedir', root, '--add-modules', '--no-initramfs'], pkg.join('\n') + '\n'), 0, 'weak-modules --add-modules of one package');
    expect(readdirSync(join(root, 'lib/modules', twin.krel, 'weak-updates/kabi')).length).toBeGreaterThan(0);
    expectStatus(await wm(['--basedir', root, '--add-modules', '--dry-run', '--verbose', '--no-initramfs'], all.slice(0, 20).join('\n') + '\n'), 0, 'weak-modules --dry-run');
    expectStatus(await runBin('kabi', ['weak-modules', '--basedir', root, '--add-kernel', twin.krel, '--no-initramfs']), 0, 'kabi weak-modules --add-kernel');
    // A package erased: its files are gone, then --remove-modules.
    const erased = outOfTree.get(newest.krel)!.filter((p) => p.includes('/extra/kabi/'));
    const moved = mkdtempSync(join(tmpdir(), 'kabi-real-erased-'));
    for (const p of erased) renameSync(p, join(moved, basename(p)));
    expectStatus(await wm(['--basedir', root, '--remove-modules', '--no-initramfs'], [...erased, ...corrupt].join('\n') + '\n'), 0, 'weak-modules --remove-modules');
    expect(existsSync(join(root, 'lib/modules', twin.krel, 'weak-updates/kabi'))).toBe(false);
    for (const p of erased) renameSync(join(moved, basename(p)), p);
    expectStatus(await wm(['--basedir', root, '--remove-kernel', oldest.krel]), 0, 'weak-modules --remove-kernel');
  }, LIMIT);

  it('weak-modules with a kernel whose weak-updates is a symlink, and on a root without lib/modules: el9\'s statuses', async () => {
    const wu = join(root, 'lib/modules', k612.krel, 'weak-updates');
    rmSync(wu, { recursive: true, force: true });
    mkdirSync(join(root, 'elsewhere'), { recursive: true });
    symlinkSync(join(root, 'elsewhere'), wu);
    try {
      const r = await wm(['--basedir', root, '--add-modules', '--no-initramfs'], outOfTree.get(oldest.krel)!.join('\n') + '\n');
      expectStatus(r, 0, 'weak-modules with a symlinked weak-updates');
      expect(r.stderr).toContain(`weak-modules: kernel ${k612.krel} left as it is`);
      expect(readdirSync(join(root, 'elsewhere'))).toEqual([]);
    } finally {
      rmSync(wu);
      mkdirSync(wu);
    }
    const empty = mkdtempSync(join(tmpdir(), 'kabi-real-empty-'));
    expectStatus(await wm(['--basedir', empty, '--add-modules', '--no-initramfs'], '/lib/modules/x/extra/a.ko\n'), 0, 'weak-modules on a root without lib/modules');
    expectStatus(await wm(['--basedir', empty, '--add-kernel', newest.krel, '--no-initramfs']), 1, 'weak-modules --add-kernel on a root without lib/modules');
  }, LIMIT);

  it('kabi link in every mode, kabi status, kabi depmod', async () => {
    const mine = outOfTree.get(newest.krel)!.filter((p) => p.includes('/extra/kabi/'));
    expectStatus(await kabi(['link', '--root', root, '--add', '--dry-run', '--json', ...mine]), 0, 'kabi link --add --dry-run --json');
    expectStatus(await kabi(['link', '--root', root, '--add', '--no-initramfs', ...mine]), 0, 'kabi link --add');
    expectStatus(await kabi(['link', '--root', root, '--add', '--no-initramfs', corrupt[0]!]), 2, 'kabi link --add of a corrupt module');
    expectStatus(await kabi(['link', '--root', root, '--add', '--no-initramfs', join(root, 'lib/modules', newest.krel, 'extra/none.ko')]), 2, 'kabi link --add of a missing module');
    expectStatus(await kabi(['link', '--root', root, '--add-kernel', oldest.krel, '--no-initramfs']), 0, 'kabi link --add-kernel (corrupt sources skipped)');
    expectStatus(await kabi(['link', '--root', root, '--add-kernel', '9.9.9-none', '--no-initramfs']), 2, 'kabi link --add-kernel of a kernel not installed');
    expectStatus(await kabi(['link', '--root', root, '--remove', '--no-initramfs', ...mine]), 0, 'kabi link --remove');
    expectStatus(await kabi(['link', '--root', root, '--remove-kernel', oldest.krel]), 0, 'kabi link --remove-kernel');
    const status = await kabi(['status', '--root', root, '--json']);
    expectStatus(status, 0, 'kabi status --json');
    expect(JSON.parse(status.stdout)).toBeTypeOf('object');
    expectStatus(await kabi(['status', '--root', root]), 0, 'kabi status');
    expectStatus(await kabi(['depmod', '-b', root, '-a', k612.krel]), 0, 'kabi depmod -a (6.12, .ko.xz)');
    expectStatus(await kabi(['depmod', '-b', root, '-n', newest.krel]), 0, 'kabi depmod -n');
  }, LIMIT);

  it('kabi initramfs and kabi preserve', async () => {
    expectStatus(await kabi(['initramfs', 'ls', join(root, 'boot/initramfs-none.img')]), 2, 'kabi initramfs ls of a missing image');
    expectStatus(await kabi(['initramfs', 'ls', corrupt[0]!]), 2, 'kabi initramfs ls of a file that is no image');
    expectStatus(await kabi(['initramfs', 'check', '--root', root, newest.krel]), 0, 'kabi initramfs check (no image)');
    expectStatus(await kabi(['initramfs', 'flush', '--root', root]), 0, 'kabi initramfs flush (nothing recorded)');
    expectStatus(await kabi(['preserve', 'save', '--root', root, '--kernel', newest.krel]), 0, 'kabi preserve save');
    expectStatus(await kabi(['preserve', 'list', '--root', root]), 0, 'kabi preserve list');
    expectStatus(await kabi(['preserve', 'restore', '--root', root, '--kernel', newest.krel]), 0, 'kabi preserve restore');
    expectStatus(await kabi(['preserve', 'prune', '--root', root, '--kernel', newest.krel, '--older-than', '0']), 0, 'kabi preserve prune');
  }, LIMIT);
});
