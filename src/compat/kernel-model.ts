import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs } from '../fs.js';
import { withJsonForm } from '../json.js';
import { loadDepmodConfig, type DepmodConfig } from '../depmod/config.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { loaderConfigFrom, parseKernelConfig } from '../kernel/kconfig.js';
import { chooseModules, scanModuleFiles, type ModuleFile } from '../kernel/module-tree.js';
import { confinedPath, readSystemFile } from '../kernel/paths.js';
import { isCompressedName, readModuleFile, type KernelModule } from '../module/read-module.js';
import { ModuleReaderPool } from '../module/reader-pool.js';
import { SharedModuleValues } from '../module/shared-values.js';
import { readSymversFile } from '../symvers/read-file.js';
import { isGplOnlyExport, type SymversEntry, type SymversTable } from '../symvers/parse.js';
import { mapPool } from '../util/pool.js';
import { kmodExports } from './engine.js';
import type { KernelExport, KernelModel, MissingCrcPolicy, TreeModule } from './types.js';

/**
 * Parsed modules shared between kernels in one run (the same extra/ module is linked into
 * many). On the real filesystem, reads go to worker threads once enough are asked for to
 * pay for starting them.
 */
export class ModuleCache {
  private readonly byPath = new Map<string, Promise<KernelModule>>();
  /** Modules read together share their recurring values (a whole tree held at once is mostly these). */
  private readonly shared = new SharedModuleValues();
  private pool: ModuleReaderPool | undefined | null = null;
  private requests = 0;
  private holds = 0;
  constructor(private readonly fs: KabiFs = nodeFs) {}

  /**
   * Keep the worker threads, once started, until `release()`: a caller about to read many
   * modules with other awaits in between (a whole tree checked) would otherwise see the pool
   * end at every pause and start again, paying for new workers each time.
   */
  hold(): void {
    this.holds++;
  }

  release(): void {
    if (this.holds === 0 || --this.holds > 0) return;
    if (this.pool) this.pool.close();
    this.pool = null;
    this.requests = 0;
  }

  read(host: string): Promise<KernelModule> {
    let p = this.byPath.get(host);
    if (!p) {
      p = this.readUncached(host);
      this.byPath.set(host, p);
    }
    return p;
  }
  private readUncached(host: string): Promise<KernelModule> {
    // The pool closes itself whenever it runs idle; a later burst is counted afresh, so a
    // handful of reads never pays for starting workers again.
    if (this.pool?.closed) {
      this.pool = null;
      this.requests = 0;
    }
    // Only compressed modules go to threads: on two cores, plain .ko files are read faster
    // here than by threads whose parsed modules must then be copied over (read-batch.ts).
    if (this.fs === nodeFs && isCompressedName(host) && ++this.requests > POOL_THRESHOLD) {
      if (this.pool === null) this.pool = ModuleReaderPool.create(undefined, { held: this.holds > 0 });
      const pool = this.pool;
      // A pool closed under a read (release() meanwhile, a worker that died): read it here.
      if (pool) return pool.read(host, this.shared).catch((e: unknown) => (pool.closed && !(e instanceof KabiError) ? readModuleFile(host, { fs: this.fs, shared: this.shared }) : Promise.reject(e)));
    }
    return readModuleFile(host, { fs: this.fs, shared: this.shared });
  }
}

/** Fewer reads than this are done in-process: starting workers costs tens of milliseconds. */
const POOL_THRESHOLD = 64;

export interface KernelModelOptions {
  fs?: KabiFs;
  /** Replace the system's depmod.d (weak-modules validates with its own sandbox configuration). */
  depmodConfig?: DepmodConfig;
  /** Drop files from the tree before choosing (e.g. weak-updates links a plan removes). */
  filterFiles?: (f: ModuleFile) => boolean;
  /** Files that are not on disk yet, scanned after the real ones. */
  extraFiles?: readonly ModuleFile[];
  missingCrcPolicy?: MissingCrcPolicy;
  cache?: ModuleCache;
  /** Parse every module even when a Module.symvers could stand in for in-tree ones. */
  parseAllModules?: boolean;
  /** How many module files are read at once. */
  concurrency?: number;
}

export interface LoadedKernelModel extends KernelModel {
  readonly kernel: InstalledKernel;
  readonly depmodConfig: DepmodConfig;
  readonly files: readonly ModuleFile[];
  readonly chosen: ReadonlyMap<string, ModuleFile>;
  readonly symversTable: SymversTable | undefined;
}

const MODULE_EXT = /\.ko(\.(gz|xz|zst))?$/;

