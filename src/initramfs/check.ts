import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { fileEquals, nodeFs, READ_BUDGETS, readRegularFile } from '../fs.js';
import { readingFs } from '../depmod/sync-fs.js';
import { discoverKernels, type InitramfsStyle, type InstalledKernel } from '../kernel/discover.js';
import type { ModuleFile } from '../kernel/module-tree.js';
import { hostPath, resolveInRoot, systemPathOf } from '../kernel/paths.js';
import { isModuleFileName, moduleNameFromPath } from '../module/read-module.js';
import { normaliseName, type ImagePath } from './archive-path.js';
import { familyOfImage, familyOfSystem, loadModel, realHostView, type GeneratorFamily, type GeneratorModel, type HostView } from './generator/index.js';
import { InstalledModules, type PlannedLink } from './generator/installed-modules.js';
import { readImageFile, type ImageTimings, type InitramfsImage } from './image.js';
import type { KeepBody } from './cpio-listing.js';
import { imageModuleData, listImageModules, locateModuleDir, moduleExt, moduleStem, type ImageModule } from './image-modules.js';
import { BodyNotKept, ImageTree } from './image-tree.js';
import type { ImageLimits } from './limits.js';
import { compareModules, moduleContents } from './module-compare.js';

/*
 * The one decision, per image and change: would the image's generator, run now, put into it
 * anything other than what it holds for the modules that changed? For each changed module
 * name: if the image holds it, is the installed file still what the image has (contents, link
 * target), or is it gone? If the image lacks it, would the generator select it (its own rules,
 * read from its configuration in the root: generator/*.ts), or does a module the image holds
 * now need it? Where a rule depends on something files cannot tell, the answer is to run the
 * generator, and the reason is given. Without a list of changed modules, every module in the
 * image is compared and every installed module changed since the image was written is asked
 * about.
 */

export interface CheckOptions {
  root?: string;
  fs?: KabiFs;
  release: string;
  /**
   * System paths of the module files that changed (added, replaced, linked or removed). When
   * given, only those module names are looked at; otherwise the whole image is.
   */
  changedModules?: readonly string[];
  /** System path of the image, instead of the one discovered for the kernel. */
  image?: string;
  limits?: Partial<ImageLimits>;
  /** The running system a host-only generator looks at (default: this machine's /proc and /sys). */
  host?: HostView;
  /** Link changes not made yet (a dry run): the decision is taken for the tree as it will be. */
  planned?: readonly PlannedLink[];
  /**
   * The rebuild passes the image's own dracut build parameters again (`dracut --rebuild`,
   * what kabi's own paths run; default). weak-modules' plain `dracut -f` does not.
   */
  rebuildWithParameters?: boolean;
  /**
   * Create a missing image (SUSE's weak-modules2 does; RHEL's weak-modules and kabi link leave
   * that to the kernel's own installation). Default: only on SUSE-style systems.
   */
  createMissing?: boolean;
  /**
   * Read every member's contents (a rewrite needs them). Otherwise, given `changedModules`,
   * the image is listed while it is decompressed and only what the decision reads is kept.
   */
  wholeImage?: boolean;
  /** Adds the time the analysis spends, by phase (the bench prints it). */
  timings?: AnalysisTimings;
}

/** Milliseconds an analysis spends, by phase; `modules` runs while the image is read. */
export interface AnalysisTimings extends ImageTimings {
  /** Reading the installed module tree and its configuration. */
  modules: number;
  /** The generator's rules and the comparisons, once the image and the modules are known. */
  rules: number;
}

/**
 * Bodies a decision about these module names reads: the modules of those names, and small
 * files other than modules (the generator's notes about the build, such as dracut's
 * modules.txt). Anything else it turns out to need makes it read the image whole.
 */
function keepForDecision(names: ReadonlySet<string>): KeepBody {
  return (path, h) => {
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (isModuleFileName(base)) return names.has(moduleNameFromPath(base));
    return h.filesize <= 16 * 1024;
  };
}

