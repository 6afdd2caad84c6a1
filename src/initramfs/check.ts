import { posix } from 'node:path';
import { loadDepmodConfig } from '../depmod/config.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { discoverKernels, type InitramfsStyle, type InstalledKernel } from '../kernel/discover.js';
import { scanModuleTree, type ModuleFile, type ModuleTree } from '../kernel/module-tree.js';
import { hostPath, resolveInRoot, systemPathOf } from '../kernel/paths.js';
import { moduleNameFromPath } from '../module/read-module.js';
import { normaliseName, type ImagePath } from './archive-path.js';
import { configuredDrivers } from './generator-config.js';
import { readImageFile, type InitramfsImage } from './image.js';
import { imageModuleData, listImageModules, locateModuleDir, moduleExt, moduleStem, type ImageModule } from './image-modules.js';
import { ImageTree } from './image-tree.js';
import type { ImageLimits } from './limits.js';
import { compareModules, moduleContents } from './module-compare.js';

/*
 * "Does this kernel's initramfs need a rebuild?" answered from the image itself: every module
 * file the image holds is compared with the installed file at the same place in the module
 * tree, and every module name it holds with the file modprobe would now pick for that name.
 */

export interface CheckOptions {
  root?: string;
  fs?: KabiFs;
  release: string;
  /**
   * System paths of the module files that changed (added, replaced, linked or removed). When
   * given, only those module names are looked at; otherwise every module in the image is.
   */
  changedModules?: readonly string[];
  /** System path of the image, instead of the one discovered for the kernel. */
  image?: string;
  limits?: Partial<ImageLimits>;
}

/** How one file of an image differs from what its generator would put there now. */
export type ChangeKind =
  /** In the image and installed, but the installed file differs (contents or link target). */
  | 'changed'
  /** In the image, no longer installed. */
  | 'removed'
  /** Installed as the file modprobe picks for a name the image holds, absent from the image. */
  | 'added'
  /** Not in the image, but named in the generator's configuration: only the generator can add it. */
  | 'config';

/** One file of an image that differs from what its generator would put there now. */
export interface ImageChange {
  readonly kind: ChangeKind;
  readonly name: string;
  /** Where the file is, or would go, in the image. */
  readonly imagePath: ImagePath | undefined;
  /** The installed file (undefined for 'removed'). */
  readonly installed: ModuleFile | undefined;
  readonly detail: string;
}

/** Whether a kernel's initramfs image holds what its generator would put there now, and every difference. */
export interface ImageCheck {
  readonly release: string;
  /** System path of the image. */
  readonly image: string;
  readonly exists: boolean;
  readonly style: InitramfsStyle;
  /** The image's module directory for this kernel, if it has one. */
  readonly moduleDir: ImagePath | undefined;
  readonly needsUpdate: boolean;
  /** kabi can rewrite the image itself (otherwise the generator has to run). */
  readonly nativePossible: boolean;
  readonly changes: readonly ImageChange[];
  readonly notes: readonly string[];
}

/** What the check found, kept for the update that follows it. */
export interface Analysis {
  readonly check: ImageCheck;
  readonly root: string;
  readonly fs: KabiFs;
  readonly kernel: InstalledKernel;
  /** Host path the image is read from (links resolved inside the root). */
  readonly imageHost: string | undefined;
  /** Host path of the image's own name (its directory resolved, the name itself not): what gets replaced. */
  readonly imageFile: string | undefined;
  readonly image: InitramfsImage | undefined;
  readonly tree: ImageTree | undefined;
  readonly installed: ModuleTree | undefined;
  readonly imageModules: readonly ImageModule[];
  /** New files under the module directory are stored uncompressed (initramfs-tools does so). */
  readonly storeDecompressed: boolean;
}

export async function imageNeedsUpdate(opts: CheckOptions): Promise<ImageCheck> {
  return (await analyseImage(opts)).check;
}

