import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import { READ_BUDGETS, readRegularFile } from '../fs.js';
import type { ModuleFile } from '../kernel/module-tree.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { readModuleBytes } from '../module/read-module.js';
import { joinImage, normaliseName, relativeLinkTarget, type ImagePath } from './archive-path.js';
import { imagePathOfHost, imageRelPath, type Analysis } from './check.js';
import { foldName } from './generator/installed-modules.js';
import type { ImageModule } from './image-modules.js';
import { linkTargetPath } from './image-tree.js';
import { moduleContents } from './module-compare.js';
import { stripDebug } from './strip-debug.js';

/*
 * From the check's findings to the edits that give the image what a fresh generator run would:
 * each stale module file replaced in place, each vanished one removed, each newly selected one
 * added; with every module put in, its dependencies (modules.dep), soft and weak dependencies
 * where the generator follows them, and the firmware it names that the generator would copy;
 * modules stored as the generator stores them (weak-updates links as a relative link plus the
 * target at its real path, .ko.xz unpacked for initramfs-tools, unsigned .ko strip -g'ed for
 * dracut); and what only a removed or replaced module needed taken out again, unless the
 * generator selects it on its own. Anything the model cannot decide ends the native plan: only
 * the generator can do it.
 */

export type PlannedOp =
  | { readonly op: 'file'; readonly path: ImagePath; readonly data: Uint8Array; readonly perm: number; readonly mtime: number; readonly reason: string }
  | { readonly op: 'link'; readonly path: ImagePath; readonly target: string; readonly mtime: number; readonly reason: string }
  | { readonly op: 'remove'; readonly path: ImagePath; readonly reason: string };

export interface Plan {
  readonly ops: readonly PlannedOp[];
  /** Link targets outside the module directory that removed or re-pointed links leave behind. */
  readonly formerTargets: readonly ImagePath[];
}

