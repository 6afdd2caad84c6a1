import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, posix } from 'node:path';
import { maybeDecompress } from '../../native-bindings/index.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs } from '../fs.js';
import { hostPath } from '../kernel/paths.js';
import { chooseModules, scanModuleFiles, strerror, type ModuleFile, type ScanListings } from '../kernel/module-tree.js';
import { replaceFilesAtomically } from './atomic-write.js';
import { latin1Text } from './c-text.js';
import { Interner } from './interner.js';
import { computeDepmod, type DepmodMessage, type ModuleEntry } from './compute.js';
import { DEPMOD_CONFIG_DIRS, loadDepmodConfig, type DepmodConfig } from './config.js';
import { parseSymversForDepmod, parseSystemMapForDepmod, type KernelSymbols } from './kernel-symbols.js';
import { installedKmodFlavor, type KmodFlavor } from './kmod-flavor.js';
import { summarizeElf, summarizeModuleBytes, summaryFromKernelModule, unreadableSummary, type ModuleSummary } from './module-summary.js';
import { ModuleReaderPool } from '../module/reader-pool.js';
import { readModuleImage, withModulePartsSync } from './read-image.js';
import { DEPMOD_OUTPUTS, renderDepmod, type RenderedFile } from './render.js';
import { SummaryCache, CACHE_FILE, type FileIdentity } from './summary-cache.js';

/** Where depmod -E / -F read the kernel's symbols from: a host path, or the contents. */
export type KernelSymbolSource = { readonly path: string; readonly name?: string } | { readonly text: string; readonly name?: string };

/** A change to one kernel's module tree since the last run (system paths). */
export interface DepmodChange {
  readonly kind: 'added' | 'removed' | 'changed';
  /** System path of the module file or link, e.g. /lib/modules/K/weak-updates/foo.ko. */
  readonly path: string;
}

export interface DepmodOptions {
  /** The system's root on the host ("/" for this machine, an image or fixture otherwise); depmod -b. */
  readonly root: string;
  readonly release: string;
  readonly fs?: KabiFs;
  /** A ready configuration; otherwise depmod.d is read. */
  readonly config?: DepmodConfig;
  /** depmod -C: files or directories (system paths under configRoot) replacing the default depmod.d directories. */
  readonly configPaths?: readonly string[];
  /** Root the configuration is read under (default `root`; kmod 30 with -b reads the host's). */
  readonly configRoot?: string;
  /** Root the `external` directories are read under (default `root`; kmod 30 with -b reads the host's). */
  readonly externalRoot?: string;
  /** depmod -e. */
  readonly errsyms?: boolean;
  /** depmod -E: a Module.symvers (also makes -e compare CRCs). */
  readonly symvers?: KernelSymbolSource;
  /** depmod -F: a System.map (ignored when symvers is given, as in depmod). */
  readonly systemMap?: KernelSymbolSource;
  /** depmod -v. */
  readonly verbose?: boolean;
  /** depmod -n: write nothing, return the text files on stdout. */
  readonly dryRun?: boolean;
  /** false: compute and render every file (result.files) but write nothing (the cache is read, not written). */
  readonly write?: boolean;
  /** The kmod to be identical to (default: this machine's depmod --version). */
  readonly kmod?: KmodFlavor;
  /** Keep parsed module summaries in <moduleDir>/modules.kabi-cache (default true). */
  readonly cache?: boolean;
  /**
   * What changed since the previous run with the cache: only these paths' directories are
   * listed again and only new or changed files are read. Without it (or with a stale cache)
   * the tree is scanned in full and every file's identity checked against the cache.
   */
  readonly changes?: readonly DepmodChange[];
  /** How messages name the module directory (kmod's "<basedir>/lib/modules/<release>"). */
  readonly messageDir?: string;
  /** How many module files are read at once. */
  readonly concurrency?: number;
}

export interface DepmodStats {
  readonly modules: number;
  /** Module files read and parsed in this run (the rest came from the cache). */
  readonly parsed: number;
  readonly incremental: boolean;
  readonly timings: Readonly<Record<string, number>>;
}

export interface DepmodResult {
  /** depmod's exit status. */
  readonly status: 0 | 1;
  /** Everything depmod would print on stderr, in order. */
  readonly messages: readonly DepmodMessage[];
  /** What depmod would print on stdout (-v lines; with -n the text files too). */
  readonly stdout: string;
  /** Host paths of the files replaced (nothing with -n or on failure; files whose content could not have changed are left alone). */
  readonly written: readonly string[];
  /** The rendered outputs, in depmod's order. */
  readonly files: readonly RenderedFile[];
  readonly stats: DepmodStats;
}

