import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import { baseOf, joinImage, normaliseName, parentOf, type ImagePath } from './archive-path.js';
import { kindOf, type CpioEntry, type EntryKind } from './cpio.js';
import { allEntries, type InitramfsImage } from './image.js';

/*
 * The file tree an image unpacks to, built the way the kernel builds rootfs: members in order,
 * intermediate symlinks followed (so "lib/modules/…" lands under "usr/lib/modules/…" when
 * lib -> usr/lib), a later member replacing an earlier one at the same path, hard links within
 * one archive sharing their contents. Symlinks are resolved in memory and can never leave the
 * image: nothing here touches a real filesystem.
 */

export interface TreeNode {
  /** Where the member ended up (intermediate links resolved). */
  readonly path: ImagePath;
  readonly kind: EntryKind;
  readonly entry: CpioEntry;
  readonly segment: number;
  readonly archive: number;
  /** Contents: a hard-link group shares one holder, filled by whichever member carries data. */
  readonly content: { data: Uint8Array };
}

const MAX_LINKS = 40;

export class ImageTree {
  private readonly nodes = new Map<ImagePath, TreeNode>();
  private readonly children = new Map<ImagePath, Set<string>>();

  constructor(image: Pick<InitramfsImage, 'segments'>) {
    let groups = new Map<string, { data: Uint8Array }>();
    let current = '';
    for (const { segment, archive, entry } of allEntries(image)) {
      const archiveKey = `${segment}/${archive}`;
      // The kernel forgets hard links at every TRAILER!!!.
      if (archiveKey !== current) {
        groups = new Map();
        current = archiveKey;
      }
      const kind = kindOf(entry.mode);
      let content = { data: entry.data };
      if (entry.nlink >= 2 && kind !== 'dir') {
        const key = `${entry.devmajor}:${entry.devminor}:${entry.ino}`;
        const shared = groups.get(key);
        if (shared) {
          if (entry.data.length > 0) shared.data = entry.data;
          content = shared;
        } else groups.set(key, content);
      }
      const path = entry.path === '' ? '' : joinImage(this.canonical(parentOf(entry.path)), baseOf(entry.path));
      this.put({ path, kind, entry, segment, archive, content });
    }
  }

  private put(node: TreeNode): void {
    this.nodes.set(node.path, node);
    if (node.path === '') return;
    const parent = parentOf(node.path);
    let set = this.children.get(parent);
    if (!set) this.children.set(parent, (set = new Set()));
    set.add(baseOf(node.path));
  }

  /** The node stored at exactly this path (no link followed). */
  get(path: ImagePath): TreeNode | undefined {
    return this.nodes.get(path);
  }

  /**
   * Follow symlinks in every component (and the last one too unless `followLast` is false),
   * staying inside the image: '..' at the root stays at the root, absolute targets start
   * at the image root. Components that do not exist are kept as written. Returns undefined
   * for a symlink loop.
   */
  resolve(path: ImagePath, followLast = true): ImagePath | undefined {
    let done: string[] = [];
    let rest = path.split('/').filter((c) => c !== '' && c !== '.');
    let links = 0;
    while (rest.length > 0) {
      const comp = rest.shift()!;
      if (comp === '..') {
        done.pop();
        continue;
      }
      const candidate = [...done, comp].join('/');
      const node = this.nodes.get(candidate);
      if (node?.kind === 'symlink' && (followLast || rest.length > 0)) {
        if (++links > MAX_LINKS) return undefined;
        const target = linkTarget(node);
        if (target.startsWith('/')) done = [];
        rest = [...target.split('/').filter((c) => c !== '' && c !== '.'), ...rest];
        continue;
      }
      done.push(comp);
    }
    return done.join('/');
  }

  /** The path with its directory part resolved: where a member with this name would be unpacked. */
  canonical(path: ImagePath): ImagePath {
    if (path === '') return '';
    const parent = this.resolve(parentOf(path)) ?? parentOf(path);
    return joinImage(parent, baseOf(path));
  }

  /** The node a path leads to, following every link; undefined if missing or a loop. */
  lookup(path: ImagePath): TreeNode | undefined {
    const r = this.resolve(path);
    return r === undefined ? undefined : this.nodes.get(r);
  }

  /** Contents of the regular file a path leads to. */
  readFile(path: ImagePath): Uint8Array | undefined {
    const n = this.lookup(path);
    return n?.kind === 'file' ? bodyOf(n) : undefined;
  }

  isDir(path: ImagePath): boolean {
    if (path === '') return true;
    return this.lookup(path)?.kind === 'dir';
  }

  /** Names directly inside a directory (exact path, no links followed), sorted. */
  list(dir: ImagePath): string[] {
    return [...(this.children.get(dir) ?? [])].filter((n) => this.nodes.has(joinImage(dir, n))).sort();
  }

  /** Every node below `dir` (links not followed), depth-first in name order. */
  *walk(dir: ImagePath): Generator<TreeNode> {
    for (const name of this.list(dir)) {
      const p = joinImage(dir, name);
      const n = this.nodes.get(p)!;
      yield n;
      if (n.kind === 'dir') yield* this.walk(p);
    }
  }

  all(): IterableIterator<TreeNode> {
    return this.nodes.values();
  }
}

/** A body asked for that a listing did not keep (the image has to be read whole). */
export class BodyNotKept extends KabiError {}

/** A node's contents; never the empty stand-in of a body a listing skipped. */
export function bodyOf(node: Pick<TreeNode, 'content' | 'entry'>): Uint8Array {
  if (node.content.data.length === 0 && node.entry.skippedBytes !== undefined) {
    throw new BodyNotKept('USAGE', `${node.entry.name} was listed without its contents`);
  }
  return node.content.data;
}

export function linkTarget(node: Pick<TreeNode, 'content'>): string {
  return new TextDecoder().decode(node.content.data);
}

/** Where a symlink member points, as an image path (relative targets taken from the link's directory). */
export function linkTargetPath(tree: ImageTree, link: TreeNode): ImagePath | undefined {
  const t = linkTarget(link);
  const joined = t.startsWith('/') ? t : posix.join('/', parentOf(link.path), t);
  const norm = posix.normalize(joined).replace(/^\/+/, '');
  try {
    return tree.resolve(normaliseName(norm === '.' ? '' : norm));
  } catch {
    return undefined;
  }
}