export async function planUpdate(a: Analysis): Promise<Plan> {
  const { tree, check, installed, model } = a;
  const moduleDir = check.moduleDir;
  if (!tree || moduleDir === undefined || !installed || !model) throw new Error('internal: planUpdate needs an image with a module directory');
  if (a.image?.partial) throw new Error('internal: planUpdate needs the image read whole (wholeImage), not a listing');
  const ops: PlannedOp[] = [];
  const formerTargets: ImagePath[] = [];
  /** Module names the image will hold, and where. */
  const holds = new Map<string, ImageModule[]>();
  for (const m of a.imageModules) holds.set(m.name, [...(holds.get(m.name) ?? []), m]);
  const put = new Set<string>();
  const removedNames = new Set<string>();
  const queued: ModuleFile[] = [];
  const planned = new Set<ImagePath>();
  /** Firmware names of modules taken out or replaced (their old copies), to see whether anything else still names them. */
  const oldFirmware = new Set<string>();
  /** Names that may now be needed by nothing. */
  const maybeOrphans = new Set<string>();
  const imageDeps = parseModulesDep(tree.readFile(`${moduleDir}/modules.dep`));

  const forget = (path: ImagePath) => {
    const node = tree.get(path);
    if (node?.kind === 'symlink') {
      const t = linkTargetPath(tree, node);
      if (t !== undefined) formerTargets.push(t);
    }
  };
  const noteOld = async (m: ImageModule) => {
    for (const d of imageDeps.get(m.relPath) ?? []) maybeOrphans.add(moduleNameOfRel(d));
    const data = m.node.kind === 'file' ? m.node.content.data : m.target !== undefined ? tree.get(m.target)?.content.data : undefined;
    if (data !== undefined) {
      try {
        for (const fw of (await readModuleBytes(data, { file: m.path })).modinfo.getAll('firmware')) oldFirmware.add(fw);
      } catch {
        // An unreadable old copy names no firmware kabi could keep track of.
      }
    }
  };
  const removeModule = async (m: ImageModule, reason: string) => {
    forget(m.path);
    await noteOld(m);
    ops.push({ op: 'remove', path: m.path, reason });
    const left = (holds.get(m.name) ?? []).filter((x) => x !== m);
    if (left.length > 0) holds.set(m.name, left);
    else holds.delete(m.name);
  };

  const putModule = async (f: ModuleFile, reason: string): Promise<void> => {
    if (f.relPath === undefined) throw new KabiError('INITRAMFS_FORMAT', `${f.name} is in an external directory (${f.path}); only the generator places it`);
    const st = await a.fs.lstat(f.host);
    const mtime = Math.floor(st.mtimeMs / 1000);
    const raw = await readInstalled(a, f.host);
    /** The bytes stored under `name`: as installed, or unpacked where the generator unpacks, strip -g'ed where it strips. */
    const stored = async (name: string, unpack: boolean) => {
      const data = unpack ? await moduleContents(raw, f.host) : raw;
      if (!model.strips || !name.endsWith('.ko') || (await installed.factsOf(f)).signed) return data;
      return stripDebug(await moduleContents(data, f.host), f.host, model.strips.wordAlignedFile ? { maxFileAlign: data[4] === 2 ? 8 : 4 } : {});
    };
    if (f.isLink) {
      const linkPath = joinImage(moduleDir, f.relPath);
      const target = imagePathOfHost(tree, a.root, f.host);
      if (target === undefined) throw new KabiError('UNSAFE_PATH', `the target of ${f.path} lies outside the root`, { file: f.host });
      forget(linkPath);
      if (!planned.has(target)) {
        ops.push({ op: 'file', path: target, data: await stored(target, false), perm: st.mode & 0o7777, mtime, reason: `target of ${f.relPath}` });
        planned.add(target);
      }
      // A link the plan has not made yet (a dry run) has no time of its own.
      const linkMtime = f.virtual ? Math.floor(Date.now() / 1000) : Math.floor((await a.fs.lstat(hostPath(a.root, f.path))).mtimeMs / 1000);
      ops.push({ op: 'link', path: linkPath, target: relativeLinkTarget(linkPath, target), mtime: linkMtime, reason });
      planned.add(linkPath);
    } else {
      const rel = imageRelPath(f, a.storeDecompressed);
      const path = joinImage(moduleDir, rel);
      ops.push({ op: 'file', path, data: await stored(rel, rel !== f.relPath), perm: st.mode & 0o7777, mtime, reason });
      planned.add(path);
    }
    put.add(f.name);
    queued.push(f);
  };

  /** Does a module the image will hold (other than `name`) need it? */
  const stillNeeded = async (name: string): Promise<boolean> => {
    for (const [holder] of [...holds, ...[...put].map((n) => [n, []] as const)]) {
      if (holder === name) continue;
      const hf = installed.chosen(holder);
      if (!hf) continue;
      if ((await installed.dependencies(hf)).some((d) => d.name === name)) return true;
      if (model.softdeps && (await installed.softdeps(holder)).some((s) => s.pre.includes(name) || s.post.includes(name))) return true;
      if (model.weakdeps && (await installed.weakdeps(holder)).includes(name)) return true;
    }
    return false;
  };
  for (const c of check.changes) {
    if (c.kind === 'undecided' || c.kind === 'create') throw new KabiError('INITRAMFS_FORMAT', `only the generator can do this: ${c.detail}`);
    const current = holds.get(c.name) ?? [];
    if (c.kind === 'removed') {
      const m = current.find((x) => x.path === c.imagePath);
      if (m) await removeModule(m, c.detail);
      removedNames.add(c.name);
      continue;
    }
    const f = c.installed!;
    if (current.length > 0) {
      // A new build of a module the image holds: would the generator still put it in (a rule
      // may no longer match it), or does a module the image holds need it?
      const v = await model.selects(f);
      if (v.include !== true && !(await stillNeeded(c.name))) {
        if (v.include === undefined) throw new KabiError('INITRAMFS_FORMAT', `only the generator can tell whether ${c.name} stays in the image: ${v.why}`);
        for (const m of current) await removeModule(m, `${c.detail}; the generator would leave it out now`);
        removedNames.add(c.name);
        continue;
      }
    }
    const wanted = f.isLink ? joinImage(moduleDir, f.relPath!) : joinImage(moduleDir, imageRelPath(f, a.storeDecompressed));
    for (const m of current) {
      if (m.path === wanted) await noteOld(m);
      else if (c.kind !== 'changed' || m.path === c.imagePath) await removeModule(m, `replaced by ${wanted}`);
    }
    await putModule(f, c.detail);
  }

  // What a module put in brings along: dependencies, soft and weak dependencies, firmware.
  const firmware = new Map<string, string>();
  for (let i = 0; i < queued.length; i++) {
    const f = queued[i]!;
    const wanted: [string, string][] = (await installed.dependencies(f)).map((d) => [d.name, `needed by ${f.name}`]);
    if (model.softdeps) for (const s of await installed.softdeps(f.name)) for (const d of [...s.pre, ...s.post]) wanted.push([d, `soft dependency of ${f.name}`]);
    if (model.weakdeps) for (const d of await installed.weakdeps(f.name)) wanted.push([d, `weak dependency of ${f.name}`]);
    for (const [name, why] of wanted) {
      const n = foldName(name);
      if (model.omits(n) || put.has(n) || (holds.has(n) && !removedNames.has(n))) continue;
      const chosen = installed.chosen(n);
      if (chosen?.relPath === undefined) continue;
      await putModule(chosen, why);
    }
    for (const fw of (await installed.factsOf(f)).firmware) if (!firmware.has(fw)) firmware.set(fw, f.name);
  }
  for (const [fw, by] of firmware) await putFirmware(a, fw, by, ops, planned);

  // What only the old modules needed goes, unless the generator selects it on its own.
  for (const name of maybeOrphans) {
    if (put.has(name) || !holds.has(name)) continue;
    const chosen = installed.chosen(name);
    if (chosen) {
      const v = await model.selects(chosen);
      if (v.include === true) continue;
      if (await stillNeeded(name)) continue;
      if (v.include === undefined) throw new KabiError('INITRAMFS_FORMAT', `only the generator can tell whether ${name} stays in the image: ${v.why}`);
    } else if (await stillNeeded(name)) continue;
    for (const m of holds.get(name) ?? []) {
      await removeModule(m, 'nothing in the image needs it any more');
      for (const d of imageDeps.get(m.relPath) ?? []) maybeOrphans.add(moduleNameOfRel(d));
    }
  }

  // Firmware of old copies that no module the image holds names any more. Only asked when an
  // old copy named some: it means reading every module the image holds.
  const named = new Set<string>();
  for (const n of oldFirmware.size > 0 ? new Set([...holds.keys(), ...put]) : []) {
    const f = installed.chosen(n);
    if (f) for (const fw of (await installed.factsOf(f)).firmware) named.add(fw);
  }
  for (const fw of oldFirmware) {
    if (named.has(fw)) continue;
    for (const dir of model.firmwareDirs) {
      for (const p of [fw, `${fw}.xz`, `${fw}.zst`]) {
        const at = imagePathOf(tree, posix.join(dir, p));
        if (at !== undefined && tree.get(at)?.kind === 'file' && !planned.has(at)) ops.push({ op: 'remove', path: at, reason: `firmware no module in the image names any more` });
      }
    }
  }
  return { ops, formerTargets };
}