export async function findKernel(fs: KabiFs, root: string, release: string): Promise<InstalledKernel> {
  if (release === '' || release.includes('/') || release === '.' || release === '..') {
    throw new KabiError('USAGE', `"${release}" is not a kernel release`);
  }
  const kernel = (await discoverKernels({ root, fs })).find((k) => k.release === release);
  if (!kernel) throw new KabiError('KERNEL_NOT_FOUND', `kernel ${release} is not installed under ${root}`);
  return kernel;
}

export async function analyseImage(opts: CheckOptions): Promise<Analysis> {
  const root = opts.root ?? '/';
  const fs = opts.fs ?? nodeFs;
  const kernel = await findKernel(fs, root, opts.release);
  const imageSys = opts.image ?? kernel.initramfs.path;
  const style = kernel.initramfs.style;
  const imageHost = await resolveInRoot(fs, root, hostPath(root, imageSys));
  const imageDir = await resolveInRoot(fs, root, hostPath(root, posix.dirname(imageSys)));
  const imageFile = imageDir === undefined ? undefined : posix.join(imageDir, posix.basename(imageSys));
  const base = { release: opts.release, image: imageSys, style };
  const empty = { root, fs, kernel, imageHost, imageFile, image: undefined, tree: undefined, installed: undefined, imageModules: [], storeDecompressed: false };
  if (imageHost === undefined) {
    const check: ImageCheck = {
      ...base,
      exists: false,
      moduleDir: undefined,
      needsUpdate: false,
      nativePossible: false,
      changes: [],
      notes: [`${imageSys} does not exist; kabi does not create an initramfs that was never built`],
    };
    return { check, ...empty };
  }

  const image = await readImageFile(fs, imageHost, { limits: opts.limits });
  const tree = new ImageTree(image);
  const moduleDir = locateModuleDir(tree, opts.release);
  const config = await loadDepmodConfig(fs, root, opts.release);
  const installed = await scanModuleTree(fs, root, kernel.moduleDir, config);
  const imageModules = moduleDir === undefined ? [] : listImageModules(tree, moduleDir);
  const notes: string[] = [];
  if (moduleDir === undefined) notes.push(`the image holds no module directory for ${opts.release}`);

  const byName = new Map<string, ImageModule[]>();
  for (const m of imageModules) byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  const installedByName = new Map<string, ModuleFile[]>();
  for (const f of installed.files) installedByName.set(f.name, [...(installedByName.get(f.name) ?? []), f]);

  const storeDecompressed = decideDecompression(imageModules, installedByName, style);
  const names = opts.changedModules ? new Set(opts.changedModules.map(moduleNameFromPath)) : new Set(byName.keys());
  const changes: ImageChange[] = [];
  const drivers = opts.changedModules ? await configuredDrivers(fs, root) : undefined;

  for (const name of [...names].sort()) {
    const inImage = byName.get(name) ?? [];
    const chosen = installed.chosen.get(name);
    if (inImage.length === 0) {
      if (chosen && drivers?.names.has(name)) {
        changes.push({ kind: 'config', name, imagePath: undefined, installed: chosen, detail: `${name} is not in the image but is named in ${drivers.files.join(', ')}` });
      }
      continue;
    }
    for (const m of inImage) {
      const counterpart = (installedByName.get(name) ?? []).find((f) => f.relPath !== undefined && moduleStem(f.relPath) === moduleStem(m.relPath));
      if (!counterpart) {
        changes.push({ kind: 'removed', name, imagePath: m.path, installed: undefined, detail: `${m.relPath} is in the image but no longer installed` });
        continue;
      }
      const why = await difference(fs, root, tree, m, counterpart);
      if (why) changes.push({ kind: 'changed', name, imagePath: m.path, installed: counterpart, detail: `${m.relPath}: ${why}` });
    }
    if (chosen?.relPath !== undefined && !inImage.some((m) => moduleStem(m.relPath) === moduleStem(chosen.relPath!))) {
      const rel = imageRelPath(chosen, storeDecompressed);
      changes.push({
        kind: 'added',
        name,
        imagePath: moduleDir === undefined ? undefined : `${moduleDir}/${rel}`,
        installed: chosen,
        detail: `modprobe now picks ${chosen.relPath}, which the image lacks`,
      });
    } else if (chosen && chosen.relPath === undefined) {
      notes.push(`${name}: modprobe picks ${chosen.path} from an external directory; kabi leaves that to the generator`);
    }
  }

  const nativePossible = moduleDir !== undefined && changes.every((c) => c.kind !== 'config' && (c.installed === undefined || c.installed.relPath !== undefined));
  const check: ImageCheck = { ...base, exists: true, moduleDir, needsUpdate: changes.length > 0, nativePossible, changes, notes };
  return { check, root, fs, kernel, imageHost, imageFile, image, tree, installed, imageModules, storeDecompressed };
}

