// Every fenced block of the README is executed or checked here, one test per block, named by its
// first line; a block this file has no handler for fails (so a new example cannot go untested).
// Commands run as real processes: `sh -c` with the built bins (dist/bin) on PATH as `kabi`,
// `weak-modules` and `weak-modules2`, a timeout, against fixture roots that hold what each
// example names. Where an example names this machine's /lib/modules (which a test never
// touches), the root is substituted, and only there: each handler says how. A block that shows
// sample output is compared line by line with what the tool printed (stdout and stderr as they
// interleave; a line `…` stands for any lines), so the README cannot drift from the tool.
// The ```ts blocks run in test/api/readme.test.ts; `npm install` from a tarball and from git
// in test/package-install/install.test.ts.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { BROKEN, demoSystem, NEW, OLD } from '../../corpus/demo/system.js';
import { everyStateRoot, K2 } from '../status/fixture.js';
import { debianPackages } from '../package/helpers.js';
import { nvr, SuseSystem } from '../kmp/suse-system.js';

const REPO = new URL('../..', import.meta.url).pathname;
const README = readFileSync(join(REPO, 'README.md'), 'utf8');

interface Block {
  lang: string;
  first: string;
  text: string;
  /** The heading the block sits under. */
  section: string;
}

function fencedBlocks(markdown: string): Block[] {
  const out: Block[] = [];
  let section = '';
  let open: { lang: string; lines: string[] } | undefined;
  for (const line of markdown.split('\n')) {
    if (open) {
      if (line.startsWith('```')) {
        out.push({ lang: open.lang, first: open.lines[0] ?? '', text: open.lines.join('\n'), section });
        open = undefined;
      } else open.lines.push(line);
    } else if (line.startsWith('```')) open = { lang: line.slice(3).trim(), lines: [] };
    else if (line.startsWith('#')) section = line.replace(/^#+\s*/, '');
  }
  expect(open, 'an unclosed fence').toBeUndefined();
  return out;
}

// The bins as a user's PATH has them, and node for their `#!/usr/bin/env node`.
const BIN = mkdtempSync(join(tmpdir(), 'kabi-readme-bin-'));
for (const b of ['kabi', 'weak-modules', 'weak-modules2']) symlinkSync(join(REPO, 'dist/bin', `${b}.js`), join(BIN, b));
const PATH = `${BIN}:${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`;

const roots: FixtureRoot[] = [];
const dirs: string[] = [BIN];
afterAll(() => {
  for (const d of [...roots.map((fx) => fx.root), ...dirs]) rmSync(d, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** One command line through sh, stderr merged into stdout in the order written. */
function sh(cmd: string, opts: { cwd?: string; env?: Record<string, string>; path?: string } = {}) {
  const r = spawnSync('sh', ['-c', `(\n${cmd}\n) 2>&1`], {
    cwd: opts.cwd ?? tmpdir(),
    env: { ...process.env, NO_COLOR: '1', ...opts.env, PATH: opts.path ? `${opts.path}:${PATH}` : PATH },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  expect(r.signal, `${cmd}: killed (timeout?)`).toBeNull();
  return { status: r.status, out: r.stdout };
}

/** A sample-output block: `$ command` lines (a trailing `\` continues them), each followed by its output. */
function transcript(text: string): { cmd: string; expected: string[] }[] {
  const steps: { cmd: string; expected: string[] }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('$ ')) {
      let cmd = line.slice(2);
      while (cmd.endsWith('\\')) cmd = cmd.slice(0, -1) + ' ' + lines[++i]!.trim();
      steps.push({ cmd, expected: [] });
    } else {
      expect(steps.length, `output before any command: ${line}`).toBeGreaterThan(0);
      steps.at(-1)!.expected.push(line);
    }
  }
  return steps;
}

/** Whether `actual` is `expected` line for line (trailing blanks aside), a `…` line standing for any run of lines. */
function sameOutput(actual: string[], expected: string[]): boolean {
  const a = actual.map((l) => l.trimEnd());
  const e = expected.map((l) => l.trimEnd());
  const memo = new Map<string, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = `${i},${j}`;
    if (memo.has(key)) return memo.get(key)!;
    let r: boolean;
    if (j === e.length) r = i === a.length;
    else if (e[j]!.trim() === '…') r = go(i, j + 1) || (i < a.length && go(i + 1, j));
    else r = i < a.length && a[i] === e[j] && go(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  return go(0, 0);
}

function expectOutput(actual: string, expected: string[], what: string) {
  const lines = actual.replace(/\n$/, '').split('\n');
  // On a mismatch, show the two texts side by side (toEqual's diff) rather than `false`.
  if (!sameOutput(lines, expected)) expect(lines.join('\n'), what).toBe(expected.join('\n'));
}

// The demo system of `npm start` (corpus/demo/system.ts), which the README's command examples
// describe; one for the whole file, taken through the examples in README order.
let demo: ReturnType<typeof demoSystem> | undefined;
function demoRoot() {
  if (!demo) {
    demo = demoSystem('kabi-readme-demo-');
    roots.push(demo.fx);
  }
  return demo;
}
const ACME = `/lib/modules/${OLD}/extra/acme`;

type Handler = (b: Block) => void;
const handlers: Record<string, Handler> = {
  // Installing the package: test/package-install/install.test.ts installs the `npm pack` tarball
  // (with and without optional dependencies, with --ignore-scripts) and a `git+file://` clone into
  // empty projects; it is in the `real` project (minutes of npm). Here: that it still does both.
  'npm install kabi                  # from the registry (or a tarball made by `npm pack`)': (b) => {
    const install = readFileSync(join(REPO, 'test/package-install/install.test.ts'), 'utf8');
    expect(b.text).toContain('npm install git+file://');
    expect(install).toContain("npm(['install', `git+file://${repo}`]");
    expect(install).toMatch(/installed from the tarball into an empty project/);
  },

  // `npm ci` is what .ci/run does on a clean checkout (and the install test does in a clone);
  // `npm start` and `npm test` are the scripts the comments say. The demo runs here as `npm
  // start` runs it after its build (the build is done: the bins above are it).
  'npm ci && npm start     # builds, then shows kabi analysing a small demo system built from corpus/': () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe('npm run build --silent && node dist/demo/demo.js');
    expect(pkg.scripts.test).toBe('npm run build --silent && vitest run');
    expect(readFileSync(join(REPO, 'vitest.config.ts'), 'utf8')).toMatch(/name: 'unit'[\s\S]*name: 'real'/);
    const r = sh(`node ${join(REPO, 'dist/demo/demo.js')}`);
    expect(r.status).toBe(0);
    for (const c of ['inspect', 'check', 'status', 'link', 'depmod', 'initramfs', 'preserve']) expect(r.out).toContain(`$ kabi ${c} `);
    expect(r.out).toMatch(/^Removed the demo system /m);
  },

  // Run as written, in a directory holding the two packages (built by dpkg-deb with Debian's
  // names and layout from a fixture kernel) and a module built against another kernel's
  // module_layout, as corpus/modules/kabi_minimal.c is when built for another release.
  '$ kabi check --kernel-package linux-image-6.1.0-57-amd64-unsigned_6.1.192-3_amd64.deb \\': (b) => {
    const release = '6.1.0-57-amd64';
    const fx = makeRoot('kabi-readme-debian-');
    roots.push(fx);
    addKernel(fx, { release, symvers: 'debian-headers', compression: 'xz', moduleStructSize: 0x380 });
    const cwd = tempDir('kabi-readme-debs-');
    const debs = debianPackages(cwd, fx, release, { imageName: `linux-image-${release}-unsigned`, version: '6.1.192-3' }).map((f) => basename(f));
    const [step] = transcript(b.text);
    for (const d of debs) expect(step!.cmd).toContain(` ${d} `);
    writeFileSync(join(cwd, 'kabi_minimal.ko'), externalModule('6.1.0-18-amd64', { name: 'kabi_minimal', thisModuleSize: 0x380, versions: [{ symbol: 'module_layout', crc: 0x12345678 }] }));
    const r = sh(step!.cmd, { cwd });
    expect(r.status, 'incompatible: exit 1').toBe(1);
    expectOutput(r.out, step!.expected, b.first);
  },

  // The path is the installed system's: the test reads it under the demo root ($ROOT prefixed,
  // and taken off the `filename:` line it prints).
  [`$ kabi inspect ${ACME}/acme_nic.ko`]: (b) => {
    const { fx } = demoRoot();
    const [step] = transcript(b.text);
    const r = sh(step!.cmd.replace(`inspect ${ACME}`, `inspect ${fx.root}${ACME}`));
    expect(r.status).toBe(0);
    expectOutput(r.out.replaceAll(fx.root, ''), step!.expected, b.first);
  },

  // Run as written, in the driver's directory of the demo root (ROOT set).
  '$ kabi check --root $ROOT acme_nic.ko acme_blob.ko': (b) => {
    const { fx } = demoRoot();
    const [step] = transcript(b.text);
    const r = sh(step!.cmd, { cwd: fx.path(ACME), env: { ROOT: fx.root } });
    expect(r.status, 'some module does not load: exit 1').toBe(1);
    expectOutput(r.out, step!.expected, b.first);
    // The words after it: with depmod's rules the blob is "ok" where the symbols match.
    const depmodRules = sh('kabi check --root $ROOT --semantics depmod acme_blob.ko', { cwd: fx.path(ACME), env: { ROOT: fx.root } });
    expect(depmodRules.out).toMatch(/^acme_blob\.ko\s+ok\s+ok\s+incompatible\s*$/m);
  },

  '$ kabi link --root $ROOT --add --dry-run acme_nic.ko': (b) => {
    const { fx } = demoRoot();
    const [step] = transcript(b.text);
    const before = readdirSync(fx.path(`/lib/modules/${NEW}/weak-updates`));
    const r = sh(step!.cmd, { cwd: fx.path(ACME), env: { ROOT: fx.root } });
    expect(r.status).toBe(0);
    expectOutput(r.out, step!.expected, b.first);
    expect(readdirSync(fx.path(`/lib/modules/${NEW}/weak-updates`))).toEqual(before);
  },

  // The module path on standard input is the installed system's: the root is given with
  // --basedir (weak-modules' own option). It links the driver into the kernel with the same
  // kABI only, and says so in the words the README quotes.
  [`echo ${ACME}/acme_nic.ko | weak-modules --add-modules --verbose`]: (b) => {
    const { fx } = demoRoot();
    const r = sh(b.text.replace('| weak-modules ', `| weak-modules --basedir ${fx.root} `));
    expect(r.status).toBe(0);
    expect(r.out).toContain(`Module acme_nic.ko from kernel ${OLD} is compatible with kernel ${NEW}\n`);
    expect(r.out).toContain(`Module acme_nic.ko from kernel ${OLD} is not compatible with kernel ${BROKEN} in symbols:  printk\n`);
    expect(readlinkSync(fx.path(`/lib/modules/${NEW}/weak-updates/acme/acme_nic.ko`))).toBe(`${ACME}/acme_nic.ko`);
    expect(existsSync(fx.path(`/lib/modules/${BROKEN}/weak-updates/acme`))).toBe(false);
  },

  // A KMP's scriptlets, line by line, on a SUSE system (test/kmp/suse-system.ts) named by
  // KABI_ROOT (weak-modules2's root, as kabi adds it); `rpm` is the fake that answers from that
  // system's package list (test/kmp/fake-rpm.mjs). The test plays rpm between the lines: the
  // package is unpacked before %post and its files and record go between %preun and %postun.
  // The system's /usr/bin/dracut is a recorder run through chroot with busybox's sh.
  'INITRD_IN_POSTTRANS=1 weak-modules2 --add-kmp drbd-kmp-default-9.1.16_k6.4.0_150600.21-150600.3.2': (b) => {
    const [K21, K23] = ['6.4.0-150600.21-default', '6.4.0-150600.23-default'];
    const sys = new SuseSystem({ [K21]: 'A', [K23]: 'A' }, { prefix: 'kabi-readme-suse-' });
    roots.push(sys.fx);
    sys.write('/bin/busybox', readFileSync('/bin/busybox'));
    chmodSync(sys.fx.path('/bin/busybox'), 0o755);
    symlinkSync('busybox', sys.fx.path('/bin/sh'));
    sys.write(sys.dracut, '#!/bin/sh\necho "$@" >> /dracut.log\n');
    const kmp = sys.kmp('drbd', 'default', '9.1.16_k6.4.0_150600.21', K21, { 'drbd/drbd.ko': sys.module(K21, 'drbd') }, '150600.3.2');
    const shims = tempDir('kabi-readme-rpm-');
    writeFileSync(join(shims, 'rpm'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(REPO, 'test/kmp/fake-rpm.mjs'))} --root "$KABI_ROOT" "$@"\n`, { mode: 0o755 });
    const run = (line: string) => sh(line, { cwd: shims, env: { KABI_ROOT: sys.root }, path: shims });
    const [add, list, remove, ...rest] = b.text.split('\n').filter((l) => l.trim() !== '');
    expect(rest).toEqual([]);
    const link = `updates/drbd/drbd.ko`;

    sys.unpack(kmp);
    expect(nvr(kmp)).toBe(add!.split(' ').at(-1));
    const added = run(add!);
    expect(added, add).toMatchObject({ status: 0, out: '' }); // wm2's messages are for -v
    expect(Object.keys(sys.links(K23))).toEqual([link]);
    expect(existsSync(sys.fx.path('/dracut.log')), 'INITRD_IN_POSTTRANS defers the initrd').toBe(false);

    expect(run(list!).status).toBe(0);
    expect(readFileSync(join(shims, 'drbd.modules'), 'utf8')).toBe(`/usr/lib/modules/${K21}/${link}\n`);
    sys.unpackRemove(nvr(kmp));
    const removed = run(remove!);
    expect(removed, remove).toMatchObject({ status: 0 });
    expect(sys.links(K23)).toEqual({});
    expect(readFileSync(sys.fx.path('/dracut.log'), 'utf8')).toContain(K23);
  },

  // A synopsis: each line's subcommand and options are the ones `kabi initramfs --help` lists.
  'kabi initramfs ls [--json | --names] IMAGE          # segments (offset, compression, entries) and members, like lsinitrd': (b) => {
    const help = sh('kabi initramfs --help');
    expect(help.status).toBe(0);
    const usage = help.out.slice(0, help.out.indexOf('\n\n')).replace(/\n\s+\[/g, ' [');
    const synopsis = b.text.replace(/\n\s+\[/g, ' [').split('\n').filter((l) => l.startsWith('kabi initramfs '));
    const subs = (text: string) => [...text.matchAll(/kabi initramfs (\w+)/g)].map((m) => m[1]!);
    expect(subs(synopsis.join('\n'))).toEqual(subs(usage));
    for (const line of synopsis) {
      const sub = subs(line)[0]!;
      const toolLine = usage.split('\n').find((l) => l.includes(`kabi initramfs ${sub} `))!;
      const flags = (t: string) => [...new Set(t.replace(/#.*/, '').match(/--[\w-]+/g) ?? [])].sort();
      expect(flags(line), sub).toEqual(flags(toolLine));
    }
    expect(b.text).toMatch(/exit 0 no, 1 yes \(needs an update\), 2 error/);
    expect(help.out).toContain('Exit status: 0 current (or no image), 1 needs an update, 2 error.');
  },

  // On the demo root after `kabi link --root $ROOT --add` of its driver, as the README says
  // (weak-modules above has linked it already: the run finds nothing to do). Run as written.
  [`$ kabi depmod --root $ROOT -e -F $ROOT/boot/System.map-${NEW} ${NEW}`]: (b) => depmodTranscript(b),

  // The system of test/status/fixture.ts, where every cell state occurs; the running kernel of a
  // root other than / is $KABI_KERNEL (uname -r describes this machine).
  '$ kabi status --root $ROOT --store /opt/kmods': (b) => {
    const fx = everyStateRoot();
    roots.push(fx);
    const [step] = transcript(b.text);
    const r = sh(step!.cmd, { env: { ROOT: fx.root, KABI_KERNEL: K2 } });
    expect(r.status).toBe(0);
    expectOutput(r.out, step!.expected, b.first);
  },

  // The layout: every directory named exists, and every directory of src/ is named.
  'src/elf/         bounds-checked zero-copy ELF32/64 reader (both byte orders)': (b) => {
    const named = b.text.split('\n').flatMap((l) => l.split(/\s{2,}/)[0]!.split(/\s+/)).filter((p) => p.endsWith('/'));
    for (const p of named) expect(statSync(join(REPO, p)).isDirectory(), p).toBe(true);
    const src = readdirSync(join(REPO, 'src'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `src/${d.name}/`);
    expect(src.filter((d) => !named.includes(d)), 'src/ directories the layout does not name').toEqual([]);
  },
};

function depmodTranscript(b: Block) {
  const { fx, driver } = demoRoot();
  expect(sh(`kabi link --root ${fx.root} --add ${driver}`).status).toBe(0);
  for (const step of transcript(b.text)) {
    const r = sh(step.cmd, { env: { ROOT: fx.root } });
    expect(r.status, step.cmd).toBe(0);
    expectOutput(r.out.replaceAll(fx.root, '$ROOT'), step.expected, step.cmd);
  }
}

describe('every fenced block of the README', () => {
  const blocks = fencedBlocks(README);
  it('are found (the README has examples)', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(14);
  });
  for (const b of blocks) {
    it(b.first, () => {
      if (b.lang === 'ts') {
        // test/api/readme.test.ts runs every ```ts block of the Library section.
        expect(b.section, 'a ```ts block outside "## Library" is run by no test').toBe('Library');
        return;
      }
      const handler = handlers[b.first];
      if (!handler) throw new Error(`no test handles the README block starting ${JSON.stringify(b.first)} (under "${b.section}"): add one to test/api/readme-shell.test.ts`);
      handler(b);
    });
  }
});