/** "depmod: WARNING: text" as kmod prints it. */
export function formatDepmodMessage(m: DepmodMessage): string {
  return `depmod: ${m.level}: ${m.text}`;
}

class Fatal extends Error {}

/** Run depmod over one kernel's module tree (see index.ts for the contract). */
export async function runDepmod(opts: DepmodOptions): Promise<DepmodResult> {
  const fs = opts.fs ?? nodeFs;
  const root = opts.root;
  const moduleDir = `/lib/modules/${opts.release}`;
  const moduleDirHost = hostPath(root, moduleDir);
  const dirname = opts.messageDir ?? (root === '/' ? moduleDir : posix.join(root, moduleDir));
  const kmod = opts.kmod ?? installedKmodFlavor();
  const messages: DepmodMessage[] = [];
  const timings: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    timings[name] = (timings[name] ?? 0) + now - t;
    t = now;
  };
  const fatal = (text: string): never => {
    messages.push({ level: 'FATAL', text });
    throw new Fatal(text);
  };
  const result = (status: 0 | 1, extra: Partial<DepmodResult> = {}, stats: Partial<DepmodStats> = {}): DepmodResult => ({
    status,
    messages,
    stdout: '',
    written: [],
    files: [],
    stats: { modules: 0, parsed: 0, incremental: false, timings, ...stats },
    ...extra,
  });

  try {
    // 1. The kernel's symbols (-E wins over -F), as depmod loads them first.
    let kernelSymbols: KernelSymbols | undefined;
    const source = opts.symvers ?? opts.systemMap;
    if (source !== undefined) {
      const name = source.name ?? ('path' in source ? source.path : opts.symvers ? 'Module.symvers' : 'System.map');
      let text: string;
      if ('path' in source) {
        try {
          const raw = await fs.readFile(source.path);
          text = latin1Text((await maybeDecompress(raw, { file: source.path })).data);
        } catch (e) {
          if (e instanceof KabiError) throw e;
          fatal(`could not load ${name}: ${strerror(e)}\n`);
          throw e;
        }
      } else text = source.text;
      // depmod's "%m" after a bad symvers line shows the errno libkmod left when it started:
      // ENOENT when it found no modules.softdep to read in the module directory.
      const leftover = (await readOptionalBytes(fs, posix.join(moduleDirHost, 'modules.softdep')).catch(() => undefined)) === undefined ? 'No such file or directory' : 'Success';
      kernelSymbols = opts.symvers ? parseSymversForDepmod(text, name, leftover) : parseSystemMapForDepmod(text, name);
      for (const m of kernelSymbols.messages) messages.push({ level: 'ERROR', text: m });
      kernelSymbols = { ...kernelSymbols, messages: [] };
    } else if (opts.errsyms) {
      messages.push({ level: 'WARNING', text: '-e needs -E or -F\n' });
    }

    // 2. Configuration.
    const configRoot = opts.configRoot ?? root;
    const config = opts.config ?? (await loadDepmodConfig(fs, configRoot, opts.release, opts.configPaths ?? DEPMOD_CONFIG_DIRS));
    for (const m of config.messages ?? []) messages.push({ level: 'ERROR', text: m + '\n' });
    lap('config');

    // 3. The module tree.
    try {
      const st = await fs.stat(moduleDirHost);
      if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    } catch (e) {
      messages.push({ level: 'ERROR', text: `could not open directory ${dirname}: ${strerror(e)}\n` });
      fatal(`could not search modules: ${strerror(e)}\n`);
    }
    const cache = opts.cache === false || opts.dryRun ? undefined : await SummaryCache.load(fs, moduleDirHost, cacheKey(config, kmod, root, opts));
    lap('cache-load');
    const strings = cache?.strings ?? new Interner();
    const incremental = cache !== undefined && opts.changes !== undefined && cache.canTrust();
    const listings: ScanListings = new Map();
    const relisted = new Set<string>();
    const changedDirs = incremental ? dirsToReread(opts.changes!, moduleDir) : undefined;
    const files = await scanModuleFiles(fs, root, moduleDir, config, {
      extensions: kmod.extensions,
      externalRoot: opts.externalRoot ?? root,
      onMessage: (text) => messages.push({ level: 'ERROR', text: text + '\n' }),
      listings,
      relisted,
      ...(incremental && cache.listings ? { previous: cache.listings, reread: (d: string) => changedDirs!.has(d) } : {}),
    });
    const chosen = chooseModules(config, files);
    lap('scan');

    // 4. Each chosen module's summary: from the cache when its file is unchanged.
    const changedPaths = new Set((opts.changes ?? []).map((c) => c.path));
    const entries: ModuleEntry[] = [];
    let parsed = 0;
    // Decompressing is most of a cold run over a .ko.xz tree: many of them go to the module
    // reader's worker threads (one per core), when it has been built.
    const compressed = (f: ModuleFile) => /\.ko\.(xz|zst|gz)$/.test(f.host);
    const poolWorthIt = fs === nodeFs && !incremental && [...chosen.values()].filter(compressed).length > 64;
    let pool: ModuleReaderPool | null | undefined;
    const getPool = () => (pool === undefined ? (pool = (poolWorthIt && ModuleReaderPool.create()) || null) : pool);
    const work = [...chosen.values()].map((file) => async () => {
      let summary: ModuleSummary | undefined;
      // Files in directories that had to be listed again are checked like in a full run.
      if (cache !== undefined && incremental && !changedPaths.has(file.path) && !relisted.has(posix.dirname(file.path))) summary = cache.trusted(file.host);
      if (summary === undefined) {
        let id: FileIdentity | undefined;
        try {
          id = await identityOf(fs, file.host);
        } catch {
          id = undefined;
        }
        if (cache !== undefined && id !== undefined) summary = cache.get(file.host, id);
        const workers = summary === undefined && compressed(file) ? getPool() : null;
        if (summary === undefined && workers) {
          try {
            summary = summaryFromKernelModule(await workers.read(file.host), strings);
            parsed++;
            if (cache !== undefined && id !== undefined) cache.put(file.host, id, summary);
          } catch {
            // The reader is stricter than kmod: let depmod's own reading decide.
          }
        }
        if (summary === undefined) {
          summary = await readSummary(fs, file, strings);
          parsed++;
          if (cache !== undefined && id !== undefined) cache.put(file.host, id, summary);
        }
      }
      entries.push({ file, summary });
    });
    await runPool(work, opts.concurrency ?? 16);
    lap('read');

    // 5. depmod's computation.
    const modulesOrder = await readOptionalText(fs, posix.join(moduleDirHost, 'modules.order'));
    const model = computeDepmod({
      dirname,
      strings,
      modules: entries,
      modulesOrder,
      kernelSymbols,
      errsyms: opts.errsyms === true,
      verbose: opts.verbose === true,
      endian: undefined,
    });
    for (const m of model.messages) messages.push(m);
    lap('compute');
    const stats = { modules: model.modules.length, parsed, incremental };
    if (model.failed) {
      // The tree has changed but the outputs have not: keep the summaries, but never again
      // trust the listings or take `changes` as relative to this cache.
      if (cache !== undefined && opts.write !== false) await writeCache(fs, moduleDirHost, cache, listings, []);
      return result(1, { stdout: model.stdout }, stats);
    }

    // 6. The files.
    const previous = new Map<string, Uint8Array>();
    if (cache?.canTrust() && fs !== nodeFs) {
      for (const name of DEPMOD_OUTPUTS) {
        const b = await readOptionalBytes(fs, posix.join(moduleDirHost, name)).catch(() => undefined);
        if (b !== undefined) previous.set(name, b);
      }
    }
    const previousBytes = (name: string) => (fs === nodeFs ? readFileSyncOrUndefined(posix.join(moduleDirHost, name)) : previous.get(name));
    const rendered = renderDepmod(model, {
      layout: kmod.layout,
      weakdep: kmod.weakdep,
      builtin: opts.dryRun ? undefined : await readOptionalText(fs, posix.join(moduleDirHost, 'modules.builtin')),
      builtinModinfo: opts.dryRun ? undefined : await readOptionalBytes(fs, posix.join(moduleDirHost, 'modules.builtin.modinfo')),
      dirname,
      textOnly: opts.dryRun === true,
      // A file made from exactly the same inputs as last time is taken from disk as it is.
      ...(cache !== undefined && !opts.dryRun ? { reuse: (name: string, fp: string) => (cache.reusable(name, fp) ? previousBytes(name) : undefined) } : {}),
    });
    for (const m of rendered.messages) messages.push(m);
    lap('render');
    if (opts.dryRun) {
      return result(0, { stdout: model.stdout + rendered.files.map((f) => latin1Text(f.data)).join(''), files: rendered.files }, stats);
    }
    if (opts.write === false) return result(0, { stdout: model.stdout, files: rendered.files }, stats);
    const written = await replaceFilesAtomically(fs, moduleDirHost, rendered.files.filter((f) => !f.reused));
    lap('write');
    // Full runs drop strings no summary uses any more; incremental ones only append.
    if (cache !== undefined) await writeCache(fs, moduleDirHost, cache, listings, rendered.files, !incremental);
    lap('cache-write');
    return result(0, { stdout: model.stdout, written, files: rendered.files }, stats);
  } catch (e) {
    if (e instanceof Fatal) return result(1);
    throw e;
  }
}

