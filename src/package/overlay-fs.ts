import { constants as fsConstants, type Dirent, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import { hostPath, systemPathOf } from '../kernel/paths.js';
import { S_IFLNK, S_IFMT } from './entry.js';
import type { PackageTree, TreeNode } from './package-tree.js';

/*
 * A read-only filesystem that shows a system root as it would be with some packages installed:
 * the packages' files (from their archives, decompressed on demand) over the root's own
 * (through the base KabiFs). Everything that takes a KabiFs (kernel discovery, the kernel
 * model, kabi status) then sees the incoming kernel as an installed one without anything being
 * unpacked. Paths outside the root go to the base untouched.
 *
 * Symlinks are followed as the installed system would follow them, confined to the root (an
 * absolute target is taken relative to it), whether the link comes from a package or from the
 * root. Every write fails with EROFS.
 */

/** st_dev of package files: "kabi". */
const PACKAGE_DEV = 0x6b616269;
const MAX_LINKS = 40;

export interface OverlayOptions {
  /**
   * Base entries hidden under a package directory (system path → names): a kernel package's
   * module directory replaces the old tree and depmod files of a same-release kernel, while
   * extra/, updates/ and weak-updates/ of the system stay.
   */
  readonly hidden?: (dirSys: string, name: string) => boolean;
}

type Found = { layer: 'pkg'; node: TreeNode; sys: string } | { layer: 'base'; sys: string };

function fsError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const text: Record<string, string> = {
    ENOENT: 'no such file or directory',
    ENOTDIR: 'not a directory',
    EISDIR: 'illegal operation on a directory',
    ELOOP: 'too many symbolic links encountered',
    EROFS: 'read-only file system (a package view)',
    EINVAL: 'invalid argument',
  };
  const e = new Error(`${code}: ${text[code] ?? code}, ${syscall} '${path}'`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = syscall;
  e.path = path;
  return e;
}

function stats(n: TreeNode, bigint: boolean): Stats {
  const mode = n.kind === 'symlink' ? S_IFLNK | 0o777 : n.mode;
  const ms = n.mtime * 1000;
  const date = new Date(ms);
  const num = (v: number) => (bigint ? BigInt(v) : v);
  const s = {
    dev: num(PACKAGE_DEV),
    ino: num(n.ino),
    mode: num(mode),
    nlink: num(n.kind === 'dir' ? 2 : 1),
    uid: num(0),
    gid: num(0),
    rdev: num(0),
    size: num(n.size),
    blksize: num(4096),
    blocks: num(Math.ceil(n.size / 512)),
    atimeMs: num(ms),
    mtimeMs: num(ms),
    ctimeMs: num(ms),
    birthtimeMs: num(ms),
    atime: date,
    mtime: date,
    ctime: date,
    birthtime: date,
    ...(bigint ? { atimeNs: BigInt(ms) * 1_000_000n, mtimeNs: BigInt(ms) * 1_000_000n, ctimeNs: BigInt(ms) * 1_000_000n, birthtimeNs: BigInt(ms) * 1_000_000n } : {}),
    isFile: () => n.kind === 'file',
    isDirectory: () => n.kind === 'dir',
    isSymbolicLink: () => n.kind === 'symlink',
    isBlockDevice: () => (mode & S_IFMT) === 0o060000,
    isCharacterDevice: () => (mode & S_IFMT) === 0o020000,
    isFIFO: () => (mode & S_IFMT) === 0o010000,
    isSocket: () => (mode & S_IFMT) === 0o140000,
  };
  return s as unknown as Stats;
}

function dirent(name: string, parentPath: string, kind: 'dir' | 'file' | 'symlink' | 'other'): Dirent {
  return {
    name,
    parentPath,
    path: parentPath,
    isFile: () => kind === 'file',
    isDirectory: () => kind === 'dir',
    isSymbolicLink: () => kind === 'symlink',
    isBlockDevice: () => false,
    isCharacterDevice: () => false,
    isFIFO: () => false,
    isSocket: () => false,
  } as unknown as Dirent;
}

const WRITE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_APPEND;

function readOnlyFlags(flags: unknown): boolean {
  if (flags === undefined || flags === null) return true;
  if (typeof flags === 'number') return (flags & WRITE_FLAGS) === 0;
  return flags === 'r' || flags === 'rs' || flags === 'sr';
}

/**
 * An open package file, for the FileHandle calls readers make: stat, sequential or positioned
 * reads, close. The contents are fetched from the archive on the first read.
 */
function packageHandle(node: TreeNode, path: string): FileHandle {
  let bytes: Uint8Array | undefined;
  let at = 0;
  const contents = async (): Promise<Uint8Array> => {
    if (node.kind === 'dir') throw fsError('EISDIR', 'read', path);
    if (node.kind !== 'file') throw fsError('EINVAL', 'read', path);
    return (bytes ??= await node.source!.archive.readFile(node.source!.path));
  };
  const h = {
    fd: -1,
    async stat(o?: { bigint?: boolean }) {
      return stats(node, o?.bigint === true);
    },
    async read(buffer: Uint8Array, offset = 0, length = buffer.length - offset, position: number | null = null) {
      const b = await contents();
      const from = position === null || position === undefined ? at : position;
      const n = Math.max(0, Math.min(length, b.length - from));
      buffer.set(b.subarray(from, from + n), offset);
      if (position === null || position === undefined) at += n;
      return { bytesRead: n, buffer };
    },
    async readFile(o?: unknown) {
      const b = await contents();
      const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
      const enc = (typeof o === 'string' ? o : (o as { encoding?: BufferEncoding } | undefined)?.encoding) as BufferEncoding | undefined;
      return enc ? buf.toString(enc) : buf;
    },
    async close() {},
  };
  return h as unknown as FileHandle;
}

export function packageOverlayFs(base: KabiFs, root: string, tree: PackageTree, opts: OverlayOptions = {}): KabiFs {
  const rootN = posix.normalize(root).replace(/\/+$/, '') || '/';
  const hidden = opts.hidden ?? (() => false);

  /** A root entry that a package directory above it hides (the rule applies at any depth below). */
  const baseHidden = (sys: string): boolean => {
    let dir = '/';
    for (const c of sys.split('/').filter((x) => x !== '')) {
      if (tree.get(dir)?.kind === 'dir' && hidden(dir, c)) return true;
      dir = posix.join(dir, c);
    }
    return false;
  };

  /**
   * Directories of the package tree the root does not have: nothing below them is in the root
   * either, so a module tree of thousands of files costs one lookup in the root per directory.
   */
  const absentFromBase = new Set<string>();
  const knownAbsent = (sys: string): boolean => {
    for (let d = sys; ; d = posix.dirname(d)) {
      if (absentFromBase.has(d)) return true;
      if (d === '/') return false;
    }
  };
  /** The root's own entry at a canonical system path, or undefined. */
  const baseLstat = async (sys: string): Promise<Stats | undefined> => {
    if (knownAbsent(sys)) return undefined;
    try {
      return (await base.lstat(hostPath(rootN, sys))) as Stats;
    } catch (e) {
      if (!isNotFound(e)) throw e;
      if (tree.get(sys)?.kind === 'dir') absentFromBase.add(sys);
      return undefined;
    }
  };

  /** The entry at a canonical system path (no symlinks in its directories), without following it. */
  const lstatAt = async (sys: string): Promise<Found | undefined> => {
    const node = tree.get(sys);
    if (node) return { layer: 'pkg', node, sys };
    if (baseHidden(sys)) return undefined;
    return (await baseLstat(sys)) ? { layer: 'base', sys } : undefined;
  };

  const isLink = async (f: Found): Promise<boolean> => (f.layer === 'pkg' ? f.node.kind === 'symlink' : (await base.lstat(hostPath(rootN, f.sys))).isSymbolicLink());
  const isDir = async (f: Found): Promise<boolean> => (f.layer === 'pkg' ? f.node.kind === 'dir' : (await base.stat(hostPath(rootN, f.sys))).isDirectory());
  const linkTarget = async (f: Found): Promise<string> => (f.layer === 'pkg' ? f.node.target! : String(await base.readlink(hostPath(rootN, f.sys))));

  /**
   * Walk a system path component by component through both layers, following symlinks inside
   * the root; `followLast` decides for the final component. Undefined when it does not exist.
   */
  const resolve = async (sys: string, followLast: boolean, syscall: string, host: string): Promise<Found | undefined> => {
    let done = '/';
    let rest = sys.split('/').filter((c) => c !== '');
    let links = 0;
    let found: Found | undefined = await lstatAt('/');
    while (rest.length > 0) {
      const c = rest.shift()!;
      if (c === '.') continue;
      if (c === '..') {
        done = posix.dirname(done);
        found = await lstatAt(done);
        continue;
      }
      const next = posix.join(done, c);
      const f = await lstatAt(next);
      if (!f) {
        if (rest.length > 0) throw fsError('ENOENT', syscall, host);
        return undefined;
      }
      if ((rest.length > 0 || followLast) && (await isLink(f))) {
        if (++links > MAX_LINKS) throw fsError('ELOOP', syscall, host);
        const target = await linkTarget(f);
        if (posix.isAbsolute(target)) {
          // A target spelling the host path under the root (weak-modules --basedir) is taken as is.
          const inside = rootN !== '/' && (target === rootN || target.startsWith(rootN + '/')) ? systemPathOf(rootN, target) : undefined;
          rest = [...(inside ?? target).split('/').filter((x) => x !== ''), ...rest];
          done = '/';
        } else {
          rest = [...target.split('/').filter((x) => x !== ''), ...rest];
        }
        found = await lstatAt(done);
        continue;
      }
      if (rest.length > 0 && !(await isDir(f))) throw fsError('ENOTDIR', syscall, host);
      done = next;
      found = f;
    }
    return found ?? (await lstatAt(done));
  };

  /** Host path → system path inside the root, or undefined for paths the base handles alone. */
  const inRoot = (p: string | URL | Buffer): string | undefined => {
    const s = typeof p === 'string' ? p : p instanceof URL ? p.pathname : p.toString();
    return systemPathOf(rootN, posix.resolve(s));
  };

  const need = async (p: string, follow: boolean, syscall: string): Promise<Found> => {
    const f = await resolve(inRoot(p)!, follow, syscall, p);
    if (!f) throw fsError('ENOENT', syscall, p);
    return f;
  };

  const readonly = (syscall: string) =>
    (async (p: unknown) => {
      throw fsError('EROFS', syscall, String(p));
    }) as never;

  /** Names in a directory: the package's, then the root's that the package does not shadow. */
  const listing = async (f: Found, host: string): Promise<{ name: string; kind: 'dir' | 'file' | 'symlink' | 'other' }[]> => {
    const out: { name: string; kind: 'dir' | 'file' | 'symlink' | 'other' }[] = [];
    const seen = new Set<string>();
    const node = tree.get(f.sys);
    if (node?.kind === 'dir') {
      for (const [name, n] of node.children!) {
        out.push({ name, kind: n.kind });
        seen.add(name);
      }
    }
    try {
      const st = await baseLstat(f.sys);
      if (st?.isDirectory()) {
        const d = await base.opendir(hostPath(rootN, f.sys));
        for await (const de of d) {
          if (seen.has(de.name) || baseHidden(posix.join(f.sys, de.name))) continue;
          out.push({ name: de.name, kind: de.isDirectory() ? 'dir' : de.isFile() ? 'file' : de.isSymbolicLink() ? 'symlink' : 'other' });
        }
      }
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (!node && out.length === 0 && !(await isDir(f))) throw fsError('ENOTDIR', 'scandir', host);
    return out;
  };

  const view: KabiFs = {
    async readFile(p: unknown, o?: unknown) {
      const path = String(p);
      if (inRoot(path) === undefined) return base.readFile(path as never, o as never);
      const f = await need(path, true, 'open');
      if (f.layer === 'base') return base.readFile(hostPath(rootN, f.sys) as never, o as never);
      if (f.node.kind === 'dir') throw fsError('EISDIR', 'read', path);
      if (f.node.kind !== 'file') throw fsError('EINVAL', 'read', path);
      const b = await f.node.source!.archive.readFile(f.node.source!.path);
      const bytes = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
      const enc = (typeof o === 'string' ? o : (o as { encoding?: BufferEncoding } | undefined)?.encoding) as BufferEncoding | undefined;
      return enc ? bytes.toString(enc) : bytes;
    },
    async stat(p: unknown, o?: unknown) {
      const path = String(p);
      if (inRoot(path) === undefined) return base.stat(path as never, o as never);
      const f = await need(path, true, 'stat');
      if (f.layer === 'base') return base.stat(hostPath(rootN, f.sys), o as never);
      return stats(f.node, (o as { bigint?: boolean } | undefined)?.bigint === true);
    },
    async lstat(p: unknown, o?: unknown) {
      const path = String(p);
      if (inRoot(path) === undefined) return base.lstat(path as never, o as never);
      const f = await need(path, false, 'lstat');
      if (f.layer === 'base') return base.lstat(hostPath(rootN, f.sys), o as never);
      return stats(f.node, (o as { bigint?: boolean } | undefined)?.bigint === true);
    },
    async readlink(p: unknown, o?: unknown) {
      const path = String(p);
      if (inRoot(path) === undefined) return base.readlink(path as never, o as never);
      const f = await need(path, false, 'readlink');
      if (f.layer === 'base') return base.readlink(hostPath(rootN, f.sys), o as never);
      if (f.node.kind !== 'symlink') throw fsError('EINVAL', 'readlink', path);
      return f.node.target!;
    },
    async realpath(p: unknown, o?: unknown) {
      const path = String(p);
      if (inRoot(path) === undefined) return base.realpath(path as never, o as never);
      const f = await need(path, true, 'realpath');
      return hostPath(rootN, f.sys);
    },
    async access(p: unknown, mode?: number) {
      const path = String(p);
      if (inRoot(path) === undefined) return base.access(path as never, mode);
      const f = await need(path, true, 'access');
      if (f.layer === 'base') return base.access(hostPath(rootN, f.sys), mode);
      if (mode !== undefined && mode & 2) throw fsError('EROFS', 'access', path);
    },
    async readdir(p: unknown, o?: unknown) {
      const path = String(p);
      if (inRoot(path) === undefined) return base.readdir(path as never, o as never);
      const f = await need(path, true, 'scandir');
      if (f.layer === 'base' && !tree.get(f.sys)) return base.readdir(hostPath(rootN, f.sys) as never, o as never);
      if (f.layer === 'pkg' && f.node.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', path);
      const names = await listing(f, path);
      const withTypes = typeof o === 'object' && o !== null && (o as { withFileTypes?: boolean }).withFileTypes === true;
      const dirPath = hostPath(rootN, f.sys);
      return withTypes ? names.map((n) => dirent(n.name, dirPath, n.kind)) : names.map((n) => n.name);
    },
    async opendir(p: unknown, o?: unknown) {
      const path = String(p);
      if (inRoot(path) === undefined) return base.opendir(path as never, o as never);
      const f = await need(path, true, 'opendir');
      if (f.layer === 'base' && !tree.get(f.sys)) return base.opendir(hostPath(rootN, f.sys), o as never);
      if (f.layer === 'pkg' && f.node.kind !== 'dir') throw fsError('ENOTDIR', 'opendir', path);
      const names = await listing(f, path);
      const dirPath = hostPath(rootN, f.sys);
      const entries = names.map((n) => dirent(n.name, dirPath, n.kind));
      let i = 0;
      const dir = {
        path: dirPath,
        async read() {
          return entries[i++] ?? null;
        },
        readSync() {
          return entries[i++] ?? null;
        },
        async close() {},
        closeSync() {},
        async *[Symbol.asyncIterator]() {
          while (i < entries.length) yield entries[i++]!;
        },
      };
      return dir as never;
    },
    async open(p: unknown, flags?: unknown, mode?: unknown) {
      const path = String(p);
      if (!readOnlyFlags(flags)) throw fsError('EROFS', 'open', path);
      const sys = inRoot(path);
      const f = sys === undefined ? undefined : await resolve(sys, true, 'open', path);
      if (sys !== undefined && f === undefined) throw fsError('ENOENT', 'open', path);
      if (f === undefined || f.layer === 'base') return base.open(f ? hostPath(rootN, f.sys) : path, flags as never, mode as never);
      return packageHandle(f.node, path);
    },
    writeFile: readonly('open'),
    symlink: readonly('symlink'),
    rename: readonly('rename'),
    mkdir: readonly('mkdir'),
    rmdir: readonly('rmdir'),
    unlink: readonly('unlink'),
    rm: readonly('rm'),
    link: readonly('link'),
    chmod: readonly('chmod'),
    chown: readonly('chown'),
    copyFile: readonly('copyfile'),
    utimes: readonly('utime'),
    lutimes: readonly('lutime'),
    mkdtemp: readonly('mkdtemp'),
  } as unknown as KabiFs;
  return view;
}
