import { posix } from 'node:path';
import { offerFileViews, type KabiFs } from '../fs.js';

/*
 * A read-only file system held in memory, for running kabi's own depmod over the module tree
 * an image will hold without writing a scratch copy anywhere: nothing can be left behind by a
 * run that is killed, and nothing outside the image can be read by accident. Only the reading
 * calls depmod makes are implemented; anything else fails with EROFS.
 */

type MemNode = { kind: 'file'; data: Uint8Array; mode: number } | { kind: 'dir'; mode: number } | { kind: 'symlink'; target: string };

export class MemoryTree {
  readonly nodes = new Map<string, MemNode & { ino: number }>([['/', { kind: 'dir', mode: 0o755, ino: 1 }]]);
  private nextIno = 2;

  private add(path: string, node: MemNode): void {
    const p = posix.normalize(path);
    this.mkdirs(posix.dirname(p));
    this.nodes.set(p, { ...node, ino: this.nextIno++ });
  }

  mkdirs(dir: string): void {
    const p = posix.normalize(dir);
    if (this.nodes.has(p)) return;
    this.mkdirs(posix.dirname(p));
    this.nodes.set(p, { kind: 'dir', mode: 0o755, ino: this.nextIno++ });
  }

  file(path: string, data: Uint8Array, mode = 0o644): void {
    this.add(path, { kind: 'file', data, mode });
  }

  symlink(path: string, target: string): void {
    this.add(path, { kind: 'symlink', target });
  }
}

