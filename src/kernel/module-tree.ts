import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { opendirSync, statSync, type BigIntStats } from 'node:fs';
import { errnoCode, isNotFound, nodeFs } from '../fs.js';
import type { DepmodConfig } from '../depmod/config.js';
import { MODULE_EXTENSIONS, moduleNameFromPath } from '../module/read-module.js';
import { confinedPath, resolveEntryInRoot } from './paths.js';
import { readingFs } from '../depmod/sync-fs.js';

export interface ModuleFile {
  /** kmod's module name: basename up to the first '.', '-' folded to '_'. */
  readonly name: string;
  /** System path, e.g. /lib/modules/K/kernel/fs/foo.ko.xz (the link's own path for a symlink). */
  readonly path: string;
  /** Path relative to the kernel's module directory; undefined for files in `external` directories. */
  readonly relPath: string | undefined;
  /** Where the bytes are, on the host: the link target for a symlink. */
  readonly host: string;
  readonly isLink: boolean;
  /** Found in an `external` directory of depmod.d. */
  readonly external: boolean;
  /** Not on disk: a file kabi is considering adding (a planned weak-updates link, a candidate). */
  readonly virtual?: boolean;
}

export interface ModuleTree {
  /** System path of the kernel's module directory. */
  readonly moduleDir: string;
  /** Every module file, in the order depmod would scan them. */
  readonly files: readonly ModuleFile[];
  /** The file modprobe would load for each module name. */
  readonly chosen: ReadonlyMap<string, ModuleFile>;
}

/** One entry of a directory listing as depmod classifies it (symlinks followed). */
export interface ScannedEntry {
  readonly name: string;
  /** 'skipped': depmod could not stat it (a dangling link…) and says so in `host`'s place. */
  readonly kind: 'file' | 'dir' | 'skipped';
  readonly isLink: boolean;
  /** Host path of the entry's contents (the final target for a symlink); for 'skipped', depmod's message. */
  readonly host: string;
}

export interface DirListing {
  readonly entries: readonly ScannedEntry[];
  /** The directory's identity when read (inode, mtime in ns, size): adding or removing an entry changes it. */
  readonly stamp: string;
}

/**
 * The directory listings a scan read, keyed by the directory's system path as reached (through
 * links, if any). A later scan reuses a listing whose directory still has the same stamp.
 */
export type ScanListings = Map<string, DirListing>;

export interface ScanOptions {
  /** Module file extensions the kmod build recognises (Debian's kmod 30 has no .ko.gz). */
  readonly extensions?: readonly string[];
  /** Root the `external` directories are read under; kmod 30 reads them on the host even with -b. */
  readonly externalRoot?: string;
  /**
   * Root the links inside the module directory are followed under (default: the root, as the
   * installed system sees them); "/" for kmod's `depmod -b`, which follows them on the host.
   * The module directory itself is always found inside the root.
   */
  readonly linkRoot?: string;
  /** Where each walk starts (scanRoots()), when the caller has already resolved them. */
  readonly roots?: readonly ScanRoot[];
  /** depmod's messages about entries it skipped ("fstatat(4, x.ko): No such file or directory"). */
  readonly onMessage?: (message: string) => void;
  /**
   * Listings of an earlier scan, reused for every directory whose stamp has not changed,
   * except those `reread` names (the caller knows they changed).
   */
  readonly previous?: ScanListings;
  readonly reread?: (sysDir: string) => boolean;
  /** Filled with every listing this scan used. */
  readonly listings?: ScanListings;
  /** Filled with the directories actually read (not reused from `previous`). */
  readonly relisted?: Set<string>;
}

/** Never descended into, as in kmod: build/source point back at kernel sources. */
const SKIP = new Set(['.', '..', 'build', 'source']);
export const MAX_DEPTH = 32;

/**
 * What one scan may list (README "Limits"): a Debian 6.1 or 6.12 kernel's tree has about 900
 * directories and 5,000 entries. A loop is skipped where it closes (see followEntry); these
 * stop the rest, e.g. links fanning out to the same directories over and over, in bounded
 * time and memory.
 */
