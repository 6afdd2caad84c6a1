import { posix } from 'node:path';
import type { PackageArchive } from './archive.js';
import { S_IFDIR } from './entry.js';

/** A node of the files that one or more packages would install. */
export interface TreeNode {
  readonly kind: 'dir' | 'file' | 'symlink' | 'other';
  readonly mode: number;
  readonly size: number;
  readonly mtime: number;
  /** Unique within the tree (st_ino of the view). */
  readonly ino: number;
  /** A symlink's target as stored. */
  readonly target?: string;
  /** Where a regular file's bytes are: the archive and its path there (a hard link's target). */
  readonly source?: { readonly archive: PackageArchive; readonly path: string };
  /** A directory's entries, in the order the packages list them. */
  readonly children?: Map<string, TreeNode>;
  /** The package that put it there (undefined for directories no package lists itself). */
  readonly owner?: PackageArchive;
}

/**
 * Where a package's directory lands when installed: dpkg and rpm install through a symlink
 * the system already has (merged /usr: /lib -> usr/lib), never over it. Returns the canonical
 * system path of a directory, given its parent's canonical path and its name.
 */
export type PlaceDirectory = (parentCanonical: string, name: string) => Promise<string>;

/**
 * The files of several scanned packages merged as they would be installed together, keyed by
 * system path. A later package's entry replaces an earlier one at the same path, as an upgrade
 * would; directories merge.
 */
export class PackageTree {
  readonly root: TreeNode;
  private nextIno = 2;

  private constructor() {
    this.root = this.dirNode(0o755, 0, undefined);
  }

  static async build(archives: readonly PackageArchive[], place: PlaceDirectory = async (p, n) => posix.join(p, n)): Promise<PackageTree> {
    const t = new PackageTree();
    const canonical = new Map<string, string>([['/', '/']]);
    const canonDir = async (sys: string): Promise<string> => {
      const hit = canonical.get(sys);
      if (hit !== undefined) return hit;
      const parent = await canonDir(posix.dirname(sys));
      const c = await place(parent, posix.basename(sys));
      canonical.set(sys, c);
      return c;
    };
    for (const a of archives) {
      for (const e of a.list()) {
        if (e.path === '/') continue;
        if (e.type === 'dir') {
          // A directory the system has as a symlink to a directory is installed through, never replaced.
          const at = await canonDir(e.path);
          if (at === '/') continue;
          const parent = t.ensureDir(posix.dirname(at));
          const old = parent.children!.get(posix.basename(at));
          parent.children!.set(posix.basename(at), old?.kind === 'dir' ? { ...old, mode: S_IFDIR | (e.mode & 0o7777), mtime: e.mtime, owner: a } : t.dirNode(e.mode, e.mtime, a));
          continue;
        }
        const dir = await canonDir(posix.dirname(e.path));
        const name = posix.basename(e.path);
        const parent = t.ensureDir(dir);
        let node: TreeNode;
        switch (e.type) {
          case 'file':
            node = { kind: 'file', mode: e.mode, size: e.size, mtime: e.mtime, ino: t.nextIno++, source: { archive: a, path: e.path }, owner: a };
            break;
          case 'hardlink': {
            const target = a.entry(e.linkTarget!);
            node =
              target?.type === 'file'
                ? { kind: 'file', mode: e.mode, size: target.size, mtime: e.mtime, ino: t.nextIno++, source: { archive: a, path: target.path }, owner: a }
                : { kind: 'other', mode: e.mode, size: 0, mtime: e.mtime, ino: t.nextIno++, owner: a };
            break;
          }
          case 'symlink':
            node = { kind: 'symlink', mode: e.mode, size: Buffer.byteLength(e.linkTarget ?? ''), mtime: e.mtime, ino: t.nextIno++, target: e.linkTarget ?? '', owner: a };
            break;
          default:
            node = { kind: 'other', mode: e.mode, size: 0, mtime: e.mtime, ino: t.nextIno++, owner: a };
        }
        parent.children!.set(name, node);
      }
    }
    return t;
  }

  private dirNode(mode: number, mtime: number, owner: PackageArchive | undefined): TreeNode {
    return { kind: 'dir', mode: S_IFDIR | (mode & 0o7777), size: 4096, mtime, ino: this.nextIno++, children: new Map(), ...(owner ? { owner } : {}) };
  }

  /** The directory node at a canonical system path, created (with its parents) if missing. */
  private ensureDir(sys: string): TreeNode {
    let n = this.root;
    for (const c of sys.split('/').filter((x) => x !== '')) {
      let next = n.children!.get(c);
      if (next?.kind !== 'dir') {
        next = this.dirNode(0o755, 0, undefined);
        n.children!.set(c, next);
      }
      n = next;
    }
    return n;
  }

  /** The node at a system path, without following symlinks. */
  get(sys: string): TreeNode | undefined {
    let n: TreeNode | undefined = this.root;
    for (const c of sys.split('/').filter((x) => x !== '')) {
      n = n.children?.get(c);
      if (!n) return undefined;
    }
    return n;
  }
}
