import { lstat, open } from 'node:fs/promises';
import { isAbsolute, posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { nodeFs, OPEN_FOR_READ } from '../fs.js';
import { confinedPath } from '../kernel/paths.js';
import { chooseModules, scanModuleFiles, scanRoots, strerror, type ModuleFile, type ScanListings } from '../kernel/module-tree.js';
import { replaceFilesAtomically } from './atomic-write.js';
import { latin1Text } from './c-text.js';
import { Interner } from './interner.js';
import { computeDepmod, modulesOrderKey, modulesOrderLines, type DepmodMessage, type ModuleEntry } from './compute.js';
import { DEPMOD_CONFIG_DIRS, loadDepmodConfig, type DepmodConfig } from './config.js';
import { incrementalRun } from './incremental.js';
import { indexTables } from './index-patch.js';
import { parseSymversForDepmod, parseSystemMapForDepmod, type KernelSymbols } from './kernel-symbols.js';
import { installedKmodFlavorSoon, type KmodFlavor } from './kmod-flavor.js';
import { HOST_ENDIAN } from './kmod-hash.js';
import { ModuleReaderPool } from '../module/reader-pool.js';
import { readerPoolOf, type DepmodReaderThreads } from './reader-threads.js';
import { readSymbolFileBytes } from '../symvers/read-file.js';
import { DEPMOD_OUTPUTS, renderDepmod, type RenderedFile } from './render.js';
import { identityKey, identityOf, readFileSyncOrUndefined, readOptionalBytes, readOptionalText } from './run-io.js';
import { emptyClock, readInBatches, type ReadClock } from './read-batch.js';
import { isCompressedName, MODULE_EXTENSIONS } from '../module/read-module.js';
import { cacheImage, cacheLocation, NO_CACHE, readCacheFrames, removeLegacyCache, saveCache as saveCacheFile, tailFrames, type CacheFileId, type CacheFrames } from './cache-file.js';
import { crc32 } from './checksum.js';
import { encodeRunState, loadRunState, nameHash, outputCrc, type Fingerprint, type OutputIdentity, type RunState } from './run-state.js';
import { fromListings, isModuleItem, itemHost, moduleFileAt, staleLinkDirs, toListings } from './scan-tree.js';
import { NO_IDENTITY, SummaryStore } from './summary-store.js';
import { readingFs } from './sync-fs.js';

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
  /**
   * Root the links inside the module tree are followed under: default `root`, as the
   * installed system sees them; "/" for `depmod -b`, which kmod follows on the host. The
   * module directory itself, and every file written, is always inside `root`.
   */
  readonly linkRoot?: string;
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
  /** Keep parsed module summaries in /var/cache/kabi/depmod/<release> under the root, when it has a /var/cache (default true). */
  readonly cache?: boolean;
  /**
   * What changed since the previous run with the cache: only these paths' directories are
   * listed again and only new or changed files are read. Without it (or with a stale cache)
   * the tree is scanned in full and every file's identity checked against the cache.
   */
  readonly changes?: readonly DepmodChange[];
  /**
   * Reader threads kept by the caller across runs (a caller refreshing several kernels keeps
   * their code warm); the run does not close them. Without it, a run starts its own threads
   * when it has enough to read, and ends them.
   */
  readonly readers?: DepmodReaderThreads;
  /** How messages name the module directory (kmod's "<basedir>/lib/modules/<release>"). */
  readonly messageDir?: string;
}