export const SCAN_LIMITS = { directories: 8_192, entries: 131_072 } as const;

interface RawEntry {
  readonly name: string;
  readonly isDir: boolean;
  readonly isFile: boolean;
  readonly isLink: boolean;
}

/** What following a link found: where it leads and what is there, or why it could not be followed. */
type Followed = { readonly target: string; readonly stat: BigIntStats } | { readonly why: string };

/**
 * One scan's use of SCAN_LIMITS, shared by every listing of the scan, and what the scan has
 * read from disk: a directory reached by several paths (links to it) is read once and each
 * link followed once, so that the cost of many paths is counted against the limits, not paid
 * in system calls.
 */
export class ScanBudget {
  private directories = 0;
  private entries = 0;
  readonly reads = new Map<string, { readonly stamp: bigint[]; readonly raw: readonly RawEntry[] }>();
  readonly follows = new Map<string, Followed>();
  constructor(private readonly where: string) {}

  directory(): void {
    if (++this.directories > SCAN_LIMITS.directories) throw this.over(`${SCAN_LIMITS.directories} directories`);
  }

  entry(n = 1): void {
    this.entries += n;
    if (this.entries > SCAN_LIMITS.entries) throw this.over(`${SCAN_LIMITS.entries} directory entries`);
  }

  private over(what: string): KabiError {
    return new KabiError('LIMIT', `the module tree holds more than the limit of ${what} for one scan (symbolic links leading to the same directories over and over?)`, { file: this.where });
  }
}

/** Where a scan of one kernel's modules starts: the module directory, then each `external` directory. */
export interface ScanRoot {
  /** System path, as messages and module paths spell it. */
  readonly path: string;
  /** Host path, resolved inside its root. */
  readonly host: string;
  readonly external: boolean;
  /** Root the links below it are followed under. */
  readonly linkRoot: string;
}

/**
 * The walks of a scan, in depmod's order: the module directory, found inside the root as a
 * chroot would (a link such as lib/modules/K -> /usr/lib/modules/K never leads out of it),
 * then the `external` directories, last configured first, found under `externalRoot`.
 */
export async function scanRoots(fs: KabiFs, root: string, moduleDir: string, config: DepmodConfig, opts: Pick<ScanOptions, 'externalRoot' | 'linkRoot'> = {}): Promise<ScanRoot[]> {
  const extRoot = opts.externalRoot ?? root;
  const rfs = readingFs(fs);
  const out: ScanRoot[] = [{ path: moduleDir, host: await confinedPath(rfs, root, moduleDir), external: false, linkRoot: opts.linkRoot ?? root }];
  for (const ext of [...config.externals].reverse()) out.push({ path: ext, host: await confinedPath(rfs, extRoot, ext), external: true, linkRoot: extRoot });
  return out;
}

/** How listDirectory follows and counts what it lists. */
export interface ListContext {
  /** Root links are followed under. */
  readonly linkRoot: string;
  readonly exclude: ReadonlySet<string>;
  /** Host paths of the directories from the walk's start down to this one: a link back to one of them is a loop. */
  readonly above: readonly string[];
  readonly budget?: ScanBudget;
}

/** strerror() texts for the errno codes a scan meets. */
export function strerror(e: unknown): string {
  // kabi's own refusals (a special file, a budget) already say what and why.
  if (e instanceof KabiError) return e.detail;
  switch (errnoCode(e)) {
    case 'ENOENT':
      return 'No such file or directory';
    case 'ENOTDIR':
      return 'Not a directory';
    case 'EACCES':
      return 'Permission denied';
    case 'ELOOP':
      return 'Too many levels of symbolic links';
    case 'EIO':
      return 'Input/output error';
    case 'ENOSPC':
      return 'No space left on device';
    case 'EROFS':
      return 'Read-only file system';
    case 'EPERM':
      return 'Operation not permitted';
    case 'EEXIST':
      return 'File exists';
    case 'EISDIR':
      return 'Is a directory';
    default:
      return (e as Error)?.message ?? String(e);
  }
}