/** Why the image's copy of a module is stale, or undefined if it is current. */
async function difference(fs: KabiFs, root: string, tree: ImageTree, m: ImageModule, f: ModuleFile): Promise<string | undefined> {
  const imageIsLink = m.node.kind === 'symlink';
  if (imageIsLink !== f.isLink) return f.isLink ? 'installed as a symlink, a regular file in the image' : 'installed as a regular file, a symlink in the image';
  if (f.isLink) {
    const expected = imagePathOfHost(tree, root, f.host);
    if (m.target !== expected) return `the link points to ${expected ?? f.host} now, to ${m.target ?? 'nothing'} in the image`;
  }
  const img = imageModuleData(tree, m);
  if (img === undefined) return 'the image copy is missing';
  let installedBytes: Uint8Array;
  try {
    installedBytes = await fs.readFile(f.host);
  } catch (e) {
    throw new KabiError('IO', `cannot read the installed module: ${(e as Error).message}`, { file: f.host, cause: e });
  }
  const [a, b] = await Promise.all([moduleContents(img, m.path), moduleContents(installedBytes, f.host)]);
  return compareModules(a, b) === 'different' ? 'contents differ' : undefined;
}

/** Where an installed file (host path) belongs in the image: its system path, through the image's own links. */
export function imagePathOfHost(tree: ImageTree, root: string, host: string): ImagePath | undefined {
  const sys = systemPathOf(root, host);
  if (sys === undefined || sys === '/') return undefined;
  try {
    return tree.canonical(normaliseName(sys.slice(1)));
  } catch {
    return undefined;
  }
}

/** The path relative to the image's module directory that an installed module gets there. */
export function imageRelPath(f: ModuleFile, storeDecompressed: boolean): string {
  const rel = f.relPath!;
  if (storeDecompressed && !f.isLink && (rel.endsWith('.ko.xz') || rel.endsWith('.ko.zst'))) return `${moduleStem(rel)}.ko`;
  return rel;
}

/**
 * initramfs-tools unpacks .ko.xz/.ko.zst into plain .ko inside the image; dracut keeps them.
 * Read that off the image where it shows, else go by the generator.
 */
function decideDecompression(mods: readonly ImageModule[], installed: ReadonlyMap<string, ModuleFile[]>, style: InitramfsStyle): boolean {
  const files = mods.filter((m) => m.node.kind === 'file');
  if (files.some((m) => moduleExt(m.relPath) !== '.ko')) return false;
  for (const m of files) {
    const f = installed.get(m.name)?.find((x) => x.relPath !== undefined && moduleStem(x.relPath) === moduleStem(m.relPath));
    if (f?.relPath !== undefined && /\.ko\.(xz|zst)$/.test(f.relPath)) return true;
    if (f?.relPath !== undefined && f.relPath.endsWith('.ko')) return false;
  }
  return style === 'initramfs-tools';
}
