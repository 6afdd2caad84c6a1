import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { expectBounded, leftovers, runBin, sh, snapshot } from './hostile-helpers.js';

// Issue 12 (d), for the hostile inputs of items 2, 5 and 7: special files, decompression
// bombs, oversized files, directory loops, links out of the root and a kernel directory that
// is an absolute link. Each run is the built bin as a child process, measured by GNU time:
// under 10 s and 512 MB, a typed error naming the file (and the limit where one applies),
// no stack trace, nothing written outside the root, nothing left behind in it.

const K = '6.1.0-18-amd64';
const K2 = '6.1.0-19-amd64';

let fx: FixtureRoot;
/** Stands for everything outside the root: it must not change. */
let outside: string;
let bombs: string;
let fifo: string;

beforeAll(() => {
  fx = makeRoot('kabi-hostile-');
  for (const release of [K, K2]) addKernel(fx, { release, symvers: 'boot-gz', dirs: ['extra', 'weak-updates'] });
  mkdirSync(fx.path('/var/cache'), { recursive: true });
  fx.write(`/lib/modules/${K}/extra/good.ko`, externalModule(K, { name: 'good' }));
  outside = mkdtempSync(join(tmpdir(), 'kabi-outside-'));
  bombs = mkdtempSync(join(tmpdir(), 'kabi-bombs-'));
  // Without a declared size (a pipe), as the 132 KB module that inflated to 4 GiB.
  sh(`head -c 1G /dev/zero | zstd -q -1 -c > ${bombs}/zeros.ko.zst`);
  sh(`head -c 300M /dev/zero | gzip -1 -c > ${bombs}/zeros.ko.gz`);
  sh(`head -c 300M /dev/zero | xz -0 -T1 -c > ${bombs}/zeros.ko.xz`);
  // A sparse file past the module budget (256 MiB): costs no disk.
  writeFileSync(`${bombs}/huge.ko`, '');
  truncateSync(`${bombs}/huge.ko`, 300 << 20);
  fifo = join(bombs, 'fifo.ko');
  execFileSync('mkfifo', [fifo]);
}, 120_000);

afterAll(() => {
  for (const d of [fx.root, outside, bombs]) rmSync(d, { recursive: true, force: true });
});

/** Runs `fn` and checks the root and the world outside it afterwards. */
function confined(fn: () => void): void {
  const before = snapshot(outside);
  fn();
  expect(snapshot(outside)).toEqual(before);
  expect(leftovers(fx.root)).toEqual([]);
}

describe('a hostile module file is refused in bounded time and memory', () => {
  const cases: [string, () => string, RegExp][] = [
    ['/dev/zero', () => '/dev/zero', /refusing to read a character device as a module/],
    ['a FIFO', () => fifo, /refusing to read a FIFO as a module/],
    ['a zstd bomb (1 GiB of zeros in 36 KB, no declared size)', () => `${bombs}/zeros.ko.zst`, /decompresses to more than the 256 MiB limit for a module/],
    ['a gzip bomb (300 MiB)', () => `${bombs}/zeros.ko.gz`, /decompresses to more than the 256 MiB limit for a module/],
    ['an xz bomb (300 MiB)', () => `${bombs}/zeros.ko.xz`, /decompresses to more than the 256 MiB limit for a module/],
    ['a 300 MiB sparse file', () => `${bombs}/huge.ko`, /is more than the 256 MiB limit for a module/],
  ];
  for (const [what, file, message] of cases) {
    it(`kabi check: ${what}`, () =>
      confined(() => {
        const r = runBin('kabi', ['check', '--root', fx.root, file()]);
        expectBounded(r, what);
        expect(r.status).toBe(2);
        expect(r.stderr).toContain(file());
        expect(r.stderr).toMatch(message);
      }));
    it(`weak-modules --add-modules: ${what}`, () =>
      confined(() => {
        const r = runBin('weak-modules', ['--basedir', fx.root, '--add-modules', '--no-initramfs'], { input: file() + '\n' });
        expectBounded(r, what);
        expect(r.stderr).toContain(file());
      }));
  }
});