/** How one file of an image differs from what its generator would put there now. */
export type ChangeKind =
  /** In the image and installed, but the installed file differs (contents or link target). */
  | 'changed'
  /** In the image, no longer installed. */
  | 'removed'
  /** Not in the image, but the generator would put it there (selected, or needed by a module it holds). */
  | 'added'
  /** Whether the generator would put it there cannot be told from files: only the generator can say. */
  | 'undecided'
  /** There is no image, and the host's tools would make one. */
  | 'create';

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
  /** The generator and how it is configured, e.g. "dracut 059-4, not hostonly". */
  readonly generator: string;
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
  readonly installed: InstalledModules | undefined;
  readonly model: GeneratorModel | undefined;
  readonly family: GeneratorFamily | undefined;
  readonly imageModules: readonly ImageModule[];
  /** New files under the module directory are stored uncompressed (initramfs-tools does so). */
  readonly storeDecompressed: boolean;
  /** A dracut image that records its build parameters: the generator is run with --rebuild to keep them. */
  readonly buildParameters: boolean;
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

/**
 * A kernel's image: the one discovery found, else kernel-install's (Boot Loader Specification
 * type #1 entries: ENTRY-TOKEN/RELEASE/initrd on the ESP or XBOOTLDR partition, the token from
 * /etc/kernel/entry-token or the machine id), else where the generator would write it.
 */
export async function kernelImage(fs: KabiFs, root: string, kernel: InstalledKernel): Promise<{ path: string; style: InitramfsStyle }> {
  if (kernel.initramfs.exists) return kernel.initramfs;
  for (const tokenFile of ['/etc/kernel/entry-token', '/etc/machine-id']) {
    const host = await resolveInRoot(fs, root, hostPath(root, tokenFile)).catch(() => undefined);
    const token = host === undefined ? undefined : (await fs.readFile(host, 'utf8').catch(() => '')).split('\n')[0]!.trim();
    if (!token || token.includes('/') || token.startsWith('.')) continue;
    for (const base of ['/efi', '/boot/efi', '/boot']) {
      const path = `${base}/${token}/${kernel.release}/initrd`;
      const at = await resolveInRoot(fs, root, hostPath(root, path)).catch(() => undefined);
      if (at !== undefined) return { path, style: 'kernel-install' };
    }
  }
  return kernel.initramfs;
}

/** Where a kernel's image is: the host path to read and the host path of its name (to replace). */
export async function locateImage(fs: KabiFs, root: string, kernel: InstalledKernel, imageSys: string): Promise<{ imageHost: string | undefined; imageFile: string | undefined }> {
  const imageHost = await resolveInRoot(fs, root, hostPath(root, imageSys));
  const imageDir = await resolveInRoot(fs, root, hostPath(root, posix.dirname(imageSys)));
  void kernel;
  return { imageHost, imageFile: imageDir === undefined ? undefined : posix.join(imageDir, posix.basename(imageSys)) };
}

/**
 * `installed`: the installed tree an analysis of the same kernel and options just read (a
 * rewrite reading the image whole after a listing), not read again.
 */
export async function analyseImage(opts: CheckOptions, installed?: InstalledModules): Promise<Analysis> {
  try {
    return await analyse(opts, installed);
  } catch (e) {
    // The decision needed a body the listing passed over: read the image whole.
    if (e instanceof BodyNotKept && !opts.wholeImage) return analyse({ ...opts, wholeImage: true }, installed);
    throw e;
  }
}