function cacheKey(config: DepmodConfig, kmod: KmodFlavor, root: string, opts: DepmodOptions): string {
  // Anything that changes which files are found or how they are read invalidates the scan.
  return JSON.stringify({
    search: config.search,
    overrides: config.overrides,
    externals: config.externals,
    excludes: config.excludes,
    extensions: kmod.extensions,
    root,
    externalRoot: opts.externalRoot ?? root,
  });
}

/** The directories to list again for a set of changed paths: each one's parent and the parents above it. */
function dirsToReread(changes: readonly DepmodChange[], moduleDir: string): Set<string> {
  const out = new Set<string>([moduleDir]);
  for (const c of changes) {
    for (let d = posix.dirname(c.path); d !== '/' && d !== '.'; d = posix.dirname(d)) out.add(d);
  }
  return out;
}

/**
 * The cache goes after the outputs, recording their identities; if it cannot be written the
 * old one is removed, so that a stale cache is never taken for the current one.
 */
async function writeCache(fs: KabiFs, dirHost: string, cache: SummaryCache, listings: ScanListings, files: readonly RenderedFile[], compact = true): Promise<void> {
  try {
    const ids: [string, FileIdentity][] = [];
    for (const f of files) ids.push([f.name, await identityOf(fs, posix.join(dirHost, f.name))]);
    const fingerprints = files.flatMap((f): [string, string, boolean][] => (f.fingerprint !== undefined ? [[f.name, f.fingerprint, f.quiet === true]] : []));
    await replaceFilesAtomically(fs, dirHost, [{ name: CACHE_FILE, data: cache.serialize(listings, ids, fingerprints, compact) }]);
  } catch {
    try {
      await fs.unlink(posix.join(dirHost, CACHE_FILE));
    } catch {
      /* nothing to remove */
    }
  }
}

