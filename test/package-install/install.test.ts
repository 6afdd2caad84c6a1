// kabi installed the ways users install it, into empty projects: from the `npm pack` tarball
// (what the registry would serve) with and without optional dependencies, with
// --ignore-scripts, with the optional zstd-napi; and from git, where npm runs `prepare` on a
// clean clone. Each project then uses kabi from an ES module, a CommonJS script, strict
// TypeScript (node16, bundler and nodenext resolution) and through its bins. Real npm, real
// installs: this runs with the `real` project (minutes, mostly npm and node-gyp).
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC } from '../../corpus/fixtures/system-root.js';
import { consumerScript, typedConsumer } from './consumer.js';
import { must, npm, pack, PKG, REPO, run, walk, type Packed } from './npm.js';

const TSC = join(REPO, 'node_modules/typescript/bin/tsc');
const K = '6.1.0-99-amd64';

let packed: Packed;
/** The root the consumer scripts read: one kernel, a module that loads on it (also .xz, .zst), one that does not. */
let fixture: string;

beforeAll(() => {
  packed = pack();
  const fx = makeRoot('kabi-consumer-root-');
  addKernel(fx, { release: K, vmlinux: [{ symbol: 'printk', crc: 0x11111111 }], dirs: ['extra', 'weak-updates'] });
  fixture = fx.root;
  const layout = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
  const m = fx.write('/opt/m.ko', externalModule(K, { name: 'm', versions: [layout, { symbol: 'printk', crc: 0x11111111 }], undefinedSymbols: ['printk'], exports: [{ symbol: 'm_api', crc: 5 }] }));
  fx.write('/opt/bad.ko', externalModule(K, { name: 'bad', versions: [layout, { symbol: 'printk', crc: 0xdeadbeef }], undefinedSymbols: ['printk'] }));
  must('sh', ['-c', `xz --check=crc32 -c < '${m}' > '${m}.xz' && zstd -q -c < '${m}' > '${m}.zst'`], REPO);
});

interface Consumer {
  dir: string;
  /** node_modules/<name> exists (hoisted). */
  has(name: string): boolean;
}

function emptyProject(name: string, type: 'module' | 'commonjs' = 'module'): string {
  const dir = mkdtempSync(join(tmpdir(), `kabi-consumer-${name}-`));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, version: '1.0.0', private: true, type }, null, 2));
  return dir;
}

function install(name: string, args: readonly string[], extra: readonly string[] = []): Consumer {
  const dir = emptyProject(name);
  npm(['install', ...args, packed.tarball, ...extra], dir);
  return { dir, has: (n) => existsSync(join(dir, 'node_modules', n)) };
}

/** The ESM and CommonJS scripts agree and see what the library should show. */
function usesLibrary(c: Consumer): void {
  const results = (['esm', 'cjs'] as const).map((kind) => {
    const file = join(c.dir, kind === 'esm' ? 'use-kabi.mjs' : 'use-kabi.cjs');
    writeFileSync(file, consumerScript(kind));
    return JSON.parse(must(process.execPath, [file, fixture], c.dir, 60_000)) as Record<string, unknown>;
  });
  const [esm, cjs] = results as [Record<string, unknown>, Record<string, unknown>];
  expect(esm.sameModuleForRequire).toBe(true);
  delete esm.sameModuleForRequire;
  expect(cjs).toEqual(esm);
  expect(esm).toMatchObject({
    versions: [
      { symbol: 'module_layout', crc: '0x9060323f' },
      { symbol: 'printk', crc: '0x11111111' },
    ],
    exportCrc: '0x00000005',
    compressions: ['xz', 'zstd'],
    verdicts: [
      ['m', K, true, []],
      ['bad', K, false, ['bad: disagrees about version of symbol printk']],
    ],
    junk: [true, 'ELF_FORMAT', 'junk.ko'],
    missingRoot: [true, 'ROOT_NOT_FOUND'],
  });
  expect(esm.exportNames).toEqual(expect.arrayContaining(['checkModules', 'readModuleFile', 'KabiError', 'toJsonValue', 'planAddModules']));
}

/** The bins npm linked work, and end. */
function usesBins(c: Consumer): void {
  const bin = (name: string) => join(c.dir, 'node_modules/.bin', name);
  const version = run(bin('kabi'), ['--version'], c.dir, 30_000);
  expect(version.stdout).toBe(`kabi ${PKG.version}\n`);
  const help = run(bin('kabi'), ['--help'], c.dir, 30_000);
  expect(help.status, help.stderr).toBe(0);
  expect(help.stdout).toContain('Usage: kabi <command>');
  const inspect = run(bin('kabi'), ['inspect', '--json', join(fixture, 'opt/m.ko.zst')], c.dir, 30_000);
  expect(inspect.status, inspect.stderr).toBe(0);
  expect((JSON.parse(inspect.stdout) as { versions: unknown[] }[])[0]!.versions).toContainEqual({ symbol: 'printk', crc: '0x11111111' });
  const check = run(bin('kabi'), ['check', '--root', fixture, join(fixture, 'opt/m.ko.xz')], c.dir, 60_000);
  expect(check.status, check.stderr + check.stdout).toBe(0);
  for (const name of Object.keys(PKG.bin).filter((n) => n !== 'kabi')) {
    const r = run(bin(name), ['--help'], c.dir, 30_000);
    expect(r.status, `${name} --help: ${r.stderr}`).toBe(0);
  }
}