export async function loadKernelModel(kernel: InstalledKernel, opts: KernelModelOptions = {}): Promise<LoadedKernelModel> {
  const fs = opts.fs ?? nodeFs;
  const root = kernel.root;
  const cache = opts.cache ?? new ModuleCache(fs);
  const notes: string[] = [];
  const depmodConfig = opts.depmodConfig ?? (await loadDepmodConfig(fs, root, kernel.release));

  let files = await scanModuleFiles(fs, root, kernel.moduleDir, depmodConfig);
  if (opts.filterFiles) files = files.filter(opts.filterFiles);
  if (opts.extraFiles) files = [...files, ...opts.extraFiles];
  const chosen = chooseModules(depmodConfig, files);

  const symversTable = kernel.symvers ? await readSymversFile(await confinedPath(fs, root, kernel.symvers.path), { fs }) : undefined;
  const parseAll = opts.parseAllModules === true || symversTable === undefined;
  const byKbuildPath = symversTable ? groupByModulePath(symversTable) : undefined;

  const inTreeRel = (f: ModuleFile) => f.relPath !== undefined && f.relPath.startsWith('kernel/');
  const modules = new Map<string, TreeModule>();
  const work: (() => Promise<void>)[] = [];
  for (const f of chosen.values()) {
    const inTree = inTreeRel(f) && !f.isLink;
    const symLines = inTree && !parseAll ? byKbuildPath!.get(f.relPath!.slice('kernel/'.length).replace(MODULE_EXT, '')) : undefined;
    if (inTree && !parseAll) {
      const exports = (symLines ?? []).map((e) => exportFromSymvers(e, f.name));
      modules.set(f.name, {
        name: f.name,
        path: f.path,
        inTree,
        exports,
        depmodExports: exports.map((e) => ({ symbol: e.symbol, crc: e.crc ?? 0n })),
        license: undefined,
        licenseKnown: false,
        module: undefined,
      });
      continue;
    }
    work.push(async () => {
      let mod: KernelModule;
      try {
        mod = await cache.read(f.host);
      } catch (e) {
        if (e instanceof KabiError && !f.virtual) {
          notes.push(`${f.path}: unreadable, ignored (${e.detail})`);
          return;
        }
        throw e;
      }
      modules.set(f.name, {
        name: f.name,
        path: f.path,
        inTree,
        exports: mod.exports.map((e) => ({ symbol: e.symbol, crc: e.crc, gplOnly: e.gplOnly, namespace: e.namespace, owner: f.name, certain: true })),
        depmodExports: kmodExports(mod),
        license: mod.license,
        licenseKnown: true,
        module: inTree ? undefined : mod,
      });
    });
  }
  await mapPool(work, opts.concurrency ?? 16, (task) => task());

  // The kernel's own identity: any in-tree module was built with its vermagic and struct module.
  const sample = await sampleInTreeModule(fs, root, kernel, chosen, cache);
  if (!sample) notes.push('no in-tree module found: ELF class/machine, vermagic and struct module size are not checked');

  let configMap: Map<string, string> | undefined;
  if (kernel.config) {
    configMap = parseKernelConfig(new TextDecoder().decode(await readSystemFile(fs, root, kernel.config)));
  } else {
    notes.push('no kernel config: CONFIG_MODULE_FORCE_LOAD, signature enforcement and namespace switches are assumed off');
  }
  const config = loaderConfigFrom(configMap);
  const modversions = config.modversions ?? sample?.vermagic?.flagList.includes('modversions') ?? true;

  let vmlinux: Map<string, KernelExport>;
  let depmodVmlinux: Map<string, bigint>;
  if (symversTable) {
    vmlinux = new Map();
    for (const e of symversTable.entries) if (e.module === 'vmlinux') vmlinux.set(e.symbol, exportFromSymvers(e, 'vmlinux'));
    depmodVmlinux = depmodVmlinuxTable(symversTable);
  } else {
    ({ vmlinux, depmodVmlinux } = await deriveVmlinux(fs, root, kernel, modules, files, cache, notes));
  }

  return withJsonForm({
    kernel,
    release: kernel.release,
    version: parseVersion(kernel.release),
    elf: sample ? { class: sample.elf.class, endian: sample.elf.endian, machine: sample.elf.machine } : undefined,
    moduleStructSize: sample?.thisModule?.size,
    vermagic: sample?.vermagic,
    config,
    modversions,
    missingCrcPolicy: opts.missingCrcPolicy ?? (await detectMissingCrcPolicy(fs, root, config.compilerText)),
    vmlinux,
    depmodVmlinux,
    exportSource: symversTable ? 'symvers' : 'derived',
    modules,
    notes,
    depmodConfig,
    files,
    chosen,
    symversTable,
  });
}

function exportFromSymvers(e: SymversEntry, owner: string): KernelExport {
  return { symbol: e.symbol, crc: e.crc, gplOnly: isGplOnlyExport(e.exportType), namespace: e.namespace, owner, certain: true };
}

function groupByModulePath(t: SymversTable): Map<string, SymversEntry[]> {
  const out = new Map<string, SymversEntry[]>();
  for (const e of t.entries) {
    if (e.module === 'vmlinux') continue;
    const list = out.get(e.module);
    if (list) list.push(e);
    else out.set(e.module, [e]);
  }
  return out;
}