/** Copy firmware a module names from the root's firmware directories, as the generator would. */
async function putFirmware(a: Analysis, fw: string, by: string, ops: PlannedOp[], planned: Set<ImagePath>): Promise<void> {
  const model = a.model!;
  const tree = a.tree!;
  if (/[*?[]/.test(fw)) throw new KabiError('INITRAMFS_FORMAT', `${by} names firmware by a pattern (${fw}); only the generator expands it`);
  for (const dir of model.firmwareDirs) {
    let found = false;
    // dracut also takes a compressed copy when the plain one is missing.
    for (const name of model.firmwareFromEveryDir ? [fw, `${fw}.zst`, `${fw}.xz`] : [fw]) {
      const sys = posix.join(dir, name);
      const host = await resolveInRoot(a.fs, a.root, hostPath(a.root, sys)).catch(() => undefined);
      if (host === undefined) continue;
      const st = await a.fs.stat(host).catch(() => undefined);
      if (!st?.isFile()) continue;
      found = true;
      const at = imagePathOf(tree, sys);
      if (at !== undefined && !planned.has(at) && tree.lookup(at) === undefined) {
        ops.push({ op: 'file', path: at, data: await readInstalled(a, host), perm: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000), reason: `firmware for ${by}` });
        planned.add(at);
      }
      break;
    }
    if (found && !model.firmwareFromEveryDir) return;
  }
}

function imagePathOf(tree: NonNullable<Analysis['tree']>, sys: string): ImagePath | undefined {
  try {
    return tree.canonical(normaliseName(sys.replace(/^\/+/, '')));
  } catch {
    return undefined;
  }
}

function parseModulesDep(bytes: Uint8Array | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (bytes === undefined) return out;
  for (const line of new TextDecoder().decode(bytes).split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) out.set(line.slice(0, colon), line.slice(colon + 1).split(' ').filter(Boolean));
  }
  return out;
}

function moduleNameOfRel(rel: string): string {
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  return foldName(base.slice(0, base.indexOf('.') < 0 ? undefined : base.indexOf('.')));
}

/** A module or firmware file to copy in: read only if it is a regular file, within a module's size limit. */
async function readInstalled(a: Analysis, host: string): Promise<Uint8Array> {
  try {
    return await readRegularFile(a.fs, host, { what: 'file to copy into the image', maxBytes: READ_BUDGETS.module.maxBytes });
  } catch (e) {
    if (e instanceof KabiError) throw e;
    throw new KabiError('IO', `cannot read the installed file: ${(e as Error).message}`, { file: host, cause: e });
  }
}