async function analyse(opts: CheckOptions, reuse: InstalledModules | undefined): Promise<Analysis> {
  const root = opts.root ?? '/';
  const fs = opts.fs ?? nodeFs;
  const kernel = await findKernel(fs, root, opts.release);
  const found = opts.image === undefined ? await kernelImage(fs, root, kernel) : { path: opts.image, style: kernel.initramfs.style };
  const imageSys = found.path;
  const style = found.style;
  const { imageHost, imageFile } = await locateImage(fs, root, kernel, imageSys);
  const base = { release: opts.release, image: imageSys, style };
  const none = { tree: undefined, imageModules: [], storeDecompressed: false, image: undefined, buildParameters: false };

  if (imageHost === undefined) {
    const create = opts.createMissing ?? style === 'suse';
    const family = await familyOfSystem(fs, root, style);
    const check: ImageCheck = {
      ...base,
      exists: false,
      generator: family ?? 'unknown generator',
      moduleDir: undefined,
      needsUpdate: create,
      nativePossible: false,
      changes: create ? [{ kind: 'create', name: '', imagePath: undefined, installed: undefined, detail: `${imageSys} does not exist; the host's tools make one when modules change` }] : [],
      notes: create ? [] : [`${imageSys} does not exist; it is made when the kernel is installed (kabi does not make a first image)`],
    };
    return { check, root, fs, kernel, imageHost, imageFile, installed: undefined, model: undefined, family, ...none };
  }

  const changedNames = opts.changedModules ? new Set(opts.changedModules.map(moduleNameFromPath)) : undefined;
  const keep = opts.wholeImage || changedNames === undefined ? undefined : keepForDecision(changedNames);
  const timings = opts.timings;
  // The installed tree is read while the image is decompressed (on the threadpool); an error
  // of the image's still comes first.
  const t0 = performance.now();
  const loading = (reuse !== undefined && reuse.moduleDir === kernel.moduleDir ? Promise.resolve(reuse) : InstalledModules.load(fs, root, opts.release, kernel.moduleDir, opts.planned)).finally(() => {
    if (timings) timings.modules += performance.now() - t0;
  });
  loading.catch(() => undefined);
  const image = await readImageFile(fs, imageHost, { limits: opts.limits, keep, timings });
  const installed = await loading;
  const t1 = performance.now();
  const tree = new ImageTree(image);
  const moduleDir = locateModuleDir(tree, opts.release);
  const imageModules = moduleDir === undefined ? [] : listImageModules(tree, moduleDir);
  const family = familyOfImage(tree) ?? (await familyOfSystem(fs, root, style));
  const host = opts.host ?? realHostView();
  const rebuildWithParameters = opts.rebuildWithParameters ?? true;
  const model = await loadModel({ root, fs, release: opts.release, style, installed, host, tree, imageModules: new Set(imageModules.map((m) => m.name)), rebuildWithParameters }, family);
  const buildParameters = family === 'dracut' && rebuildWithParameters && (tree.lookup('usr/lib/dracut/build-parameter.txt') ?? tree.lookup('lib/dracut/build-parameter.txt')) !== undefined;
  const notes: string[] = [...model.notes];
  if (moduleDir === undefined) notes.push(`the image holds no module directory for ${opts.release}`);

  const byName = new Map<string, ImageModule[]>();
  for (const m of imageModules) byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  const storeDecompressed = decideDecompression(imageModules, installed, model.unpacks);

  const names = changedNames ?? (await namesToExamine(fs, imageHost, byName, installed));
  const changes: ImageChange[] = [];
  let neededBy: Map<string, string> | undefined;
  const needer = async (name: string) => (neededBy ??= await dependencyIndex(installed, byName, model)).get(name);

  for (const name of [...names].sort()) {
    const inImage = byName.get(name) ?? [];
    const chosen = installed.chosen(name);
    if (inImage.length === 0) {
      if (!chosen || model.omits(name)) continue;
      const where = moduleDir === undefined ? undefined : `${moduleDir}/${imageRelPath(chosen, storeDecompressed)}`;
      const v = await model.selects(chosen);
      if (v.include === true) {
        changes.push({ kind: 'added', name, imagePath: where, installed: chosen, detail: `would include ${name} (${chosen.relPath ?? chosen.path}) but the image lacks it: ${v.rule}` });
        continue;
      }
      const user = await needer(name);
      if (user !== undefined) {
        changes.push({ kind: 'added', name, imagePath: where, installed: chosen, detail: `would include ${name} (${chosen.relPath ?? chosen.path}) but the image lacks it: ${user}, which the image holds, needs it` });
      } else if (v.include === undefined) {
        changes.push({ kind: 'undecided', name, imagePath: where, installed: chosen, detail: `${name} (${chosen.relPath ?? chosen.path}) may belong in the image: ${v.why}` });
      }
      continue;
    }
    const files = installed.filesNamed(name);
    for (const m of inImage) {
      const counterpart = files.find((f) => f.relPath !== undefined && moduleStem(f.relPath) === moduleStem(m.relPath));
      if (!counterpart) {
        changes.push({ kind: 'removed', name, imagePath: m.path, installed: undefined, detail: `${m.relPath} is in the image but no longer installed` });
        continue;
      }
      const why = await difference(fs, root, tree, m, counterpart);
      if (why) changes.push({ kind: 'changed', name, imagePath: m.path, installed: counterpart, detail: `${m.relPath}: ${why}` });
    }
    if (chosen?.relPath !== undefined && !inImage.some((m) => moduleStem(m.relPath) === moduleStem(chosen.relPath!))) {
      const rel = imageRelPath(chosen, storeDecompressed);
      changes.push({ kind: 'added', name, imagePath: moduleDir === undefined ? undefined : `${moduleDir}/${rel}`, installed: chosen, detail: `modprobe now picks ${chosen.relPath}, which the image lacks` });
    } else if (chosen && chosen.relPath === undefined && !inImage.some((m) => m.node.kind !== 'dir')) {
      notes.push(`${name}: modprobe picks ${chosen.path} from an external directory; kabi leaves that to the generator`);
    }
  }

  const nativePossible = moduleDir !== undefined && changes.every((c) => c.kind !== 'undecided' && c.kind !== 'create' && (c.installed === undefined || c.installed.relPath !== undefined));
  const check: ImageCheck = { ...base, exists: true, generator: model.description, moduleDir, needsUpdate: changes.length > 0, nativePossible, changes, notes };
  if (timings) timings.rules += performance.now() - t1;
  return { check, root, fs, kernel, imageHost, imageFile, image, tree, installed, model, family, imageModules, storeDecompressed, buildParameters };
}

