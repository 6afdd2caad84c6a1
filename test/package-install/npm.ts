// npm, run the way a user runs it, on this checkout: `npm pack` and the package.json it packs.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface PackageJson {
  name: string;
  version: string;
  license: string;
  bin: Record<string, string>;
  exports: Record<string, unknown>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
}
export const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as PackageJson;

/** The environment of a user's shell: none of the npm_* variables of the `npm test` running us. */
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || /^npm_config_(cache|registry|userconfig|nodedir)$/i.test(k)));

export function run(cmd: string, args: readonly string[], cwd: string, timeoutMs = 120_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, [...args], { cwd, env: ENV, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });
}

export function must(cmd: string, args: readonly string[], cwd: string, timeoutMs?: number): string {
  const r = run(cmd, args, cwd, timeoutMs);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${r.error?.message ?? r.status ?? r.signal}\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** npm, preferring its cache (the registry is reachable; a warm cache makes it fast). */
export const npm = (args: readonly string[], cwd: string, timeoutMs = 900_000): string => must('npm', ['--no-audit', '--no-fund', '--prefer-offline', ...args], cwd, timeoutMs);

export interface Packed {
  tarball: string;
  /** Path in the package → size and mode. */
  files: Map<string, { size: number; mode: number }>;
  size: number;
  unpackedSize: number;
}

let packed: Packed | undefined;

/**
 * `npm pack` of this checkout, once per test file. dist/ is this run's build (`npm test` builds
 * first): packing with scripts would build again under the other tests' feet, so scripts are
 * off here; the git install runs `prepare` on a clean clone instead.
 */
export function pack(): Packed {
  if (packed) return packed;
  for (const f of ['dist/lib/index.js', 'dist/bin/kabi.js', 'dist/src/index.d.ts']) {
    if (!existsSync(join(REPO, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'kabi-pack-'));
  const out = JSON.parse(must('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], REPO)) as {
    filename: string;
    size: number;
    unpackedSize: number;
    files: { path: string; size: number; mode: number }[];
  }[];
  const p = out[0]!;
  packed = { tarball: join(dir, p.filename), files: new Map(p.files.map((f) => [f.path, { size: f.size, mode: f.mode }])), size: p.size, unpackedSize: p.unpackedSize };
  return packed;
}

/** Files under a directory, relative to it, `/`-separated. */
export function walk(dir: string): string[] {
  const out: string[] = [];
  const go = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) go(p);
      else out.push(relative(dir, p).split('\\').join('/'));
    }
  };
  go(dir);
  return out;
}
