import { isModuleFileName, moduleNameFromPath } from '../module/read-module.js';
import { joinImage, type ImagePath } from './archive-path.js';
import { bodyOf, linkTargetPath, type ImageTree, type TreeNode } from './image-tree.js';

/** One module file inside an image's module directory. */
export interface ImageModule {
  readonly name: string;
  /** Path relative to the image's module directory, e.g. "kernel/fs/ext4/ext4.ko" or "weak-updates/foo.ko". */
  readonly relPath: string;
  readonly path: ImagePath;
  readonly node: TreeNode;
  /** For a symlink: the image path it resolves to (undefined if it dangles inside the image). */
  readonly target: ImagePath | undefined;
}

/**
 * The image's directory for kernel `release`, as an image path with links resolved
 * ("usr/lib/modules/K" on merged-/usr images, whichever spelling the image uses), or
 * undefined when the image holds no modules for that kernel.
 */
export function locateModuleDir(tree: ImageTree, release: string): ImagePath | undefined {
  for (const p of [`lib/modules/${release}`, `usr/lib/modules/${release}`]) {
    const r = tree.resolve(p);
    if (r !== undefined && tree.isDir(r)) return r;
  }
  return undefined;
}

/** Where the image keeps module trees ("usr/lib/modules" or "lib/modules"), links resolved. */
export function modulesBase(tree: ImageTree, moduleDir: ImagePath | undefined): ImagePath {
  if (moduleDir !== undefined) return moduleDir.slice(0, moduleDir.lastIndexOf('/'));
  return tree.resolve('lib/modules') ?? 'lib/modules';
}

/** Module files (and links to them) below the module directory, in name order. */
export function listImageModules(tree: ImageTree, moduleDir: ImagePath): ImageModule[] {
  const out: ImageModule[] = [];
  const prefix = moduleDir + '/';
  for (const node of tree.walk(moduleDir)) {
    if (node.kind !== 'file' && node.kind !== 'symlink') continue;
    const base = node.path.slice(node.path.lastIndexOf('/') + 1);
    if (!isModuleFileName(base)) continue;
    let target: ImagePath | undefined;
    if (node.kind === 'symlink') {
      target = linkTargetPath(tree, node);
      if (target === undefined || tree.get(target)?.kind !== 'file') target = undefined;
    }
    out.push({ name: moduleNameFromPath(base), relPath: node.path.slice(prefix.length), path: node.path, node, target });
  }
  return out;
}

const MODULE_EXT = /\.ko(\.(gz|xz|zst))?$/;

/** A module path without its extension: "kernel/fs/foo.ko.xz" and "kernel/fs/foo.ko" share "kernel/fs/foo". */
export function moduleStem(relPath: string): string {
  return relPath.replace(MODULE_EXT, '');
}

export function moduleExt(relPath: string): string {
  return MODULE_EXT.exec(relPath)?.[0] ?? '';
}

/** Contents of an image module (the link target's for a link). */
export function imageModuleData(tree: ImageTree, m: ImageModule): Uint8Array | undefined {
  const node = imageModuleNode(tree, m);
  return node === undefined ? undefined : bodyOf(node);
}

/** The node holding an image module's contents (the link target's for a link). */
export function imageModuleNode(tree: ImageTree, m: ImageModule): TreeNode | undefined {
  if (m.node.kind === 'file') return m.node;
  return m.target === undefined ? undefined : tree.get(m.target);
}

export function imageModulePath(moduleDir: ImagePath, relPath: string): ImagePath {
  return joinImage(moduleDir, relPath);
}
