// What every kabi command shares (src/cli/options.ts, style.ts, main.ts): option errors that
// say what is wrong and suggest the nearest option, the version package.json holds, --color /
// NO_COLOR / TERM=dumb, --kernel where kernels are chosen, depmod's statuses and flags where
// kabi imitates depmod, modinfo's -F/-b/-k and name lookup in inspect, shell completion and man
// pages written from the same option tables.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { memoryIo } from '../../src/cli/io.js';
import { commands, main } from '../../src/cli/main.js';
import { describeCommands, OPERANDS } from '../../src/cli/describe.js';
import { parseOptions } from '../../src/cli/options.js';
import { cellTone } from '../../src/status/render.js';
import type { Cell } from '../../src/status/types.js';

const OLD = '6.1.0-10-amd64';
const NEW = '6.1.0-30-amd64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
const BIN = new URL('../../dist/bin/kabi.js', import.meta.url).pathname;
const PKG = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

async function kabi(argv: string[], init: Parameters<typeof memoryIo>[0] = {}) {
  const io = memoryIo(init);
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

/** The built bin as a process, with a timeout: a command that never exits fails the test. */
function bin(argv: string[], env: Record<string, string> = {}, path = BIN) {
  const r = spawnSync(process.execPath, [path, ...argv], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '', ...env } });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function root(): { fx: FixtureRoot; m: string } {
  const fx = makeRoot('kabi-conv-');
  for (const r of [OLD, NEW]) addKernel(fx, { release: r, symvers: 'debian-headers', vmlinux: [{ symbol: 'printk', crc: 0x11 }], moduleStructSize: 0x380 });
  const m = fx.write(`/lib/modules/${OLD}/updates/dkms/my-drv.ko`, externalModule(OLD, {
    name: 'my-drv',
    versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }],
    undefinedSymbols: ['printk'],
    thisModuleSize: 0x380,
    modinfo: [['alias', 'pci:v1d2*'], ['parm', 'debug:turn on debugging'], ['parmtype', 'debug:int'], ['parmtype', 'quiet:bool']],
  }));
  return { fx, m };
}

describe('option errors', () => {
  it('an unknown option names the nearest one, exits 2 and prints the usage', async () => {
    const r = await kabi(['link', '--rot', '/x', '--add', 'm.ko']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^kabi link: unknown option '--rot' \(did you mean --root\?\)\nUsage: kabi link/);
    expect((await kabi(['status', '--semantics', 'loadr'])).err).toContain("--semantics must be loader or depmod, not 'loadr' (did you mean loader?)");
    expect((await kabi(['check', '--root'])).err).toContain('--root needs a value (DIR)');
    expect((await kabi(['link', '--root', '--dry-run', '--add', 'x.ko'])).err).toContain("--root needs a value (DIR); '--dry-run' is an option");
    const cmd = await kabi(['stauts']);
    expect(cmd.code).toBe(2);
    expect(cmd.err).toContain("kabi: unknown command 'stauts' (did you mean status?)");
  });

  it('parses as GNU getopt: --opt=value, -kVALUE, bundled flags, -- ends options', () => {
    const table = { root: { type: 'string' }, kernel: { type: 'string', short: 'k', multiple: true }, 'dry-run': { type: 'boolean', short: 'n' }, json: { type: 'boolean', short: 'j' } } as const;
    expect(parseOptions(['--root=/r', '-kA', '-k', 'B', '-nj', 'x', '--', '--json'], table)).toEqual({ values: { root: '/r', kernel: ['A', 'B'], 'dry-run': true, json: true }, positionals: ['x', '--json'] });
    // Abbreviations only where kabi imitates a getopt_long tool (depmod).
    expect(() => parseOptions(['--ro', '/r'], table)).toThrow(/unknown option '--ro' \(did you mean --root\?\)/);
    expect(parseOptions(['--ro', '/r'], table, { abbreviations: true }).values).toEqual({ root: '/r' });
  });

  it('kabi depmod keeps depmod’s status 1 for a usage error and accepts its abbreviations', async () => {
    const r = await kabi(['depmod', '--bogus']);
    expect(r.code).toBe(1);
    const { fx } = root();
    expect((await kabi(['depmod', '--basedi', fx.root, '--show', OLD])).code).toBe(0);
  });
});

describe('--version', () => {
  it('prints the version package.json holds, read from package.json (not a copy in the code)', () => {
    expect(bin(['--version'])).toMatchObject({ code: 0, out: `kabi ${PKG.version}\n` });
    // The same bundle beside another package.json prints that one's.
    const dir = mkdtempSync(join(tmpdir(), 'kabi-version-'));
    // The bin is an entry with chunks beside it (scripts/build.mjs): the directory goes together.
    cpSync(dirname(BIN), join(dir, 'dist/bin'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'kabi', version: '9.8.7-test', type: 'module' }));
    expect(bin(['--version'], {}, join(dir, 'dist/bin/kabi.js'))).toMatchObject({ code: 0, out: 'kabi 9.8.7-test\n' });
    expect(bin(['depmod', '-V'], {}, join(dir, 'dist/bin/kabi.js')).out).toMatch(/^kabi depmod 9\.8\.7-test: /);
  });
});