/** `dir`/`name`, for a `dir` that may be the root. */
export const childPath = (dir: string, name: string) => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);

/**
 * A directory's identity: inode, ctime, size. The ctime, not the mtime: both move when an
 * entry comes or goes, but only the mtime can be put back (touch -r, rsync -t, tar), and then
 * a listing that changed would look unchanged.
 */
export async function directoryStamp(fs: KabiFs, host: string): Promise<[bigint, bigint, bigint]> {
  const st = fs === nodeFs ? statSync(host, { bigint: true }) : await fs.stat(host, { bigint: true });
  return [st.ino, st.ctimeNs, st.size];
}

/**
 * One directory as scanModuleFiles lists it: its stamp, then its entries in raw readdir
 * order, `.`, `..`, build, source and excluded names left out, symlinks followed within
 * `ctx.linkRoot`; undefined when it is gone.
 */
export async function listDirectory(fs: KabiFs, sysDir: string, hostDir: string, depth: number, ctx: ListContext): Promise<{ stamp: bigint[]; entries: ScannedEntry[] } | undefined> {
  const budget = ctx.budget;
  budget?.directory();
  let read = budget?.reads.get(hostDir);
  if (read !== undefined) budget!.entry(read.raw.length);
  else {
    read = await readDirectory(fs, hostDir, budget);
    if (read === undefined) return undefined;
    budget?.reads.set(hostDir, read);
  }
  const entries: ScannedEntry[] = [];
  for (const de of read.raw) {
    if (SKIP.has(de.name) || ctx.exclude.has(de.name)) continue;
    if (de.isFile || de.isDir) {
      entries.push({ name: de.name, kind: de.isDir ? 'dir' : 'file', isLink: false, host: childPath(hostDir, de.name) });
      continue;
    }
    // A symlink (or a file system without d_type): depmod stats it, following links.
    entries.push((await followEntry(fs, sysDir, hostDir, depth, ctx, de.name, de.isLink)).entry);
  }
  return { stamp: read.stamp, entries };
}

