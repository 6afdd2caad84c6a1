import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildModuleBytes, type FixtureModuleSpec } from '../../corpus/fixtures/module-builder.js';
import { CACHE_DIR, DEPMOD_OUTPUTS, formatDepmodMessage, runDepmod, type CacheLocation, type DepmodOptions } from '../../src/depmod/index.js';
import { installedKmodFlavor } from '../../src/depmod/kmod-flavor.js';

// Fixture module trees for depmod tests. kmod's own depmod (run with -b on a copy of the
// same tree) is the oracle: every expected output comes from it, never from this code.

export const KVER = '6.1.0-99-amd64';
export const MODDIR = `lib/modules/${KVER}`;
/** The files the installed kmod writes (it has no modules.weakdep before kmod 33). */
export const OUTPUTS = DEPMOD_OUTPUTS.filter((f) => f !== 'modules.weakdep' || installedKmodFlavor().weakdep);

export interface ModSpec {
  exports?: string[];
  needs?: (string | { name: string; weak?: boolean })[];
  aliases?: string[];
  modinfo?: [string, string][];
  /** CRC this module records for each needed symbol (default 1). */
  crcs?: Record<string, number>;
}

/** A synthetic .ko: exports get CRC 1, needed symbols are recorded in __versions with CRC 1. */
export function mod(name: string, spec: ModSpec = {}): Uint8Array {
  const needs = spec.needs ?? [];
  const names = needs.map((n) => (typeof n === 'string' ? n : n.name));
  const full: FixtureModuleSpec = {
    name,
    versions: [{ symbol: 'module_layout', crc: 1 }, ...names.map((s) => ({ symbol: s, crc: spec.crcs?.[s] ?? 1 }))],
    undefinedSymbols: needs,
    exports: (spec.exports ?? []).map((symbol) => ({ symbol, crc: 1 })),
    modinfo: [...(spec.aliases ?? []).map((a): [string, string] => ['alias', a]), ...(spec.modinfo ?? [])],
  };
  return buildModuleBytes(full);
}

export class Tree {
  readonly root: string;

  constructor(root?: string) {
    this.root = root ?? mkdtempSync(join(tmpdir(), 'kabi-depmod-'));
    mkdirSync(this.path(''), { recursive: true });
    // A system root has a /var/cache, where kabi keeps its depmod cache (a staging tree without one gets none).
    mkdirSync(join(this.root, 'var/cache'), { recursive: true });
  }

  /** Where kabi keeps this kernel's depmod cache. */
  cache(): CacheLocation {
    const dir = join(this.root, CACHE_DIR);
    return { dir, name: KVER, path: join(dir, KVER) };
  }

  cachePath(): string {
    return this.cache().path;
  }

  /** Host path of a path relative to the module directory. */
  path(rel: string): string {
    return join(this.root, MODDIR, rel);
  }

  write(rel: string, data: Uint8Array | string): this {
    const p = this.path(rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, data);
    return this;
  }

  link(rel: string, target: string): this {
    const p = this.path(rel);
    mkdirSync(dirname(p), { recursive: true });
    symlinkSync(target, p);
    return this;
  }

  remove(rel: string): this {
    rmSync(this.path(rel), { force: true, recursive: true });
    return this;
  }

  /** A copy with the same contents (cp -a keeps symlinks as they are). */
  clone(): Tree {
    const to = mkdtempSync(join(tmpdir(), 'kabi-depmod-'));
    execFileSync('cp', ['-a', `${this.root}/.`, to]);
    return new Tree(to);
  }

  outputs(): Map<string, Buffer | undefined> {
    return new Map(OUTPUTS.map((f) => [f, existsSync(this.path(f)) ? readFileSync(this.path(f)) : undefined]));
  }

  destroy(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

export interface Run {
  status: number | null;
  stdout: string;
  /** stderr with the tree's root replaced by <root>. */
  stderr: string;
  outputs: Map<string, Buffer | undefined>;
}

/** kmod's depmod -b <tree> [args] KVER. */
export function kmodDepmod(tree: Tree, args: string[] = []): Run {
  const r = spawnSync('depmod', ['-b', tree.root, ...args, KVER], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' }, timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.split(tree.root).join('<root>'), stderr: r.stderr.split(tree.root).join('<root>'), outputs: tree.outputs() };
}

/** kabi's depmod on the same kind of tree, with kmod's -b semantics (host config and externals). */
export async function kabiDepmod(tree: Tree, opts: Partial<DepmodOptions> = {}): Promise<Run> {
  const r = await runDepmod({ root: tree.root, release: KVER, configRoot: '/', externalRoot: '/', ...opts });
  const stderr = r.messages.map(formatDepmodMessage).join('');
  return { status: r.status, stdout: r.stdout.split(tree.root).join('<root>'), stderr: stderr.split(tree.root).join('<root>'), outputs: tree.outputs() };
}

/**
 * Run kmod then kabi on the same tree (so both see the same readdir order), removing
 * kmod's outputs in between, and return both results.
 */
export async function both(tree: Tree, kmodArgs: string[] = [], opts: Partial<DepmodOptions> = {}): Promise<{ kmod: Run; kabi: Run }> {
  const clear = () => {
    for (const f of OUTPUTS) rmSync(tree.path(f), { force: true });
    rmSync(tree.cachePath(), { force: true });
  };
  clear();
  const kmod = kmodDepmod(tree, kmodArgs);
  clear();
  const kabi = await kabiDepmod(tree, opts);
  return { kmod, kabi };
}

/** The differing output files of two runs (name → which side), for readable failures. */
export function outputDiff(a: Run, b: Run): string[] {
  const out: string[] = [];
  for (const f of OUTPUTS) {
    const x = a.outputs.get(f);
    const y = b.outputs.get(f);
    if (x === undefined && y === undefined) continue;
    if (x === undefined || y === undefined || !x.equals(y)) out.push(`${f}: ${x?.length ?? 'missing'} vs ${y?.length ?? 'missing'} bytes`);
  }
  return out;
}