function typechecks(c: Consumer, config: { module: string; moduleResolution: string }, files: readonly string[]): void {
  const tsconfig = `tsconfig-${config.moduleResolution}.json`;
  writeFileSync(
    join(c.dir, tsconfig),
    JSON.stringify({
      compilerOptions: {
        ...config,
        target: 'es2022',
        strict: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        noEmit: true,
        // kabi's own declaration files are checked too.
        skipLibCheck: false,
        types: ['node'],
      },
      files,
    }),
  );
  const r = run(process.execPath, [TSC, '-p', tsconfig], c.dir, 300_000);
  expect(r.stdout + r.stderr, `tsc -p ${tsconfig}`).toBe('');
  expect(r.status).toBe(0);
}

describe('installed from the tarball into an empty project', () => {
  it('with optional dependencies: library from ESM, CommonJS and strict TypeScript; bins; no @types/node', () => {
    const c = install('default', []);
    expect(c.has('kabi')).toBe(true);
    expect(c.has('lz4-napi')).toBe(true);
    // zstd-napi is an optional peer (it brings @types/node@* and a compiler run): not installed unasked.
    expect(c.has('zstd-napi')).toBe(false);
    expect(c.has('@types/node')).toBe(false);
    usesLibrary(c);
    usesBins(c);

    // TypeScript users add Node's types themselves, as for any Node library.
    npm(['install', '--save-dev', `@types/node@${devVersion('@types/node')}`], c.dir);
    writeFileSync(join(c.dir, 'typed.ts'), typedConsumer('esm'));
    writeFileSync(join(c.dir, 'typed-cjs.cts'), typedConsumer('cjs'));
    typechecks(c, { module: 'node16', moduleResolution: 'node16' }, ['typed.ts']);
    typechecks(c, { module: 'esnext', moduleResolution: 'bundler' }, ['typed.ts']);
    // require() of kabi's ES module from CommonJS: TypeScript's nodenext models Node ≥ 20.19/22.12.
    typechecks(c, { module: 'nodenext', moduleResolution: 'nodenext' }, ['typed.ts', 'typed-cjs.cts']);
  }, 900_000);

  it('without optional dependencies (--omit=optional): the same, with the JavaScript codecs', () => {
    const c = install('no-optional', ['--omit=optional']);
    expect(c.has('lz4-napi')).toBe(false);
    expect(c.has('fzstd') && c.has('xz-decompress')).toBe(true);
    usesLibrary(c);
    usesBins(c);
  }, 900_000);

  it('with --ignore-scripts: nothing of kabi needs an install script', () => {
    const c = install('ignore-scripts', ['--ignore-scripts']);
    usesLibrary(c);
    usesBins(c);
  }, 900_000);

  it('with the optional peer zstd-napi (built by its install script): kabi finds it', () => {
    const c = install('zstd-napi', [], [`zstd-napi@${devVersion('zstd-napi')}`]);
    const probe = `const { createRequire } = require('node:module'); const r = createRequire(require.resolve('kabi')); console.log(typeof r('zstd-napi/binding').DCtx);`;
    expect(must(process.execPath, ['-e', probe], c.dir).trim()).toBe('function');
    usesLibrary(c);
  }, 1_800_000);
});

describe('installed from git', () => {
  it('runs prepare on a clean clone (dev dependencies installed) and installs the same files as the tarball', () => {
    const repo = cleanCheckout();
    const c = emptyProject('git');
    npm(['install', `git+file://${repo}`], c, 1_800_000);
    const installed = walk(join(c, 'node_modules/kabi')).filter((f) => !f.startsWith('node_modules/'));
    expect(installed.sort()).toEqual([...packed.files.keys()].sort());
    const consumer = { dir: c, has: (n: string) => existsSync(join(c, 'node_modules', n)) };
    usesLibrary(consumer);
    usesBins(consumer);
  }, 1_800_000);
});

/** The version of a dev dependency this checkout uses (so npm finds it in the cache). */
function devVersion(name: string): string {
  return (JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

/** A git repository of this checkout's files as they are now (tracked and new, not ignored), one commit. */
function cleanCheckout(): string {
  const repo = mkdtempSync(join(tmpdir(), 'kabi-git-'));
  const files = must('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], REPO).split('\0').filter((f) => f !== '' && existsSync(join(REPO, f)));
  for (const f of files) {
    const dst = join(repo, f);
    mkdirSync(dirname(dst), { recursive: true });
    if (lstatSync(join(REPO, f)).isSymbolicLink()) continue;
    copyFileSync(join(REPO, f), dst);
    chmodSync(dst, statSync(join(REPO, f)).mode & 0o777);
  }
  const git = (args: string[]) => must('git', ['-c', 'user.name=kabi test', '-c', 'user.email=kabi@test.invalid', '-c', 'init.defaultBranch=main', ...args], repo);
  git(['init', '-q']);
  git(['add', '-A']);
  git(['commit', '-q', '-m', 'kabi as checked out']);
  return repo;
}