/** A directory's stamp and its entries in raw readdir order; undefined when it is gone. */
async function readDirectory(fs: KabiFs, hostDir: string, budget: ScanBudget | undefined): Promise<{ stamp: bigint[]; raw: RawEntry[] } | undefined> {
  const count = budget ? () => budget.entry() : () => {};
  let stamp: bigint[];
  const raw: RawEntry[] = [];
  try {
    stamp = await directoryStamp(fs, hostDir);
    // fs.readdir sorts (libuv scandir); opendir keeps the kernel's readdir order, like depmod.
    if (fs === nodeFs) {
      // The synchronous calls cost a tenth of the promise round trips for thousands of entries.
      const d = opendirSync(hostDir, { bufferSize: 256 });
      try {
        for (let de = d.readSync(); de !== null; de = d.readSync()) {
          count();
          raw.push({ name: de.name, isDir: de.isDirectory(), isFile: de.isFile(), isLink: de.isSymbolicLink() });
        }
      } finally {
        d.closeSync();
      }
    } else {
      const d = await fs.opendir(hostDir, { bufferSize: 256 });
      for await (const de of d) {
        count();
        raw.push({ name: de.name, isDir: de.isDirectory(), isFile: de.isFile(), isLink: de.isSymbolicLink() });
      }
    }
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  return { stamp, raw };
}

/**
 * An entry that is a link (or of unknown type) as depmod's fstatat() sees it, and the stat of
 * what it leads to. A link to a directory the walk is inside (`extra/loop -> .`) is skipped
 * with a message: depmod would descend into it until the path grew too long, and two such
 * links make that exponential.
 */
export async function followEntry(fs: KabiFs, sysDir: string, hostDir: string, depth: number, ctx: Pick<ListContext, 'linkRoot' | 'above' | 'budget'>, name: string, isLink: boolean): Promise<{ entry: ScannedEntry; stat?: BigIntStats }> {
  const key = `${hostDir}\0${name}`;
  let f = ctx.budget?.follows.get(key);
  if (f === undefined) {
    f = await follow(fs, ctx.linkRoot, hostDir, name, isLink);
    ctx.budget?.follows.set(key, f);
  }
  if ('why' in f) return { entry: { name, kind: 'skipped', isLink, host: `fstatat(${3 + depth}, ${name}): ${f.why}` } };
  const { target, stat: s } = f;
  if (s.isDirectory() && ctx.above.includes(target)) {
    return { entry: { name, kind: 'skipped', isLink, host: `not scanning ${posix.join(sysDir, name)}: a symbolic link loop (it leads back to a directory above it)` }, stat: s };
  }
  if (s.isFile() || s.isDirectory()) return { entry: { name, kind: s.isDirectory() ? 'dir' : 'file', isLink, host: target }, stat: s };
  return { entry: { name, kind: 'skipped', isLink, host: `unsupported file type ${posix.join(sysDir, name)}: ${(Number(s.mode) & 0o170000).toString(8)}` } };
}

async function follow(fs: KabiFs, linkRoot: string, hostDir: string, name: string, isLink: boolean): Promise<Followed> {
  const rfs = readingFs(fs);
  try {
    const target = isLink ? await resolveEntryInRoot(rfs, linkRoot, hostDir, name) : childPath(hostDir, name);
    if (target === undefined) throw Object.assign(new Error('dangling symlink'), { code: 'ENOENT' });
    return { target, stat: await rfs.stat(target, { bigint: true }) };
  } catch (e) {
    return { why: e instanceof KabiError ? (e.code === 'UNSAFE_PATH' ? 'Too many levels of symbolic links' : e.detail) : strerror(e) };
  }
}

/**
 * List the module files of one kernel as depmod scans them: the module directory
 * recursively in raw readdir order (ties between equally ranked files go to the first one
 * scanned, so the order matters), then each `external` directory, last configured first.
 * Skipped at any depth: `.`, `..`, `build`, `source` and every `exclude`d name. Symlinks are
 * followed inside the root only; a dangling one is reported and skipped, as depmod's
 * fstatat() fails on it. A name ending in a module extension that is a directory is
 * descended into, not taken as a module (kmod looks at the file type first).
 */
export async function scanModuleFiles(fs: KabiFs, root: string, moduleDir: string, config: DepmodConfig, opts: ScanOptions = {}): Promise<ModuleFile[]> {
  const out: ModuleFile[] = [];
  const exclude = new Set(config.excludes);
  const extensions = opts.extensions ?? MODULE_EXTENSIONS;
  const isModule = (name: string) => extensions.some((ext) => name.endsWith(ext));

  const budget = new ScanBudget(moduleDir);
  const list = async (sysDir: string, hostDir: string, depth: number, linkRoot: string, above: readonly string[]): Promise<DirListing | undefined> => {
    const cached = opts.previous?.get(sysDir);
    if (cached !== undefined && !opts.reread?.(sysDir)) {
      try {
        if (cached.stamp === (await directoryStamp(fs, hostDir)).join(':')) return cached;
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    }
    const listing = await listDirectory(fs, sysDir, hostDir, depth, { linkRoot, exclude, above, budget });
    if (listing === undefined) return undefined;
    opts.relisted?.add(sysDir);
    return { entries: listing.entries, stamp: listing.stamp.join(':') };
  };

  const walk = async (sysDir: string, hostDir: string, rel: string, external: boolean, depth: number, linkRoot: string, above: readonly string[]): Promise<boolean> => {
    if (depth > MAX_DEPTH) return true;
    const here = [...above, hostDir];
    const listing = await list(sysDir, hostDir, depth, linkRoot, here);
    if (listing === undefined) return false;
    opts.listings?.set(sysDir, listing);
    // Messages come in entry order, interleaved with what the subdirectories report, as in depmod.
    for (const e of listing.entries) {
      const sysPath = sysDir.endsWith('/') ? sysDir + e.name : `${sysDir}/${e.name}`;
      const relPath = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.kind === 'skipped') opts.onMessage?.(e.host);
      else if (e.kind === 'dir') await walk(sysPath, e.host, relPath, external, depth + 1, linkRoot, here);
      else if (isModule(e.name)) {
        out.push({ name: moduleNameFromPath(e.name), path: sysPath, relPath: external ? undefined : relPath, host: e.host, isLink: e.isLink, external });
      }
    }
    return true;
  };

  // A kernel without a module directory simply has no modules (depmod's caller checks it exists).
  for (const r of opts.roots ?? (await scanRoots(fs, root, moduleDir, config, opts))) {
    if (!(await walk(r.path, r.host, '', r.external, 0, r.linkRoot, [])) && r.external) opts.onMessage?.(`could not open directory ${r.path}: No such file or directory`);
  }
  return out;
}

/**
 * kmod's depmod_module_is_higher_priority(): does the module already chosen (`old`) beat
 * `candidate`? Overrides first (last configured tried first), then the search list; a file
 * matching no search entry ranks as built-in; on a tie the earlier file stays.
 */
export function keepsPriority(config: DepmodConfig, old: ModuleFile, candidate: ModuleFile): boolean {
  // kmod compares "<dir>/<as many characters of the file name as the module name has>".
  const trunc = (f: ModuleFile) => (f.relPath === undefined ? undefined : posix.join(posix.dirname(f.relPath), posix.basename(f.relPath).slice(0, f.name.length)));
  const relNew = trunc(candidate);
  const relOld = trunc(old);
  for (let k = config.overrides.length - 1; k >= 0; k--) {
    const ov = config.overrides[k]!;
    const p = `${ov.subdir}/${ov.modname}`;
    if (relNew === p) return false;
    if (relOld === p) return true;
  }
  // kmod keeps the search list in reverse (it prepends), so a higher index means a higher rank.
  let bprio = -1;
  let oldprio = -1;
  let newprio = -1;
  let i = 0;
  const under = (rel: string | undefined, dir: string) => rel !== undefined && rel.length > dir.length && rel.startsWith(dir) && rel[dir.length] === '/';
  for (let s = config.search.length - 1; s >= 0; s--) {
    const se = config.search[s]!;
    if (se.kind === 'built-in') {
      bprio = i++;
    } else if (se.kind === 'external') {
      // kmod tests the path, not where the file was found: an external directory inside the
      // module directory ranks its files the same either way.
      for (let x = config.externals.length - 1; x >= 0; x--) {
        const ext = config.externals[x]!;
        if (candidate.path.startsWith(ext + '/')) newprio = i;
        if (old.path.startsWith(ext + '/')) oldprio = i;
        i++;
      }
    } else {
      // else-if, as in kmod: when both files lie under the same directory only the new one is ranked.
      if (under(relNew, se.path)) newprio = i;
      else if (under(relOld, se.path)) oldprio = i;
      i++;
    }
  }
  if (newprio < 0) newprio = bprio;
  if (oldprio < 0) oldprio = bprio;
  return newprio <= oldprio;
}

/** The winner per module name, taking files in scan order (pure). */
export function chooseModules(config: DepmodConfig, files: Iterable<ModuleFile>): Map<string, ModuleFile> {
  const chosen = new Map<string, ModuleFile>();
  for (const f of files) {
    const old = chosen.get(f.name);
    if (old === undefined || !keepsPriority(config, old, f)) {
      if (old !== undefined) chosen.delete(f.name); // depmod deletes and re-adds: the winner moves to the end
      chosen.set(f.name, f);
    }
  }
  return chosen;
}

export async function scanModuleTree(fs: KabiFs, root: string, moduleDir: string, config: DepmodConfig, opts: ScanOptions = {}): Promise<ModuleTree> {
  const files = await scanModuleFiles(fs, root, moduleDir, config, opts);
  return { moduleDir, files, chosen: chooseModules(config, files) };
}