export interface DepmodStats {
  readonly modules: number;
  /** Module files read and parsed in this run (the rest came from the cache). */
  readonly parsed: number;
  readonly incremental: boolean;
  /** The outputs were patched from the previous run's (see incremental.ts), not rendered anew. */
  readonly patched: boolean;
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

/**
 * Run depmod over one kernel's module tree (see index.ts for the contract). Whatever goes
 * wrong with a cache in use (damage its checksums missed, a state that does not fit the
 * outputs, a bug in building on it) makes the run start over without it: the same outputs a
 * run with no cache gives, and a cache written anew.
 */
export async function runDepmod(opts: DepmodOptions): Promise<DepmodResult> {
  let usedCache = false;
  try {
    return await runOnce(opts, true, () => (usedCache = true));
  } catch (e) {
    if (!usedCache) throw e;
    return runOnce(opts, false, () => {});
  }
}

async function runOnce(opts: DepmodOptions, readCache: boolean, onCache: () => void): Promise<DepmodResult> {
  const fs = opts.fs ?? nodeFs;
  const root = opts.root;
  const moduleDir = `/lib/modules/${opts.release}`;
  // Found inside the root as a chroot would: lib/modules/K -> /somewhere never leads out of it.
  const moduleDirHost = await confinedPath(readingFs(fs), root, moduleDir);
  const dirname = opts.messageDir ?? (root === '/' ? moduleDir : posix.join(root, moduleDir));
  const kmod = opts.kmod ?? (await installedKmodFlavorSoon());
  const messages: DepmodMessage[] = [];
  const timings: Record<string, number> = {};
  let t = performance.now();
  // CPU time too (of the whole process, reader threads included): on a shared machine the
  // wall time of a phase says as much about the other processes as about this one.
  let cpu = process.cpuUsage();
  const lap = (name: string) => {
    const now = performance.now();
    const c = process.cpuUsage(cpu);
    timings[name] = (timings[name] ?? 0) + now - t;
    timings[`cpu.${name}`] = (timings[`cpu.${name}`] ?? 0) + (c.user + c.system) / 1000;
    t = now;
    cpu = process.cpuUsage();
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
    stats: { modules: 0, parsed: 0, incremental: false, patched: false, timings, ...stats },
    ...extra,
  });