describe('kabi depmod: hostile files in and around the module tree', () => {
  const depmod = (...args: string[]) => runBin('kabi', ['depmod', '-b', fx.root, ...args, K]);

  const symvers: [string, () => string, RegExp][] = [
    ['a FIFO', () => fifo, /refusing to read a FIFO as a kernel symbol list/],
    ['/dev/zero', () => '/dev/zero', /refusing to read a character device as a kernel symbol list/],
    // The repro ended in "Cannot create a string longer than …" with a stack trace.
    ['a zstd bomb', () => `${bombs}/zeros.ko.zst`, /decompresses to more than the 64 MiB limit for a kernel symbol list/],
  ];
  for (const [what, file, message] of symvers) {
    it(`-E ${what}`, () =>
      confined(() => {
        const r = depmod('-E', file());
        expectBounded(r, what);
        expect(r.status).toBe(2);
        expect(r.stderr).toContain(file());
        expect(r.stderr).toMatch(message);
      }));
  }

  it('a FIFO in place of the depmod cache is neither waited on nor used, and is replaced', () =>
    confined(() => {
      const cache = fx.path(`/var/cache/kabi/depmod/${K}`);
      mkdirSync(join(cache, '..'), { recursive: true });
      execFileSync('mkfifo', [cache]);
      const r = depmod();
      expectBounded(r, 'cache FIFO');
      expect(r.status).toBe(0);
      expect(snapshot(join(cache, '..')).get(K)).toMatch(/^file /);
    }));

  it('a FIFO as modules.order is refused by name', () =>
    confined(() => {
      const order = fx.path(`/lib/modules/${K}/modules.order`);
      const saved = snapshot(fx.path(`/lib/modules/${K}`)).get('modules.order');
      rmSync(order);
      execFileSync('mkfifo', [order]);
      try {
        const r = depmod();
        expectBounded(r, 'modules.order FIFO');
        expect(r.status).toBe(2);
        expect(r.stderr).toMatch(/modules\.order: refusing to read a FIFO/);
      } finally {
        rmSync(order);
        writeFileSync(order, 'kernel/lib/kabi_base.ko\n');
      }
      expect(saved).toBeDefined();
    }));

  it('special files, bombs and oversized files in the tree are skipped with a message each; the rest is indexed', () =>
    confined(() => {
      const extra = fx.path(`/lib/modules/${K}/extra/hostile`);
      mkdirSync(extra, { recursive: true });
      execFileSync('mkfifo', [join(extra, 'fifo.ko')]);
      symlinkSync('/dev/zero', join(extra, 'zero.ko'));
      for (const f of ['zeros.ko.zst', 'zeros.ko.gz', 'huge.ko']) symlinkSync(join(bombs, f), join(extra, f.replace('zeros', `z${f.length}`)));
      try {
        // Links resolve on the host with -b (as kmod's depmod), inside the root without.
        const r = depmod();
        expectBounded(r, 'tree');
        expect(r.status).toBe(0);
        expect(r.stderr).toMatch(/unsupported file type .*extra\/hostile\/fifo\.ko/);
        expect(r.stderr).toMatch(/z12\.ko\.zst: decompresses to more than the 256 MiB limit for a module/);
        expect(r.stderr).toMatch(/huge\.ko: is more than the 256 MiB limit for a module/);
        const wm = runBin('weak-modules', ['--basedir', fx.root, '--add-kernel', K2, '--no-initramfs']);
        expectBounded(wm, 'weak-modules over the same tree');
      } finally {
        rmSync(extra, { recursive: true, force: true });
      }
    }));
});