/**
 * Without a list of changes: every module the image holds, and every installed module whose
 * file (or link) changed after the image was written: a module that did not change since is
 * where the generator left it.
 */
async function namesToExamine(fs: KabiFs, imageHost: string, byName: ReadonlyMap<string, ImageModule[]>, installed: InstalledModules): Promise<Set<string>> {
  const names = new Set(byName.keys());
  const written = (await fs.stat(imageHost)).mtimeMs;
  // Thousands of stats: on node:fs the synchronous calls cost a tenth of the promise round trips.
  const rfs = readingFs(fs);
  for (const f of installed.tree.files) {
    if (names.has(f.name)) continue;
    try {
      const st = f.isLink ? await rfs.lstat(hostPath(installed.root, f.path)) : await rfs.stat(f.host);
      const target = f.isLink ? await rfs.stat(f.host) : st;
      if (Math.max(st.ctimeMs, st.mtimeMs, target.ctimeMs, target.mtimeMs) > written) names.add(f.name);
    } catch {
      names.add(f.name);
    }
  }
  return names;
}

/** name → a module the image holds that needs it (modules.dep, softdep and weakdep of the installed tree). */
async function dependencyIndex(installed: InstalledModules, byName: ReadonlyMap<string, ImageModule[]>, model: GeneratorModel): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of byName.keys()) {
    const f = installed.chosen(name);
    if (!f) continue;
    for (const d of await installed.dependencies(f)) if (!out.has(d.name)) out.set(d.name, name);
    if (model.softdeps) for (const s of await installed.softdeps(name)) for (const d of [...s.pre, ...s.post]) if (!out.has(d)) out.set(d, name);
    if (model.weakdeps) for (const d of await installed.weakdeps(name)) if (!out.has(d)) out.set(d, name);
  }
  return out;
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
    // The same file as installed (a signed module, which no generator strips; or the image
    // made from this very file): nothing to hold or decompress.
    if (await fileEquals(fs, f.host, img, READ_BUDGETS.module)) return undefined;
    installedBytes = await readRegularFile(fs, f.host, READ_BUDGETS.module);
  } catch (e) {
    if (e instanceof KabiError) throw e;
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
  const rel = f.relPath ?? posix.basename(f.path);
  if (storeDecompressed && !f.isLink && (rel.endsWith('.ko.xz') || rel.endsWith('.ko.zst'))) return `${moduleStem(rel)}.ko`;
  return rel;
}

/**
 * initramfs-tools unpacks .ko.xz/.ko.zst into plain .ko inside the image; dracut keeps them.
 * Read that off the image where it shows, else go by the generator.
 */
function decideDecompression(mods: readonly ImageModule[], installed: InstalledModules, unpacks: boolean): boolean {
  const files = mods.filter((m) => m.node.kind === 'file');
  if (files.some((m) => moduleExt(m.relPath) !== '.ko')) return false;
  for (const m of files) {
    const f = installed.filesNamed(m.name).find((x) => x.relPath !== undefined && moduleStem(x.relPath) === moduleStem(m.relPath));
    if (f?.relPath !== undefined && /\.ko\.(xz|zst)$/.test(f.relPath)) return true;
    if (f?.relPath !== undefined && f.relPath.endsWith('.ko')) return false;
  }
  return unpacks;
}