  let frames: CacheFrames | undefined;
  let pool: ModuleReaderPool | undefined;
  const startReaders = () => (opts.readers !== undefined ? readerPoolOf(opts.readers) : ModuleReaderPool.create());
  const endReaders = () => {
    if (opts.readers === undefined) pool?.close();
    pool = undefined;
  };
  try {
    // 1. The kernel's symbols (-E wins over -F), as depmod loads them first.
    let kernelSymbols: KernelSymbols | undefined;
    const source = opts.symvers ?? opts.systemMap;
    if (source !== undefined) {
      const name = source.name ?? ('path' in source ? source.path : opts.symvers ? 'Module.symvers' : 'System.map');
      let text: string;
      if ('path' in source) {
        try {
          text = latin1Text(await readSymbolFileBytes(source.path, fs));
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
    const config = opts.config ?? (await loadDepmodConfig(readingFs(fs), configRoot, opts.release, opts.configPaths ?? DEPMOD_CONFIG_DIRS));
    for (const m of config.messages ?? []) messages.push({ level: 'ERROR', text: m + '\n' });
    lap('config');

    // 3. The module tree.
    try {
      const st = await readingFs(fs).stat(moduleDirHost);
      if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    } catch (e) {
      messages.push({ level: 'ERROR', text: `could not open directory ${dirname}: ${strerror(e)}\n` });
      fatal(`could not search modules: ${strerror(e)}\n`);
    }
    const writes = !opts.dryRun && opts.write !== false;
    if (writes) await removeLegacyCache(fs, moduleDirHost);
    const cacheAt = opts.cache === false || opts.dryRun ? undefined : await cacheLocation(readingFs(fs), root, opts.release);
    frames = cacheAt === undefined ? undefined : readCache ? await readCacheFrames(fs, cacheAt) : NO_CACHE;
    const saveCache = (whole: () => Promise<Uint8Array>, tail?: { at: number; file: CacheFileId; make: () => Promise<Uint8Array> }) => saveCacheFile(fs, root, cacheAt!, whole, tail);
    if (frames !== undefined && frames !== NO_CACHE) onCache();
    const store = frames && new SummaryStore(frames.summaries, frames.additions);
    const key = cacheKey(config, kmod, root, opts);
    const state = store && (await loadRunState(readingFs(fs), moduleDirHost, frames!.state, key, store.size));
    lap('cache-load');
    const strings = store?.strings ?? new Interner();
    const incremental = state !== undefined && opts.changes !== undefined;
    const changedDirs = incremental ? dirsToReread(opts.changes!, moduleDir) : undefined;
    const changedPaths = new Set((opts.changes ?? []).map((c) => c.path));
    // A run with nothing cached reads every module: its reader threads start while the tree
    // is scanned, when modules.order says the tree is big enough to be worth them.
    if (!incremental && fs === nodeFs && (store === undefined || store.size === 0)) {
      const order = await fs.stat(posix.join(moduleDirHost, 'modules.order')).catch(() => undefined);
      if (order !== undefined && order.size >= EARLY_POOL_ORDER_BYTES && (await orderNamesCompressed(moduleDirHost))) pool = startReaders();
    }
    const externalRoot = opts.externalRoot ?? root;
    const linkRoot = opts.linkRoot ?? root;
    const treeContext = { fs, root, moduleDir, config, extensions: kmod.extensions, externalRoot, roots: await scanRoots(fs, root, moduleDir, config, { externalRoot, linkRoot }) };
    const encodeState = async (next: RunState, files: readonly RenderedFile[]) => encodeRunState({ ...next, outputs: await identities(fs, moduleDirHost, files, state) });

    if (incremental && store !== undefined && !opts.verbose) {
      const r = await incrementalRun({
        ...treeContext,
        moduleDirHost,
        dirname,
        kmod,
        errsyms: opts.errsyms === true,
        kernelSymbols,
        store,
        state,
        reread: changedDirs!,
        lap,
      });
      if (r !== undefined) {
        for (const m of r.messages) messages.push(m);
        const stats = { modules: r.next.modules.rec.length, parsed: r.parsed, incremental, patched: true };
        if (opts.write === false) return result(0, { files: r.files }, stats);
        const changed = r.files.filter((f) => !f.reused);
        const written = changed.length > 0 ? await replaceFilesAtomically(fs, moduleDirHost, changed) : [];
        lap('write');
        // The state goes after the outputs, with the summaries parsed (or, when the file
        // cannot take more, in a whole new one, summaries renumbered in module order).
        const whole = async () => {
          const rec = r.next.modules.rec;
          const summaries = store.serialize(Array.from(rec));
          const st = await encodeState({ ...r.next, modules: { ...r.next.modules, rec: Uint32Array.from(rec, (_, i) => i) }, records: rec.length }, r.files);
          return cacheImage(summaries, st);
        };
        const at = frames!.tail;
        const file = frames!.file;
        await saveCache(whole, at !== undefined && file !== undefined ? { at, file, make: async () => tailFrames(store.additions(), await encodeState(r.next, r.files)) } : undefined);
        lap('cache-write');
        return result(0, { written, files: r.files }, stats);
      }
    }

    const listings: ScanListings = new Map();
    const relisted = new Set<string>();
    if (incremental) {
      const recOfItem = new Map<number, number>();
      state.modules.item.forEach((x, j) => recOfItem.set(x, state.modules.rec[j]!));
      const stale = await staleLinkDirs(state.tree, treeContext, (x) => {
        const rec = recOfItem.get(x);
        return rec === undefined ? undefined : store!.identity(rec);
      });
      stale.forEach((s, d) => s && changedDirs!.add(state.tree.dirPath.get(d)));
    }
    const files = await scanModuleFiles(fs, root, moduleDir, config, {
      extensions: kmod.extensions,
      roots: treeContext.roots,
      onMessage: (text) => messages.push({ level: 'ERROR', text: text + '\n' }),
      listings,
      relisted,
      ...(incremental ? { previous: toListings(state.tree), reread: (d: string) => changedDirs!.has(d) } : {}),
    });
    const chosen = chooseModules(config, files);
    lap('scan');

    // 4. Each chosen module's summary: from the cache when its file is unchanged.
    const entries: ModuleEntry[] = [];
    const recOf = new Map<ModuleFile, number>();
    let parsed = 0;
    // What the state vouches for: module files unchanged since it was written.
    // Not links: where they lead changes without their directory changing.
    const vouched = new Map<string, number>();
    if (incremental) state.modules.item.forEach((x, j) => !moduleFileAt(state.tree, x, moduleDir).isLink && vouched.set(itemHost(state.tree, x), state.modules.rec[j]!));
    const toRead: ModuleFile[] = [];
    for (const file of chosen.values()) {
      let rec: number | undefined;
      // Files in directories that had to be listed again are checked like in a full run.
      if (incremental && !changedPaths.has(file.path) && !relisted.has(posix.dirname(file.path))) rec = vouched.get(file.host);
      if (rec === undefined && store !== undefined && store.size > 0) {
        try {
          rec = store.find(file.host, await identityOf(fs, file.host));
        } catch {
          /* read below, which says what kmod makes of it */
        }
      }
      if (rec === undefined) toRead.push(file);
      else {
        recOf.set(file, rec);
        entries.push({ file, summary: store!.summary(rec) });
      }
    }
    if (pool === undefined && fs === nodeFs && toRead.filter((f) => isCompressedName(f.path)).length > POOL_THRESHOLD) pool = startReaders();
    const clock: ReadClock = { ...emptyClock(), mergeMs: 0, threads: 0 };
    await readInBatches(fs, toRead, strings, pool, (file, { id, summary }) => {
      parsed++;
      if (store !== undefined) recOf.set(file, store.add(file.host, id ?? NO_IDENTITY, summary));
      entries.push({ file, summary });
    }, clock);
    endReaders();
    for (const [k, v] of Object.entries(clock)) timings[`read.${k}`] = v;
    if (store?.damage !== undefined) throw store.damage;
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
    const summaries = () => store!.serialize(model.modules.map((m) => recOf.get(m.file)!));
    if (model.failed) {
      // The tree has changed but the outputs have not: keep the summaries, but no state.
      if (store !== undefined && opts.write !== false) await saveCache(async () => cacheImage(summaries(), undefined));
      return result(1, { stdout: model.stdout }, stats);
    }

    // 6. The files.
    const previous = new Map<string, Uint8Array>();
    if (state !== undefined && fs !== nodeFs) {
      for (const name of DEPMOD_OUTPUTS) {
        const b = await readOptionalBytes(fs, posix.join(moduleDirHost, name)).catch(() => undefined);
        if (b !== undefined) previous.set(name, b);
      }
    }
    const previousBytes = (name: string) => (fs === nodeFs ? readFileSyncOrUndefined(posix.join(moduleDirHost, name)) : previous.get(name));
    // Only bytes that are still what the state says were written (not zeros a crash left).
    const reusable = (name: string, fp: string) => state?.fingerprints.some(([n, f, quiet]) => n === name && f === fp && quiet) === true;
    const verified = (name: string, b: Uint8Array | undefined) => (b !== undefined && crc32(b) === outputCrc(state!, name) ? b : undefined);
    const rendered = renderDepmod(model, {
      layout: kmod.layout,
      weakdep: kmod.weakdep,
      builtin: opts.dryRun ? undefined : await readOptionalText(fs, posix.join(moduleDirHost, 'modules.builtin')),
      builtinModinfo: opts.dryRun ? undefined : await readOptionalBytes(fs, posix.join(moduleDirHost, 'modules.builtin.modinfo')),
      dirname,
      textOnly: opts.dryRun === true,
      recordParts: store !== undefined,
      // A file made from exactly the same inputs as last time is taken from disk as it is.
      ...(store !== undefined && !opts.dryRun ? { reuse: (name: string, fp: string) => (reusable(name, fp) ? verified(name, previousBytes(name)) : undefined) } : {}),
    });
    for (const m of rendered.messages) messages.push(m);
    lap('render');
    if (opts.dryRun) {
      return result(0, { stdout: model.stdout + rendered.files.map((f) => latin1Text(f.data)).join(''), files: rendered.files }, stats);
    }
    if (opts.write === false) return result(0, { stdout: model.stdout, files: rendered.files }, stats);
    const written = await replaceFilesAtomically(fs, moduleDirHost, rendered.files.filter((f) => !f.reused));
    lap('write');
    if (store !== undefined) {
      const order = modulesOrder === undefined ? undefined : modulesOrderLines(modulesOrder, dirname, () => {});
      const orderId = order === undefined ? undefined : await identityOf(fs, posix.join(moduleDirHost, 'modules.order')).catch(() => undefined);
      const parts = rendered.parts!;
      const mods = model.modules;
      await saveCache(async () => {
        // Without a usable modules.order an incremental run could not place modules: no state.
        if (order === undefined || orderId === undefined) return cacheImage(summaries(), undefined);
        const tree = fromListings(listings, treeContext);
        const itemOf = new Map<string, number>();
        for (let x = 0; x < tree.itemFlags.length; x++) if (isModuleItem(tree, x)) itemOf.set(moduleFileAt(tree, x, moduleDir).path, x);
        const item = Uint32Array.from(mods, (m) => itemOf.get(m.file.path)!);
        const chosenItems = new Set(item);
        const st = await encodeState(
          {
            key,
            records: mods.length,
            outputs: [],
            order: identityKey(orderId),
            fingerprints: rendered.files.flatMap((f): Fingerprint[] => (f.fingerprint !== undefined ? [[f.name, f.fingerprint, f.quiet === true]] : [])),
            tree,
            modules: {
              item,
              rec: Uint32Array.from(mods, (_, i) => i),
              line: Int32Array.from(mods, (m) => order.get(modulesOrderKey(m.file) ?? '') ?? -1),
              nameHash: Uint32Array.from(mods, (m) => nameHash(m.name)),
              ...flatLists(mods.map((m) => m.needed)),
              closureOff: parts.closureOff,
              closure: parts.closure,
              losers: Uint32Array.from([...itemOf.values()].filter((x) => !chosenItems.has(x))).sort(),
            },
            segments: parts.segments,
            tables: new Map(INDEX_FILES.map((f) => [f, indexTables(rendered.files.find((r) => r.name === f)!.data)])),
            moduleMessages: parts.moduleMessages,
          },
          rendered.files,
        );
        return cacheImage(summaries(), st);
      });
    }
    lap('cache-write');
    return result(0, { stdout: model.stdout, written, files: rendered.files }, stats);
  } catch (e) {
    if (e instanceof Fatal) return result(1);
    throw e;
  } finally {
    frames?.close();
    endReaders();
  }
}

function cacheKey(config: DepmodConfig, kmod: KmodFlavor, root: string, opts: DepmodOptions): string {
  // Anything that changes which files are found, how they are read or how the outputs are
  // laid out invalidates the state.
  return JSON.stringify({
    search: config.search,
    overrides: config.overrides,
    externals: config.externals,
    excludes: config.excludes,
    extensions: kmod.extensions,
    layout: kmod.layout,
    weakdep: kmod.weakdep,
    endian: HOST_ENDIAN,
    root,
    externalRoot: opts.externalRoot ?? root,
    linkRoot: opts.linkRoot ?? root,
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

/** The indexes an incremental run patches. */
const INDEX_FILES = ['modules.dep.bin', 'modules.alias.bin', 'modules.symbols.bin'];

/** Lists as one array and where each starts: deps[depOff[i], depOff[i + 1]). */
function flatLists(lists: readonly (readonly number[])[]): { depOff: Uint32Array; deps: Uint32Array } {
  const depOff = new Uint32Array(lists.length + 1);
  lists.forEach((l, i) => (depOff[i + 1] = depOff[i]! + l.length));
  return { depOff, deps: Uint32Array.from(lists.flat()) };
}

/** The outputs as the state records them; a file left as it was keeps the CRC it had (its bytes are not read for it). */
async function identities(fs: KabiFs, dirHost: string, files: readonly RenderedFile[], previous: RunState | undefined): Promise<OutputIdentity[]> {
  const out: OutputIdentity[] = [];
  for (const f of files) {
    const id = await identityOf(fs, posix.join(dirHost, f.name));
    const crc = (f.reused && previous !== undefined ? outputCrc(previous, f.name) : undefined) ?? crc32(f.data);
    out.push([f.name, identityKey(id), crc]);
  }
  return out;
}

/** Fewer module files than this to read are read in-process: starting threads costs tens of milliseconds. */
const POOL_THRESHOLD = 64;
/** A modules.order this big (some hundred modules) starts the reader threads before the scan. */
const EARLY_POOL_ORDER_BYTES = 8192;

/**
 * Whether the tree's modules are compressed, judged by the first module modules.order names
 * (which lists them as .ko) being there compressed: reader threads only pay for decoding
 * (readInBatches), and starting them for a tree of .ko files would take the cores the scan
 * runs on. When in doubt, no: the threads still start after the scan if there is decoding.
 */
async function orderNamesCompressed(moduleDirHost: string): Promise<boolean> {
  try {
    const head = Buffer.alloc(512);
    const h = await open(posix.join(moduleDirHost, 'modules.order'), OPEN_FOR_READ);
    let n: number;
    try {
      n = (await h.read(head, 0, head.length, 0)).bytesRead;
    } finally {
      await h.close();
    }
    const first = head.toString('latin1', 0, n).split('\n')[0]!.trim();
    if (!first.endsWith('.ko') || first.includes('..')) return false;
    for (const ext of MODULE_EXTENSIONS) {
      if (isCompressedName(ext) && (await lstat(posix.join(moduleDirHost, first.slice(0, -'.ko'.length) + ext)).then(() => true, () => false))) return true;
    }
    return false;
  } catch {
    return false;
  }
}

/** depmod -b and -C/-E/-F paths are taken relative to the working directory. */
export function absoluteFrom(cwd: string, p: string): string {
  return isAbsolute(p) ? p : posix.join(cwd, p);
}
