import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { release as osRelease, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { snapshot } from '../linker/helpers.js';
import { nvr, SuseSystem } from './suse-system.js';

const K1 = '6.4.0-150600.21-default';
const K2 = '6.4.0-150600.23-default';
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** A directory for PATH with `rpm` answering from the fixture's recorded database. */
function fakeRpmDir(): string {
  const bin = mkdtempSync(join(tmpdir(), 'wm2-bin-'));
  writeFileSync(join(bin, 'rpm'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(REPO, 'test/kmp/fake-rpm.mjs'))} "$@"\n`);
  chmodSync(join(bin, 'rpm'), 0o755);
  return bin;
}

function system(): SuseSystem {
  return new SuseSystem({ [K1]: 'A', [K2]: 'A' });
}

describe('weak-modules2 command line', () => {
  it('-h/--help and --usage print to stdout and exit 0', async () => {
    const s = system();
    for (const a of ['-h', '--help']) {
      const r = await s.wm2([a]);
      expect(r.status).toBe(0);
      expect(r.out).toMatch(/^weak-modules2 --add-kmp NAME-VERSION-RELEASE\n/);
    }
    const u = await s.wm2(['--usage']);
    expect(u.status).toBe(0);
    expect(u.out.split('\n')[0]).toBe('Usage:');
    expect(u.out).toContain('    weak-modules2 --remove-kmp NAME-VERSION-RELEASE < module-list\n');
  });

  it('usage errors print ERROR and the usage on stderr, exit 1', async () => {
    const s = system();
    const cases: [string[], string][] = [
      [[], 'ERROR: Please specify one of the --add-* or --remove-* options\n'],
      [['--add-kernel', K1, K2], 'ERROR: Too many arguments to --add-kernel\n'],
      [['--remove-kernel', K1, K2], 'ERROR: Too many arguments to --remove-kernel\n'],
      [['--add-kmp'], 'ERROR: Option --add-kmp requires exactly one argument\n'],
      [['--remove-kmp', 'a', 'b'], 'ERROR: Option --remove-kmp requires exactly one argument\n'],
      [['--add-kernel-modules'], 'ERROR: Option --add-kernel-modules requires exactly one argument\n'],
      [['--bogus'], "weak-modules2: unrecognized option '--bogus'\n"],
      [['--logfile'], "weak-modules2: option '--logfile' requires an argument\n"],
    ];
    for (const [argv, first] of cases) {
      const r = await s.wm2(argv);
      expect(r.status, argv.join(' ')).toBe(1);
      expect(r.err.startsWith(first), r.err).toBe(true);
      expect(r.err).toContain('Usage:\n    weak-modules2 --add-kmp');
      expect(r.out).toBe('');
    }
  });

  it('the last mode given wins; long options may be abbreviated', async () => {
    const s = system();
    const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    s.unpack(p);
    const r = await s.wm2(['--remove-kernel', '--add-kernel', K2, '--verb']);
    expect(r.status).toBe(0);
    expect(r.err).toContain(`Package ${nvr(p)} added to kernel ${K2}\n`);
  });

  it('--add-kernel and --remove-kernel default to the running kernel', async () => {
    const s = system();
    const r = await s.wm2(['--add-kernel']);
    expect(r.status).toBe(0);
    expect(r.err).toContain(`WARNING: kernel image for ${osRelease()} not found!\n`);
  });

  it('-v, -vv (and WM2_VERBOSE) say more; -vvv traces the commands run; WM2_DEBUG and --debug show depmod errors', async () => {
    const s = system();
    const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    s.unpack(p);
    s.write(`/usr/lib/modules/${K2}/extra/broken.ko`, s.module(K2, 'broken', { gone: 1 }));
    const quiet = await s.wm2(['--add-kmp', nvr(p), '--dry-run']);
    const v = await s.wm2(['--add-kmp', nvr(p), '--dry-run', '-v']);
    const vv = await s.wm2(['--add-kmp', nvr(p), '--dry-run', '-vv']);
    const env2 = await s.wm2(['--add-kmp', nvr(p), '--dry-run'], { env: { WM2_VERBOSE: '2' } });
    const debug = await s.wm2(['--add-kmp', nvr(p), '--dry-run', '--debug']);
    const wm2debug = await s.wm2(['--add-kmp', nvr(p), '--dry-run'], { env: { WM2_DEBUG: '1' } });
    // The inconsistency warning is always printed, with depmod's lines.
    expect(quiet.err).toContain(`Warning: /usr/lib/modules/${K2} is inconsistent\n`);
    expect(quiet.err).not.toContain('does not need to be added');
    expect(v.err).toContain(`Package ${nvr(p)} does not need to be added to kernel ${K1}\n`);
    expect(v.err).not.toContain('add_kmp: processing');
    expect(vv.err).toContain(`add_kmp: processing ${nvr(p)} for ${K1}\n`);
    expect(env2.err).toBe(vv.err);
    // The depmod lines behind the refusal: once as the inconsistency warning, again with --debug.
    const line = `depmod: WARNING: /lib/modules/${K2}/extra/broken.ko needs unknown symbol gone\n`;
    expect(quiet.err.split(line).length - 1).toBe(1);
    expect(debug.err.split(line).length - 1).toBe(2);
    expect(wm2debug.err).toBe(debug.err);
    const vvv = await s.wm2(['--add-kernel', K1, '-vvv'], { env: { INITRD_IN_POSTTRANS: '' } });
    expect(vvv.err).toMatch(/^\+ .*\/usr\/bin\/dracut -f \/boot\/initrd-/m);
  });

  it('--dry-run changes nothing and runs nothing, but says what it would do', async () => {
    const s = system();
    const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    s.unpack(p);
    const before = snapshot(s.root);
    const r = await s.wm2(['--add-kmp', nvr(p), '--dry-run', '-v']);
    expect(r.status).toBe(0);
    expect(snapshot(s.root)).toEqual(before);
    expect(s.commands).toEqual([]);
    expect(r.err).toContain(`Package ${nvr(p)} added to kernel ${K2}\n`);
    expect(r.err).toContain(`/usr/bin/dracut -f /boot/initrd-${K2} ${K2}\n`);
    const rk = await s.wm2(['--remove-kernel', K2, '--dry-run']);
    expect(rk.status).toBe(0);
    expect(snapshot(s.root)).toEqual(before);
  });

  it('--logfile (and WM2_LOGFILE) append stderr to a file, relative names under /var/log', async () => {
    const s = system();
    s.write('/var/log/.keep', '');
    s.write('/var/log/wm2.log', 'earlier\n');
    const r = await s.wm2(['--add-kernel', K1, '-v', '--logfile', 'wm2.log']);
    expect(r.status).toBe(0);
    expect(r.err).toBe(`weak-modules2: appending output to ${s.fx.path('/var/log/wm2.log')}\n`);
    const log = readFileSync(s.fx.path('/var/log/wm2.log'), 'utf8');
    expect(log.startsWith('earlier\n')).toBe(true);
    expect(log).toContain(`/usr/bin/dracut -f /boot/initrd-${K1} ${K1}\n`);
    const abs = join(mkdtempSync(join(tmpdir(), 'wm2-log-')), 'x.log');
    await s.wm2(['--add-kernel', K1, '-v'], { env: { WM2_LOGFILE: abs } });
    expect(readFileSync(abs, 'utf8')).toContain(`dracut -f /boot/initrd-${K1} ${K1}\n`);
  });

  it('runs as a program that exits (the bin, with a fake rpm on PATH), within a timeout', () => {
    const s = system();
    const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    s.unpack(p);
    const bin = fakeRpmDir();
    const wm2 = join(REPO, 'dist/bin/weak-modules2.js');
    expect(existsSync(wm2), 'npm run build first').toBe(true);
    const r = spawnSync(process.execPath, [wm2, '--add-kmp', nvr(p), '-v'], {
      env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, KABI_ROOT: s.root, INITRD_IN_POSTTRANS: '1' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`Package ${nvr(p)} added to kernel ${K2}\n`);
    expect(s.links(K2)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
    expect(existsSync(s.fx.path(`/run/regenerate-initrd/${K2}`))).toBe(true);
  });

  it('waits for the root lock another kabi run holds, and gives up (exit 1) without changing anything after KABI_LOCK_TIMEOUT', () => {
    const s = system();
    const p = s.kmp('foo', 'default', '1.0', K1, { 'foo.ko': s.module(K1, 'foo') });
    s.unpack(p);
    const bin = fakeRpmDir();
    const wm2 = () =>
      spawnSync(process.execPath, [join(REPO, 'dist/bin/weak-modules2.js'), '--add-kmp', nvr(p)], {
        env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, KABI_ROOT: s.root, INITRD_IN_POSTTRANS: '1', KABI_LOCK_TIMEOUT: '1' },
        encoding: 'utf8',
        timeout: 60_000,
      });
    const lock = s.fx.path('/usr/lib/modules/.kabi.lock');
    const holder = execFileSync('sh', ['-c', `flock -o -x '${lock}' sleep 30 >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' }).trim();
    try {
      for (let i = 0; i < 100 && spawnSync('flock', ['-n', lock, 'true']).status === 0; i++) spawnSync('sleep', ['0.02']);
      const before = snapshot(s.root);
      const r = wm2();
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/holds the lock; gave up after 1 s without changing anything/);
      expect(snapshot(s.root)).toEqual(before);
    } finally {
      execFileSync('kill', ['-9', holder]);
    }
    const again = wm2();
    expect(again.status).toBe(0);
    expect(s.links(K2)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${K1}/updates/foo.ko` });
  });
});
