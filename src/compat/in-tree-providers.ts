import { KabiError } from '../errors.js';
import { isNotFound, type KabiFs } from '../fs.js';
import { readSystemFile } from '../kernel/paths.js';
import type { KernelModule } from '../module/read-module.js';
import { kmodExports } from './engine.js';
import type { LoadedKernelModel, ModuleCache } from './kernel-model.js';
import type { TreeModule } from './types.js';

/**
 * A kernel model stands in-tree modules up from Module.symvers alone, which is fast but
 * leaves two facts out that a verdict can hinge on:
 * - the licence: the loader refuses a module that has used a GPL-only symbol and then uses
 *   a symbol of a proprietary module, and taints a module that uses one; symvers has no
 *   licence column, so a provider's own modinfo has to say;
 * - exports of an in-tree module that symvers does not list (a module added to kernel/ after
 *   the build): an import it satisfies would be called unknown.
 * So for the modules about to be judged, read exactly the in-tree providers whose licence
 * matters (any whose symbol they use), and, for imports nothing provides, the provider the
 * installed depmod index (modules.symbols) names. Everything else stays as symvers said.
 */
export async function withInTreeProviders(
  model: LoadedKernelModel,
  importers: Iterable<KernelModule>,
  opts: { cache: ModuleCache; fs: KabiFs },
): Promise<LoadedKernelModel> {
  const owner = new Map<string, TreeModule>();
  for (const tm of model.modules.values()) {
    if (!tm.inTree) continue;
    for (const e of tm.exports) if (!owner.has(e.symbol)) owner.set(e.symbol, tm);
  }
  const toRead = new Set<string>();
  const unresolved = new Set<string>();
  const users = [...importers];
  for (const tm of model.modules.values()) if (tm.module && !tm.inTree) users.push(tm.module);
  for (const m of users) {
    for (const u of m.undefinedSymbols) {
      if (model.vmlinux.has(u.name)) continue;
      const tm = owner.get(u.name);
      if (tm === undefined) unresolved.add(u.name);
      else if (!tm.licenseKnown) toRead.add(tm.name);
    }
  }
  if (unresolved.size > 0) {
    for (const name of await providersInDepmodIndex(opts.fs, model, unresolved)) {
      const tm = model.modules.get(name);
      if (tm?.inTree && !tm.licenseKnown) toRead.add(name);
    }
  }
  if (toRead.size === 0) return model;

  const modules = new Map(model.modules);
  const notes = [...model.notes];
  for (const name of toRead) {
    const tm = model.modules.get(name)!;
    const file = model.chosen.get(name);
    if (!file) continue;
    let mod: KernelModule;
    try {
      mod = await opts.cache.read(file.host);
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
      notes.push(`${tm.path}: unreadable, its licence is unknown (${e.detail})`);
      continue;
    }
    modules.set(name, {
      ...tm,
      // The module's own export table is the truth; symvers may have missed it.
      exports: mod.exports.map((e) => ({ symbol: e.symbol, crc: e.crc, gplOnly: e.gplOnly, namespace: e.namespace, owner: name, certain: true })),
      depmodExports: kmodExports(mod),
      license: mod.license,
      licenseKnown: true,
    });
  }
  return { ...model, modules, notes };
}

/** Names of the modules the kernel's installed modules.symbols says export these symbols. */
async function providersInDepmodIndex(fs: KabiFs, model: LoadedKernelModel, symbols: ReadonlySet<string>): Promise<Set<string>> {
  const out = new Set<string>();
  let text: string;
  try {
    text = new TextDecoder().decode(await readSystemFile(fs, model.kernel.root, `${model.kernel.moduleDir}/modules.symbols`));
  } catch (e) {
    if (isNotFound(e) || e instanceof KabiError) return out;
    throw e;
  }
  // "alias symbol:NAME MODULE"
  for (const line of text.split('\n')) {
    if (!line.startsWith('alias symbol:')) continue;
    const sp = line.indexOf(' ', 13);
    if (sp < 0) continue;
    if (symbols.has(line.slice(13, sp))) out.add(line.slice(sp + 1).trim());
  }
  return out;
}