async function identityOf(fs: KabiFs, host: string): Promise<FileIdentity> {
  // Thousands of stats: the synchronous call is several times cheaper than a promise each.
  const st = fs === nodeFs ? statSync(host) : await fs.stat(host);
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, dev: st.dev };
}

async function readSummary(fs: KabiFs, file: ModuleFile, strings: Interner): Promise<ModuleSummary> {
  let bytes: Uint8Array;
  try {
    if (fs === nodeFs) {
      // Plain ELF: read only the parts depmod looks at, and summarise before the next read.
      const summary = withModulePartsSync(file.host, (image) => summarizeElf(image, strings, file.host));
      if (summary !== undefined) return summary;
    }
    bytes = await readModuleImage(fs, file.host);
  } catch (e) {
    return unreadableSummary(strerror(e));
  }
  return summarizeModuleBytes(bytes, strings, file.host);
}

function readFileSyncOrUndefined(path: string): Uint8Array | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

async function readOptionalBytes(fs: KabiFs, path: string): Promise<Uint8Array | undefined> {
  try {
    return await fs.readFile(path);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw new KabiError('IO', `cannot read: ${(e as Error).message}`, { file: path, cause: e });
  }
}

async function readOptionalText(fs: KabiFs, path: string): Promise<string | undefined> {
  const b = await readOptionalBytes(fs, path);
  return b === undefined ? undefined : latin1Text(b);
}

async function runPool(tasks: (() => Promise<void>)[], n: number): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < tasks.length) await tasks[i++]!();
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
}

/** depmod -b and -C/-E/-F paths are taken relative to the working directory. */
export function absoluteFrom(cwd: string, p: string): string {
  return isAbsolute(p) ? p : posix.join(cwd, p);
}