describe('colour', () => {
  const tty = { stdoutIsTTY: true };
  it('is on for a terminal; off for NO_COLOR, TERM=dumb or --color never; --color always wins', async () => {
    const { fx, m } = root();
    const argv = ['link', '--root', fx.root, '--add', '--dry-run', m];
    const esc = /\x1b\[/;
    expect((await kabi(argv, { ...tty, env: { TERM: 'xterm' } })).out).toMatch(esc);
    expect((await kabi(argv, { ...tty, env: { TERM: 'dumb' } })).out).not.toMatch(esc);
    expect((await kabi(argv, { ...tty, env: { NO_COLOR: '1' } })).out).not.toMatch(esc);
    expect((await kabi([...argv, '--color=never'], { ...tty, env: {} })).out).not.toMatch(esc);
    expect((await kabi(['--color', 'always', ...argv], { env: { NO_COLOR: '1' } })).out).toMatch(esc);
    expect((await kabi(argv, { env: {} })).out).not.toMatch(esc);
    expect((await kabi(['--color=sometimes', ...argv])).err).toContain("--color must be auto, always or never, not 'sometimes'");
  });

  it('never marks as good a module that will not load (built!, linked!)', () => {
    const cell = (state: Cell['state'], loads: boolean) => ({ kernel: 'k', state, file: 'f', loads, active: true, reasons: [], notes: [] }) as unknown as Cell;
    expect(cellTone(cell('built', false))).toBe('bad');
    expect(cellTone(cell('weak-linked', false))).toBe('bad');
    expect(cellTone(cell('built', true))).toBe('good');
  });
});

describe('progress', () => {
  it('inspect, check, link and depmod draw a progress line on stderr when it is a terminal, erase it, and draw nothing otherwise', async () => {
    const { fx, m } = root();
    for (const argv of [
      ['inspect', m, m, m],
      ['check', '--root', fx.root, m],
      ['link', '--root', fx.root, '--add', '--dry-run', m],
      ['depmod', '--root', fx.root, '-n', OLD],
    ]) {
      const tty = await kabi(argv, { isTTY: true });
      expect(tty.err, argv[0]).toMatch(new RegExp(`^\\rkabi ${argv[0]}: `));
      // Erased at the end: the last thing written is a blank line and a carriage return.
      expect(tty.err, argv[0]).toMatch(/\r +\r$/);
      const plain = await kabi(argv, { isTTY: false });
      expect(plain.err, argv[0]).toBe('');
      expect(plain.out, argv[0]).toBe(tty.out);
    }
  });
});

describe('kabi link', () => {
  it('--kernel changes only the kernels named; the plan lists only the steps that will run', async () => {
    const { fx, m } = root();
    const both = await kabi(['link', '--root', fx.root, '--add', '--dry-run', m]);
    expect(both.out).toContain(`${NEW} [depmod, initramfs]`);
    const none = await kabi(['link', '--root', fx.root, '--add', '--dry-run', '--no-depmod', '--no-initramfs', m]);
    expect(none.out).not.toMatch(/\[.*(depmod|initramfs)/);
    const one = await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', '-k', NEW, m]);
    expect(one.code).toBe(0);
    expect(readFileSync(fx.path(`/lib/modules/${NEW}/modules.dep`), 'utf8')).toContain('weak-updates/dkms/my-drv.ko');
    const unknown = await kabi(['link', '--root', fx.root, '--add', '--dry-run', '-k', '9.9', m]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('kernel 9.9 is not installed');
  });
});

describe('kabi inspect as modinfo', () => {
  it('-F FIELD and name lookup with -b/-k print what modinfo prints', async () => {
    const { fx, m } = root();
    execFileSync('depmod', ['-b', fx.root, OLD]);
    for (const field of ['alias', 'parm', 'name', 'vermagic', 'filename']) {
      const want = execFileSync('modinfo', ['-F', field, m], { encoding: 'utf8' });
      expect((await kabi(['inspect', '-F', field, m])).out, field).toBe(want);
    }
    for (const field of ['filename', 'parm', 'alias']) {
      const want = execFileSync('modinfo', ['-b', fx.root, '-k', OLD, '-F', field, 'my_drv'], { encoding: 'utf8' });
      expect((await kabi(['inspect', '-b', fx.root, '-k', OLD, '-F', field, 'my_drv'])).out, field).toBe(want);
    }
    // --root: the installed system's view of the same file.
    expect((await kabi(['inspect', '--root', fx.root, '-k', OLD, '-F', 'filename', 'my-drv'])).out).toBe(`/lib/modules/${OLD}/updates/dkms/my-drv.ko\n`);
    const missing = await kabi(['inspect', '--root', fx.root, '-k', OLD, 'nosuch']);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('module nosuch not found');
  });
});

describe('kabi depmod -o and -A', () => {
  it('-o writes the files elsewhere and leaves the tree alone; -A does nothing while modules.dep is current', async () => {
    const { fx } = root();
    const out = mkdtempSync(join(tmpdir(), 'kabi-depmod-o-'));
    expect((await kabi(['depmod', '-b', fx.root, '-o', out, OLD])).code).toBe(0);
    expect(() => statSync(fx.path(`/lib/modules/${OLD}/modules.dep`))).toThrow();
    const written = readFileSync(join(out, 'lib/modules', OLD, 'modules.dep'), 'utf8');
    expect(written).toContain('updates/dkms/my-drv.ko:');
    expect((await kabi(['depmod', '-b', fx.root, OLD])).code).toBe(0);
    expect(readFileSync(fx.path(`/lib/modules/${OLD}/modules.dep`), 'utf8')).toBe(written);

    const dep = fx.path(`/lib/modules/${OLD}/modules.dep`);
    const past = new Date(Date.now() + 60_000);
    utimesSync(dep, past, past);
    expect((await kabi(['depmod', '-A', '-b', fx.root, OLD])).code).toBe(0);
    expect(Math.abs(statSync(dep).mtimeMs - past.getTime())).toBeLessThan(1);
    // A module newer than modules.dep: -A runs.
    const later = new Date(Date.now() + 120_000);
    utimesSync(fx.path(`/lib/modules/${OLD}/updates/dkms/my-drv.ko`), later, later);
    expect((await kabi(['depmod', '-A', '-b', fx.root, OLD])).code).toBe(0);
    expect(Math.abs(statSync(dep).mtimeMs - past.getTime())).toBeGreaterThan(1000);
  });
});

describe('shell completion and man pages, from the option tables', () => {
  it('bash completes commands, options, choices and the kernels under --root', () => {
    const { fx } = root();
    const script = bin(['completion', 'bash']).out;
    const dir = mkdtempSync(join(tmpdir(), 'kabi-compl-'));
    writeFileSync(join(dir, 'kabi.bash'), script);
    const complete = (...words: string[]) =>
      execFileSync('bash', ['-c', `source ${dir}/kabi.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _kabi; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8', timeout: 20_000 })
        .split('\n')
        .filter(Boolean);
    expect(complete('kabi', 'li')).toEqual(['link']);
    expect(complete('kabi', 'link', '--ro')).toEqual(['--root']);
    expect(complete('kabi', 'link', '--semantics', '')).toEqual(['loader', 'depmod']);
    expect(complete('kabi', 'initramfs', '')).toEqual(['ls', 'check', 'update', 'regenerate', 'flush']);
    expect(complete('kabi', 'link', '--root', fx.root, '--add-kernel', '').sort()).toEqual([OLD, NEW]);
  });

  it('knows what the operands of every command and subcommand are', async () => {
    const models = await describeCommands(commands);
    const keys = models.flatMap((m) => (m.subcommands.length === 0 ? [m.name] : m.subcommands.map((s) => `${m.name} ${s.name}`)));
    expect(keys.filter((k) => !(k in OPERANDS))).toEqual([]);
    expect(Object.keys(OPERANDS).filter((k) => !keys.includes(k))).toEqual([]);
    // Every option a command parses with is in its model (so in its man page and completion).
    const link = models.find((m) => m.name === 'link')!;
    expect(Object.keys(link.options)).toEqual(expect.arrayContaining(['root', 'kernel', 'add', 'remove', 'add-kernel', 'remove-kernel', 'dry-run', 'depmod', 'initramfs']));
  });

  it('zsh and fish scripts parse, and fish completes the same words', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kabi-compl-'));
    writeFileSync(join(dir, '_kabi'), bin(['completion', 'zsh']).out);
    writeFileSync(join(dir, 'kabi.fish'), bin(['completion', 'fish']).out);
    execFileSync('zsh', ['-n', join(dir, '_kabi')], { timeout: 20_000 });
    const fish = execFileSync('fish', ['-c', `source ${dir}/kabi.fish; complete -C 'kabi link --sem'`], { encoding: 'utf8', timeout: 20_000 });
    expect(fish.split('\n')[0]).toMatch(/^--semantics\t/);
    expect(bin(['completion', 'tcsh'])).toMatchObject({ code: 2, err: expect.stringContaining("no completion for 'tcsh'") });
  });

  it('each command has a man page naming every option its --help parses with (dist/man, written by the build)', () => {
    for (const [cmd, options] of [
      ['link', ['--root', '--kernel', '--add', '--no-depmod', '--initramfs']],
      ['inspect', ['--field', '--basedir', '--kernel']],
      ['depmod', ['--quick', '--outdir', '--symbol-prefix', '--warn', '--version']],
      ['status', ['--root', '--kernel', '--why']],
    ] as const) {
      const page = readFileSync(new URL(`../../dist/man/kabi-${cmd}.1`, import.meta.url), 'utf8');
      expect(page).toMatch(new RegExp(`^\\.TH "?KABI-${cmd.toUpperCase()}"? 1 `, 'm'));
      for (const o of options) expect(page, `${cmd} ${o}`).toContain(`\\fB${o.replaceAll('-', '\\-')}\\fR`);
    }
    // groff reads them without a warning.
    const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', new URL('../../dist/man/kabi-link.1', import.meta.url).pathname], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
  });
});