describe('directory loops', () => {
  const cases: [string, (dir: string) => void][] = [
    ['two links to their own directory (extra/loop -> .)', (d) => {
      symlinkSync('.', join(d, 'loop'));
      symlinkSync('.', join(d, 'loop2'));
    }],
    ['links to a directory above (..) and to the module directory by absolute path', (d) => {
      symlinkSync('..', join(d, 'up'));
      symlinkSync(`/lib/modules/${K}`, join(d, 'top'));
    }],
    ['two directories linking to each other', (d) => {
      mkdirSync(join(d, 'a'));
      mkdirSync(join(d, 'b'));
      symlinkSync('../b', join(d, 'a', 'to-b'));
      symlinkSync('../a', join(d, 'b', 'to-a'));
    }],
  ];
  for (const [what, make] of cases) {
    it(`${what}: skipped where the loop closes`, () =>
      confined(() => {
        const d = fx.path(`/lib/modules/${K}/extra/loops`);
        mkdirSync(d, { recursive: true });
        make(d);
        try {
          for (const args of [['depmod', '-b', fx.root, K], ['check', '--root', fx.root, fx.path(`/lib/modules/${K}/extra/good.ko`)]]) {
            const r = runBin('kabi', args);
            expectBounded(r, `${what}: kabi ${args[0]}`);
            expect(r.status, r.stderr).toBe(0);
            if (args[0] === 'depmod') expect(r.stderr).toMatch(/a symbolic link loop/);
          }
          const wm = runBin('weak-modules', ['--basedir', fx.root, '--add-kernel', K2, '--no-initramfs']);
          expectBounded(wm, `${what}: weak-modules`);
        } finally {
          rmSync(d, { recursive: true, force: true });
        }
      }));
  }

  it('links fanning out to the same directories over and over stop at the scan limit, with a typed error', () =>
    confined(() => {
      // 8 levels of 5 links each to the next level: 5^8 = 390,625 paths, and no loop.
      const d = fx.path(`/lib/modules/${K}/extra/fan`);
      for (let level = 0; level < 8; level++) {
        mkdirSync(join(d, `l${level}`), { recursive: true });
        for (let i = 0; i < 5; i++) symlinkSync(`../l${level + 1}`, join(d, `l${level}`, `n${i}`));
      }
      mkdirSync(join(d, 'l8'));
      try {
        const r = runBin('kabi', ['depmod', '-b', fx.root, K]);
        expectBounded(r, 'fan-out');
        expect(r.status).toBe(2);
        expect(r.stderr).toMatch(/more than the limit of 8192 directories for one scan/);
        expect(r.stderr).toContain(`/lib/modules/${K}`);
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    }));
});

describe('nothing is written outside the root', () => {
  it('a kernel directory that is an absolute link out of the root: kabi depmod -b and weak-modules write nothing there', () => {
    const target = join(outside, K2 + '-elsewhere');
    mkdirSync(join(target, 'extra'), { recursive: true });
    writeFileSync(join(target, 'extra', 'good.ko'), externalModule(K2, { name: 'good' }));
    writeFileSync(join(target, 'modules.order'), '');
    // Links of its own, which --remove-kernel K3 would delete if it followed the link.
    mkdirSync(join(target, 'weak-updates'));
    symlinkSync(join(target, 'extra', 'good.ko'), join(target, 'weak-updates', 'good.ko'));
    const K3 = '6.1.0-20-amd64';
    symlinkSync(target, fx.path(`/lib/modules/${K3}`));
    try {
      confined(() => {
        const r = runBin('kabi', ['depmod', '-b', fx.root, K3]);
        expectBounded(r, 'depmod');
        // Inside the root the link leads to <root><target>, which is not there.
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/could not open directory/);
        for (const args of [['--add-kernel', K3], ['--add-kernel', K2], ['--remove-kernel', K3]]) {
          const wm = runBin('weak-modules', ['--basedir', fx.root, ...args, '--no-initramfs']);
          expectBounded(wm, `weak-modules ${args.join(' ')}`);
        }
        const link = runBin('kabi', ['link', '--root', fx.root, '--add-kernel', K3, '--no-initramfs']);
        expectBounded(link, 'kabi link');
      });
      expect(readdirSync(target).sort()).toEqual(['extra', 'modules.order', 'weak-updates']);
      expect(readdirSync(join(target, 'weak-updates'))).toEqual(['good.ko']);
    } finally {
      rmSync(fx.path(`/lib/modules/${K3}`));
    }
  });

  it('the same link inside the root (lib/modules/K -> /usr/lib/modules/K) is followed there', () =>
    confined(() => {
      const K4 = '6.1.0-21-amd64';
      addKernel(fx, { release: K4, symvers: 'boot-gz' });
      mkdirSync(fx.path('/usr/lib/modules'), { recursive: true });
      execFileSync('mv', [fx.path(`/lib/modules/${K4}`), fx.path(`/usr/lib/modules/${K4}`)]);
      symlinkSync(`/usr/lib/modules/${K4}`, fx.path(`/lib/modules/${K4}`));
      const r = runBin('kabi', ['depmod', '-b', fx.root, K4]);
      expectBounded(r, 'depmod through an in-root link');
      expect(r.status, r.stderr).toBe(0);
      expect(snapshot(fx.path(`/usr/lib/modules/${K4}`)).has('modules.dep')).toBe(true);
    }));
});