function fsError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${syscall} '${path}'`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = syscall;
  e.path = path;
  return e;
}

const S_IF = { file: 0o100000, dir: 0o040000, symlink: 0o120000 } as const;

function statOf(node: MemNode & { ino: number }, bigint: boolean): object {
  const size = node.kind === 'file' ? node.data.length : node.kind === 'symlink' ? node.target.length : 4096;
  const mode = S_IF[node.kind] | (node.kind === 'symlink' ? 0o777 : node.mode);
  const n = (v: number) => (bigint ? BigInt(v) : v);
  return {
    dev: n(0), ino: n(node.ino), mode: n(mode), nlink: n(1), uid: n(0), gid: n(0), rdev: n(0), size: n(size), blksize: n(4096), blocks: n(Math.ceil(size / 512)),
    atimeMs: n(0), mtimeMs: n(0), ctimeMs: n(0), birthtimeMs: n(0),
    ...(bigint ? { atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, birthtimeNs: 0n } : {}),
    atime: new Date(0), mtime: new Date(0), ctime: new Date(0), birthtime: new Date(0),
    isFile: () => node.kind === 'file',
    isDirectory: () => node.kind === 'dir',
    isSymbolicLink: () => node.kind === 'symlink',
    isFIFO: () => false,
    isSocket: () => false,
    isCharacterDevice: () => false,
    isBlockDevice: () => false,
  };
}

function direntOf(name: string, node: MemNode): object {
  return { name, isFile: () => node.kind === 'file', isDirectory: () => node.kind === 'dir', isSymbolicLink: () => node.kind === 'symlink', isFIFO: () => false, isSocket: () => false, isCharacterDevice: () => false, isBlockDevice: () => false };
}

/** A KabiFs over `tree` (absolute paths, '/' its root). */
export function memoryFs(tree: MemoryTree): KabiFs {
  const { nodes } = tree;
  /** The node a path names and its path with every link resolved (the last one only if `follow`). */
  const resolve = (path: string, follow: boolean, syscall: string): { path: string; node: MemNode & { ino: number } } => {
    let rest = String(path).split('/').filter((c) => c !== '' && c !== '.');
    let cur = '/';
    let hops = 0;
    while (rest.length > 0) {
      const comp = rest.shift()!;
      if (comp === '..') {
        cur = posix.dirname(cur);
        continue;
      }
      const next = posix.join(cur, comp);
      const n = nodes.get(next);
      if (n === undefined) throw fsError('ENOENT', syscall, String(path));
      if (n.kind === 'symlink' && (follow || rest.length > 0)) {
        if (++hops > 40) throw fsError('ELOOP', syscall, String(path));
        if (n.target.startsWith('/')) cur = '/';
        rest = [...n.target.split('/').filter((c) => c !== '' && c !== '.'), ...rest];
        continue;
      }
      if (rest.length > 0 && n.kind !== 'dir') throw fsError('ENOTDIR', syscall, String(path));
      cur = next;
    }
    return { path: cur, node: nodes.get(cur)! };
  };
  const lookup = (path: string, follow: boolean, syscall: string) => resolve(path, follow, syscall).node;
  // The tree is complete when the view is made: index the directories once.
  const index = new Map<string, [string, MemNode][]>();
  for (const [p, n] of nodes) {
    if (p === '/') continue;
    const d = posix.dirname(p);
    let l = index.get(d);
    if (!l) index.set(d, (l = []));
    l.push([posix.basename(p), n]);
  }
  for (const l of index.values()) l.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const children = (dir: string): [string, MemNode][] => index.get(dir) ?? [];
  const rofs = (syscall: string) => async (path: unknown) => {
    throw fsError('EROFS', syscall, String(path));
  };
  const api = {
    async readFile(path: string, opts?: unknown) {
      const n = lookup(path, true, 'open');
      if (n.kind === 'dir') throw fsError('EISDIR', 'read', String(path));
      if (n.kind !== 'file') throw fsError('ENOENT', 'open', String(path));
      const enc = typeof opts === 'string' ? opts : (opts as { encoding?: string } | undefined)?.encoding;
      return enc ? Buffer.from(n.data).toString(enc as BufferEncoding) : Buffer.from(n.data);
    },
    async stat(path: string, opts?: { bigint?: boolean }) {
      return statOf(lookup(path, true, 'stat'), opts?.bigint === true);
    },
    async lstat(path: string, opts?: { bigint?: boolean }) {
      return statOf(lookup(path, false, 'lstat'), opts?.bigint === true);
    },
    async readlink(path: string) {
      const n = lookup(path, false, 'readlink');
      if (n.kind !== 'symlink') throw fsError('EINVAL', 'readlink', String(path));
      return n.target;
    },
    async readdir(path: string, opts?: { withFileTypes?: boolean }) {
      const { path: dir, node: n } = resolve(path, true, 'scandir');
      if (n.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', String(path));
      const list = children(dir);
      return opts?.withFileTypes ? list.map(([name, node]) => direntOf(name, node)) : list.map(([name]) => name);
    },
    async opendir(path: string) {
      const entries = (await api.readdir(path, { withFileTypes: true })) as object[];
      let i = 0;
      return {
        path: String(path),
        async read() {
          return (entries[i++] as object | undefined) ?? null;
        },
        readSync() {
          return (entries[i++] as object | undefined) ?? null;
        },
        async close() {},
        closeSync() {},
        async *[Symbol.asyncIterator]() {
          while (i < entries.length) yield entries[i++];
        },
      };
    },
    async realpath(path: string) {
      return resolve(path, true, 'realpath').path;
    },
    async access(path: string) {
      lookup(path, true, 'access');
    },
    async open(path: string, flags?: unknown) {
      // Only for reading: 'r', or numeric flags whose access mode is O_RDONLY (O_NONBLOCK and the like allowed).
      if (!(flags === undefined || flags === 'r' || (typeof flags === 'number' && (flags & 3) === 0))) throw fsError('EROFS', 'open', String(path));
      const n = lookup(path, true, 'open');
      if (n.kind !== 'file') throw fsError('EISDIR', 'open', String(path));
      const data = n.data;
      let cursor = 0;
      return {
        fd: -1,
        stat: async (o?: { bigint?: boolean }) => statOf(n, o?.bigint === true),
        readFile: async () => Buffer.from(data),
        read: async (buf: Uint8Array, off: number, len: number, pos: number | null) => {
          const from = pos ?? cursor;
          const part = data.subarray(from, from + len);
          buf.set(part, off);
          if (pos === null || pos === undefined) cursor += part.length;
          return { bytesRead: part.length, buffer: buf };
        },
        close: async () => {},
      };
    },
    writeFile: rofs('open'),
    symlink: rofs('symlink'),
    rename: rofs('rename'),
    mkdir: rofs('mkdir'),
    rmdir: rofs('rmdir'),
    unlink: rofs('unlink'),
    rm: rofs('rm'),
    link: rofs('link'),
    chmod: rofs('chmod'),
    chown: rofs('chown'),
    copyFile: rofs('copyfile'),
    utimes: rofs('utime'),
    lutimes: rofs('lutime'),
    mkdtemp: rofs('mkdtemp'),
  };
  const fs = api as unknown as KabiFs;
  offerFileViews(fs, (path) => {
    try {
      const n = lookup(path, true, 'open');
      return n.kind === 'file' ? n.data : undefined;
    } catch {
      return undefined;
    }
  });
  return fs;
}