/**
 * depmod_load_symvers(): a line counts when its third non-empty space/tab-separated token is
 * `vmlinux`. In the 5.4–5.5 layout that token is the namespace whenever there is one, so
 * those files lose every namespaced kernel symbol (the bug that moved the column).
 */
export function depmodVmlinuxTable(t: SymversTable): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const e of t.entries) {
    const third = t.format === 'ns-third' ? (e.namespace ?? e.module) : e.module;
    if (third === 'vmlinux') out.set(e.symbol, e.crc);
  }
  return out;
}

export function parseVersion(release: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

async function sampleInTreeModule(
  fs: KabiFs,
  root: string,
  kernel: InstalledKernel,
  chosen: ReadonlyMap<string, ModuleFile>,
  cache: ModuleCache,
): Promise<KernelModule | undefined> {
  const candidates: ModuleFile[] = [];
  try {
    const order = new TextDecoder().decode(await readSystemFile(fs, root, `${kernel.moduleDir}/modules.order`));
    const first = order.split('\n').find((l) => l.trim() !== '');
    if (first) {
      const stem = first.trim().replace(MODULE_EXT, '');
      for (const f of chosen.values()) if (f.relPath?.replace(MODULE_EXT, '') === stem) candidates.push(f);
    }
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  for (const f of chosen.values()) if (f.relPath?.startsWith('kernel/') && !f.isLink) candidates.push(f);
  for (const f of candidates.slice(0, 8)) {
    try {
      return await cache.read(f.host);
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
    }
  }
  return undefined;
}

/**
 * Without a Module.symvers: the CRCs of vmlinux symbols that some in-tree module uses come
 * from those modules' __versions tables, and System.map (if present) says which names are
 * exported at all. GPL-only flags and namespaces of vmlinux symbols stay unknown.
 */
async function deriveVmlinux(
  fs: KabiFs,
  root: string,
  kernel: InstalledKernel,
  modules: ReadonlyMap<string, TreeModule>,
  files: readonly ModuleFile[],
  cache: ModuleCache,
  notes: string[],
): Promise<{ vmlinux: Map<string, KernelExport>; depmodVmlinux: Map<string, bigint> }> {
  notes.push('no Module.symvers: vmlinux CRCs taken from in-tree modules\' __versions; GPL-only and namespace checks of vmlinux symbols are not made');
  const moduleSymbols = new Set<string>();
  for (const m of modules.values()) for (const e of m.exports) moduleSymbols.add(e.symbol);
  const vmlinux = new Map<string, KernelExport>();
  const depmodVmlinux = new Map<string, bigint>();
  // Every in-tree file counts, including one an out-of-tree copy shadows: it was built
  // against this kernel, so its __versions are this kernel's CRCs.
  for (const f of files) {
    if (f.relPath === undefined || !f.relPath.startsWith('kernel/') || f.isLink) continue;
    const mod = await cache.read(f.host).catch(() => undefined);
    for (const v of mod?.versions ?? []) {
      if (moduleSymbols.has(v.symbol) || vmlinux.has(v.symbol)) continue;
      vmlinux.set(v.symbol, { symbol: v.symbol, crc: v.crc, gplOnly: false, namespace: undefined, owner: 'vmlinux', certain: false });
    }
  }
  if (kernel.systemMap) {
    const text = new TextDecoder().decode(await readSystemFile(fs, root, kernel.systemMap));
    for (const line of text.split('\n')) {
      const i = line.indexOf(' __ksymtab_');
      if (i < 0) continue;
      const sym = line.slice(i + ' __ksymtab_'.length).trim();
      if (sym === '' || sym === 'strings' || sym.includes(' ')) continue;
      depmodVmlinux.set(sym, 0n);
      if (!vmlinux.has(sym)) vmlinux.set(sym, { symbol: sym, crc: undefined, gplOnly: false, namespace: undefined, owner: 'vmlinux', certain: false });
    }
  } else {
    notes.push('no System.map either: kernel symbols that no in-tree module uses are unknown');
    for (const [s, e] of vmlinux) depmodVmlinux.set(s, e.crc ?? 0n);
  }
  return { vmlinux, depmodVmlinux };
}

/**
 * Debian carries a patch that makes a missing per-symbol CRC fatal. Its kernels are built
 * with Debian's compiler, which the config records; otherwise the system's os-release says.
 */
async function detectMissingCrcPolicy(fs: KabiFs, root: string, compilerText: string | undefined): Promise<MissingCrcPolicy> {
  if (compilerText !== undefined) return /\(Debian /.test(compilerText) ? 'reject' : 'warn';
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      const text = new TextDecoder().decode(await readSystemFile(fs, root, p));
      const id = /^ID=("?)([^"\n]*)\1$/m.exec(text)?.[2];
      return id === 'debian' ? 'reject' : 'warn';
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return 'warn';
}


