// The README's table of bad input in drop-in mode, row by row: what RHEL 9's weak-modules does
// with it (read from its source: docs/weak-modules-behaviour.md §1) and what kabi's does, each
// row run here. The last test checks the README shows exactly these rows.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { nodeFs } from '../../src/fs.js';
import { faultyFs } from './faulty-fs.js';
import { weakLinks, wm } from './helpers.js';

const A = '5.14.0-100.el9.x86_64';
const B = '5.14.0-200.el9.x86_64';
const C = '5.14.0-300.el9.x86_64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
const PRINTK = { symbol: 'printk', crc: 0x11 };

function root(): FixtureRoot {
  const fx = makeRoot('kabi-dropin-');
  for (const r of [A, B, C]) addKernel(fx, { release: r, symvers: 'boot-gz', vmlinux: [PRINTK], config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11"' }, dirs: ['extra'] });
  return fx;
}
const good = (fx: FixtureRoot, release = A, name = 'good') => fx.write(`/lib/modules/${release}/extra/${name}.ko`, externalModule(release, { name, versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'] }));
const sys = (fx: FixtureRoot, p: string) => p.slice(fx.root.length);

interface Row {
  /** The bad input (the README's first column). */
  readonly input: string;
  /** What RHEL 9's weak-modules does with it. */
  readonly el9: string;
  readonly status: number;
  /** What kabi prints on stderr, with <file>, <K> and <R> standing for the paths and release. */
  readonly message: string;
  readonly run: () => Promise<void>;
}

const ROWS: Row[] = [
  {
    input: 'a corrupt `.ko` on standard input (`--add-modules`)',
    el9: '0; `modinfo` fails, the file is linked under its full path into every other kernel (depmod does not object)',
    status: 0,
    message: 'weak-modules: <file>: <why>; skipped',
    run: async () => {
      const fx = root();
      const ok = good(fx);
      const bad = fx.write(`/lib/modules/${A}/extra/bad.ko`, 'not an ELF file at all');
      const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${bad}\n${ok}\n`);
      expect(r.status).toBe(0);
      expect(r.err).toMatch(new RegExp(`weak-modules: ${bad}: .+; skipped`));
      expect(weakLinks(fx.root, B)).toEqual({ 'good.ko': sys(fx, ok) }); // the rest is done
    },
  },
  {
    input: "a corrupt `.ko` in another kernel's `extra/` (`--add-kernel`)",
    el9: '0; linked under its full path, like a good one',
    status: 0,
    message: 'weak-modules: <file>: <why>; skipped',
    run: async () => {
      const fx = root();
      const ok = good(fx);
      const bad = fx.write(`/lib/modules/${A}/extra/bad.ko`, new Uint8Array(64));
      const r = await wm(['--basedir', fx.root, '--add-kernel', C, '--no-initramfs']);
      expect(r.status).toBe(0);
      expect(r.err).toContain(`weak-modules: ${bad}: `);
      expect(weakLinks(fx.root, C)).toEqual({ 'good.ko': sys(fx, ok) });
    },
  },
  {
    input: 'a file on standard input that does not exist (`--add-modules`)',
    el9: "0; a dangling link to it in every other kernel; its own kernel's depmod runs (a removed module)",
    status: 0,
    message: 'weak-modules: <file>: no such file; taken as a removed module',
    run: async () => {
      const fx = root();
      const missing = fx.path(`/lib/modules/${A}/extra/missing.ko`);
      const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--no-initramfs'], `${missing}\n`);
      expect(r.status).toBe(0);
      expect(r.err).toContain(`weak-modules: ${missing}: no such file; taken as a removed module`);
      expect(weakLinks(fx.root, B)).toEqual({});
      expect(r.out).toMatch(new RegExp(`depmod -b \\S+ -ae -F \\S+ ${A.replace(/[.]/g, '\\.')}`)); // its own kernel, as el9 does
    },
  },
  {
    input: 'a FIFO or a device on standard input',
    el9: 'hangs (depmod opens the FIFO) or reads the device; linked like a missing file',
    status: 0,
    message: 'weak-modules: <file>: not a regular file; skipped',
    run: async () => {
      const fx = root();
      const fifo = fx.path(`/lib/modules/${A}/extra/fifo.ko`);
      execFileSync('mkfifo', [fifo]);
      const ok = good(fx);
      const t0 = Date.now();
      const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${fifo}\n${ok}\n`);
      expect(Date.now() - t0).toBeLessThan(30_000);
      expect(r.status).toBe(0);
      expect(r.err).toContain(`weak-modules: ${fifo}: not a regular file; skipped`);
      expect(weakLinks(fx.root, B)).toEqual({ 'good.ko': sys(fx, ok) });
    },
  },
  {
    input: "a module that is a symlink leading out of `--basedir`",
    el9: '0; read on the host, linked everywhere (the links dangle in the system)',
    status: 0,
    message: 'weak-modules: <file>: no such file; taken as a removed module',
    run: async () => {
      const fx = root();
      // The link leads to /opt/outside.ko: on the host a module exists there, in the root not.
      const outside = join(fx.root, '..', `outside-${process.pid}.ko`);
      writeFileSync(outside, externalModule(A, { name: 'outside', versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'] }));
      const link = fx.path(`/lib/modules/${A}/extra/outside.ko`);
      symlinkSync(outside, link);
      const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${link}\n`);
      expect(r.status).toBe(0);
      expect(r.err).toContain(`weak-modules: ${link}: no such file; taken as a removed module`);
      expect(weakLinks(fx.root, B)).toEqual({});
      // The same link, to where it leads inside the root: judged (and linked) as what is there.
      mkdirSync(fx.path('/opt'), { recursive: true });
      writeFileSync(fx.path('/opt/inside.ko'), externalModule(A, { name: 'outside', versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'] }));
      rmSync(link);
      symlinkSync('/opt/inside.ko', link);
      expect((await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${link}\n`)).status).toBe(0);
      expect(weakLinks(fx.root, B)).toEqual({ 'outside.ko': `/lib/modules/${A}/extra/outside.ko` });
    },
  },
  {
    input: '`weak-updates` of a kernel is a symlink',
    el9: '0; the symlink is replaced by a directory (what it pointed at is copied in)',
    status: 0,
    message: 'weak-modules: kernel <K> left as it is: <R>/lib/modules/<K>/weak-updates: … is not a directory (refusing to follow or replace it)',
    run: async () => {
      const fx = root();
      const ok = good(fx);
      mkdirSync(fx.path('/elsewhere'));
      symlinkSync(fx.path('/elsewhere'), fx.path(`/lib/modules/${B}/weak-updates`));
      const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${ok}\n`);
      expect(r.status).toBe(0);
      expect(r.err).toMatch(new RegExp(`weak-modules: kernel ${B} left as it is: .*weak-updates.* is not a directory \\(refusing to follow or replace it\\)`));
      expect(readlinkSync(fx.path(`/lib/modules/${B}/weak-updates`))).toBe(fx.path('/elsewhere'));
      expect(weakLinks(fx.root, C)).toEqual({ 'good.ko': sys(fx, ok) });
    },
  },
  {
    input: "a kernel's symvers that cannot be read (corrupt `.gz`)",
    el9: '0; `zcat` gives nothing, so every link is judged incompatible there (`--remove-modules` removes them all)',
    status: 0,
    message: 'weak-modules: kernel <K> left as it is: <why>',
    run: async () => {
      const fx = root();
      const ok = good(fx);
      writeFileSync(fx.path(`/boot/symvers-${B}.gz`), readFileSync(fx.path(`/boot/symvers-${B}.gz`)).subarray(0, 12));
      const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${ok}\n`);
      expect(r.status).toBe(0);
      expect(r.err).toMatch(new RegExp(`weak-modules: kernel ${B} left as it is: `));
      expect(weakLinks(fx.root, C)).toEqual({ 'good.ko': sys(fx, ok) });
    },
  },
  {
    input: 'a base dir without `lib/modules` (`--add-modules`, `--remove-modules`)',
    el9: '0; `ls: cannot access …`, nothing done',
    status: 0,
    message: 'weak-modules: <R>/lib/modules: no such directory; no kernel to work on',
    run: async () => {
      const fx = makeRoot('kabi-dropin-empty-');
      const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${fx.path(`/lib/modules/${A}/extra/x.ko`)}\n`);
      expect(r.status).toBe(0);
      expect(r.err).toContain(`weak-modules: ${join(fx.root, 'lib/modules')}: no such directory; no kernel to work on`);
      expect((await wm(['--basedir', fx.root, '--remove-modules', '--no-initramfs'], `${fx.path('/x.ko')}\n`)).status).toBe(0);
      expect(existsSync(fx.path('/lib'))).toBe(false);
    },
  },
  {
    input: 'a base dir without `lib/modules` (`--add-kernel K`), or a kernel without symvers',
    el9: '1; `Symvers dump file is not found in …`',
    status: 1,
    message: 'Symvers dump file is not found in <R>/boot/symvers-<K>.xz …',
    run: async () => {
      const fx = makeRoot('kabi-dropin-empty-');
      const r = await wm(['--basedir', fx.root, '--add-kernel', A, '--no-initramfs']);
      expect(r.status).toBe(1);
      expect(r.err).toContain(`Symvers dump file is not found in ${fx.root}/boot/symvers-${A}.xz`);
    },
  },
  {
    input: "a kernel's directory on a read-only file system",
    el9: '0; `rm`/`cp` fail with messages, links may be lost',
    status: 1,
    message: 'weak-modules: kernel <K> left as it was: … EROFS …',
    run: async () => {
      const fx = root();
      const ok = good(fx);
      // Every write under B fails as on a read-only mount (the real one: test/reliability).
      const base = faultyFs(nodeFs, { failAt: Infinity });
      const ro = new Proxy(base.fs, {
        get(target, prop, receiver) {
          const orig = Reflect.get(target, prop, receiver) as unknown;
          if (typeof orig !== 'function' || !['writeFile', 'symlink', 'rename', 'mkdir', 'rmdir', 'unlink', 'rm', 'link', 'open'].includes(String(prop))) return orig;
          return async (...args: unknown[]) => {
            const write = String(prop) !== 'open' || /[wax+]/.test(String(args[1]));
            if (write && String(args[0]).includes(`/lib/modules/${B}`)) throw Object.assign(new Error(`EROFS: read-only file system, ${String(prop)} '${String(args[0])}'`), { code: 'EROFS' });
            return (orig as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${ok}\n`, ro);
      expect(r.status).toBe(1);
      expect(r.err).toMatch(new RegExp(`weak-modules: kernel ${B} left as it was: .*EROFS`));
      expect(weakLinks(fx.root, B)).toEqual({});
      expect(weakLinks(fx.root, C)).toEqual({ 'good.ko': sys(fx, ok) });
    },
  },
  {
    input: 'another run holding the lock past `$KABI_LOCK_TIMEOUT` seconds (default 300)',
    el9: 'no lock: both runs go on, and one can lose the links of the other',
    status: 1,
    message: 'weak-modules: <R>/lib/modules/.kabi.lock: another kabi or weak-modules run (…) holds the lock; gave up after N s without changing anything …',
    run: async () => {
      const fx = root();
      const ok = good(fx);
      const lock = fx.path('/lib/modules/.kabi.lock');
      const holder = execFileSync('sh', ['-c', `flock -o -x '${lock}' sleep 30 >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' }).trim();
      try {
        for (let i = 0; i < 100 && execFileSync('sh', ['-c', `flock -n '${lock}' true; echo $?`], { encoding: 'utf8' }).trim() === '0'; i++) await new Promise((r) => setTimeout(r, 20));
        process.env.KABI_LOCK_TIMEOUT = '1';
        const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${ok}\n`);
        expect(r.status).toBe(1);
        expect(r.err).toContain(`weak-modules: ${lock}: another kabi or weak-modules run (`);
        expect(r.err).toMatch(/holds the lock; gave up after 1 s without changing anything/);
        expect(weakLinks(fx.root, B)).toEqual({});
      } finally {
        delete process.env.KABI_LOCK_TIMEOUT;
        execFileSync('kill', ['-9', holder]);
      }
    },
  },
];

describe('weak-modules with bad input: el9\'s statuses, the rest done, a warning naming the file or kernel', () => {
  for (const row of ROWS) it(`${row.input} → ${row.status}`, row.run);


  it('the README shows exactly these rows', () => {
    const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
    const start = readme.indexOf('| bad input (drop-in mode) |');
    expect(start).toBeGreaterThan(0);
    const lines = readme.slice(start).split('\n');
    const rows = lines.slice(2, lines.findIndex((l, i) => i > 1 && !l.startsWith('|'))).map((l) => l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()));
    expect(rows.map((r) => r[0])).toEqual(ROWS.map((r) => r.input));
    for (const [i, r] of ROWS.entries()) {
      expect(rows[i]![1], r.input).toBe(r.el9);
      expect(rows[i]![2], r.input).toBe(String(r.status));
      expect(rows[i]![3], r.input).toBe(`\`${r.message}\``);
    }
  });
});
