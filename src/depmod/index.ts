/**
 * Native depmod: kabi writes a kernel's modules.dep and module indexes itself, byte for byte
 * as kmod's depmod would (kmod 30 verified; the index layout of kmod ≥ 34 selectable).
 *
 * The entry point for the linker, weak-modules and the initramfs rewrite is updateDepmod(),
 * called once per kernel whose module tree changed:
 *
 *   const r = await updateDepmod({
 *     root: '/',                     // the system's root on the host (an image, a fixture…)
 *     release: '6.1.0-18-amd64',     // the kernel: <root>/lib/modules/<release>
 *     fs,                            // optional KabiFs (default node:fs/promises)
 *     changes: [                     // optional: what changed since the last update
 *       { kind: 'added', path: '/lib/modules/6.1.0-18-amd64/weak-updates/foo.ko' },
 *       { kind: 'removed', path: '/lib/modules/6.1.0-18-amd64/weak-updates/bar.ko' },
 *     ],
 *     errsyms: true,                 // depmod -e: report unresolved symbols
 *     symvers: { path: '/usr/src/linux-headers-6.1.0-18-amd64/Module.symvers' },  // depmod -E
 *     systemMap: { path: '/boot/System.map-6.1.0-18-amd64' },                     // depmod -F
 *   });
 *   r.status    // 0, or 1 when depmod would fail (dependency cycles; no module directory)
 *   r.written   // host paths of the files replaced
 *   r.warnings  // depmod's messages ({ level, text }); format with formatDepmodMessage()
 *
 * Paths in `symvers`/`systemMap` are host paths; depmod.d and `external` directories are read
 * under `root` (kmod 30's own depmod -b reads the host's; the CLI `kabi depmod` does that).
 *
 * What it does: scan the tree as depmod does (readdir order, depmod.d search/override/
 * external/exclude priorities), summarise each chosen module (exports, needed symbols with
 * CRCs, aliases/softdeps), resolve dependencies and order them as kmod does (kmod's hash
 * iteration order and glibc's stable qsort for modules outside modules.order), then write
 * all files beside their targets and rename them into place together: on any error nothing
 * is replaced.
 *
 * Caching: module summaries are kept in /var/cache/kabi/depmod/<release> (cache-file.ts) keyed by each file's
 * size, mtime, inode and device, so only new or changed modules are decompressed and parsed;
 * an output whose inputs digest the same as last time is left as it is. With `changes` and a
 * cache written together with the current outputs, directories are listed again only when
 * named by a change or when their own identity changed (added or removed entries), and only
 * the files named by `changes` or found in such directories are looked at; the result is
 * identical to a full run. `changes` must therefore name every module file rewritten in
 * place. A stale or foreign cache (someone else ran depmod, the configuration changed, the
 * last run failed) silently makes the run a full one.
 */

import { nodeFs } from '../fs.js';
import type { KabiFs } from '../fs.js';
import type { DepmodMessage } from './compute.js';
import type { KmodFlavor } from './kmod-flavor.js';
import { runDepmod, type DepmodChange, type DepmodOptions, type DepmodResult, type KernelSymbolSource } from './run.js';

export { runDepmod, formatDepmodMessage, type DepmodOptions, type DepmodResult, type DepmodChange, type KernelSymbolSource, type DepmodStats } from './run.js';
export { computeDepmod, allDependencies, type DepmodModel, type DepmodMessage, type ModuleEntry } from './compute.js';
export { renderDepmod, normalizeAlias, builtinAliases, DEPMOD_OUTPUTS, type RenderedFile } from './render.js';
export { IndexBuilder, IndexReader, INDEX_MAGIC, INDEX_VERSION, type IndexLayout, type IndexValue } from './index-format.js';
export { hashSuperfast, hashIterationOrder, MODULES_BUCKETS, SYMBOLS_BUCKETS, HOST_ENDIAN } from './kmod-hash.js';
export { kmodFlavor, installedKmodFlavor, parseKmodVersion, type KmodFlavor } from './kmod-flavor.js';
export { summarizeModuleBytes, summarizeElf, type ModuleSummary } from './module-summary.js';
export { parseSymversForDepmod, parseSystemMapForDepmod, type KernelSymbols } from './kernel-symbols.js';
export { replaceFilesAtomically } from './atomic-write.js';
export { CACHE_DIR, LEGACY_CACHE_FILE, cacheLocation, pruneCaches as pruneDepmodCaches, forgetCache as forgetDepmodCache, type CacheLocation } from './cache-file.js';
export { Interner } from './interner.js';
export * from './config.js';

export interface UpdateDepmodOptions {
  readonly root: string;
  readonly release: string;
  readonly fs?: KabiFs;
  readonly changes?: readonly DepmodChange[];
  readonly errsyms?: boolean;
  readonly symvers?: KernelSymbolSource;
  readonly systemMap?: KernelSymbolSource;
  /** Write for this kmod instead of the installed one. */
  readonly kmod?: KmodFlavor;
  /** Use the depmod cache, /var/cache/kabi/depmod/<release> (default true). */
  readonly cache?: boolean;
  /** Reader threads kept across several updates (see DepmodOptions.readers). */
  readonly readers?: DepmodOptions['readers'];
}

export interface UpdateDepmodResult {
  readonly status: 0 | 1;
  readonly written: readonly string[];
  readonly warnings: readonly DepmodMessage[];
  readonly stats: DepmodResult['stats'];
}

/** Bring one kernel's depmod files up to date (see the top of this file). */
export async function updateDepmod(opts: UpdateDepmodOptions): Promise<UpdateDepmodResult> {
  const r = await runDepmod({
    root: opts.root,
    release: opts.release,
    fs: opts.fs ?? nodeFs,
    ...(opts.changes ? { changes: opts.changes } : {}),
    errsyms: opts.errsyms === true,
    ...(opts.symvers ? { symvers: opts.symvers } : {}),
    ...(opts.systemMap ? { systemMap: opts.systemMap } : {}),
    ...(opts.kmod ? { kmod: opts.kmod } : {}),
    cache: opts.cache !== false,
    ...(opts.readers ? { readers: opts.readers } : {}),
  });
  return { status: r.status, written: r.written, warnings: r.messages, stats: r.stats };
}
