import { posix } from 'node:path';
import { loadDepmodConfig, type DepmodConfig } from '../../depmod/config.js';
import { KabiError } from '../../errors.js';
import type { KabiFs } from '../../fs.js';
import { isNotFound, READ_BUDGETS, readRegularFile } from '../../fs.js';
import { chooseModules, scanModuleTree, type ModuleFile, type ModuleTree } from '../../kernel/module-tree.js';
import { hostPath, readSystemFile, resolveInRoot } from '../../kernel/paths.js';
import { moduleNameFromPath, readModuleBytes } from '../../module/read-module.js';
import { globMatch } from './shell-eval.js';

/*
 * One installed kernel's modules as a generator's module tools see them (kmod reading the
 * root's /lib/modules/K, depmod.d and modprobe.d): which file each name resolves to, what each
 * file depends on (modules.dep), what it asks for softly (softdep in modprobe.d and
 * modules.softdep; weakdep in modules.weakdep), and what the file itself says (aliases,
 * imported symbols, firmware, a signature). Everything is read lazily and kept.
 */

export interface ModuleFacts {
  readonly aliases: readonly string[];
  /** Every undefined symbol in the symbol table (what kmod_module_get_dependency_symbols lists). */
  readonly undefinedSymbols: readonly string[];
  readonly firmware: readonly string[];
  /** modinfo depends=, names folded. */
  readonly depends: readonly string[];
  /** The file carries an appended signature (dracut never strips those). */
  readonly signed: boolean;
}

/** A link change the linker is about to make (system paths), as the dry run sees it. */
export interface PlannedLink {
  readonly kind: 'add' | 'replace' | 'remove';
  readonly link: string;
  readonly target?: string | undefined;
}

export interface SoftDeps {
  readonly pre: readonly string[];
  readonly post: readonly string[];
}

/** modprobe.d locations of the kmod versions in use, most important first (a basename in an earlier one hides later ones). */
const MODPROBE_DIRS = ['/etc/modprobe.d', '/run/modprobe.d', '/usr/local/lib/modprobe.d', '/usr/lib/modprobe.d', '/lib/modprobe.d'];

export function foldName(name: string): string {
  return name.replace(/-/g, '_');
}

/** kmod's alias_normalize: '-' becomes '_' outside [...] . */
export function normalizeAlias(s: string): string {
  let out = '';
  let depth = 0;
  for (const c of s) {
    if (c === '[') depth++;
    else if (c === ']' && depth > 0) depth--;
    out += c === '-' && depth === 0 ? '_' : c;
  }
  return out;
}

export class InstalledModules {
  private readonly facts = new Map<string, Promise<ModuleFacts>>();
  private readonly byName = new Map<string, ModuleFile[]>();
  private dep: Promise<Map<string, string[]> | undefined> | undefined;
  private soft: Promise<Map<string, SoftDeps[]>> | undefined;
  private weak: Promise<Map<string, string[]>> | undefined;
  private aliasConfig: Promise<Map<string, string>> | undefined;
  private byPath: Map<string, ModuleFile> | undefined;

  private constructor(
    readonly root: string,
    readonly fs: KabiFs,
    readonly release: string,
    readonly tree: ModuleTree,
    readonly config: DepmodConfig,
  ) {
    for (const f of tree.files) {
      let l = this.byName.get(f.name);
      if (!l) this.byName.set(f.name, (l = []));
      l.push(f);
    }
  }

  /**
   * The kernel's modules as installed, or as they will be once `planned` link changes are
   * made (a dry run asks before anything is written): links to add or re-point become
   * files of the tree, links to remove leave it, and modprobe's choice is made again.
   */
  static async load(fs: KabiFs, root: string, release: string, moduleDir: string, planned: readonly PlannedLink[] = []): Promise<InstalledModules> {
    const config = await loadDepmodConfig(fs, root, release);
    let tree = await scanModuleTree(fs, root, moduleDir, config);
    if (planned.length > 0) {
      const gone = new Set(planned.map((p) => p.link));
      const files = tree.files.filter((f) => !gone.has(f.path));
      for (const p of planned) {
        if (p.kind === 'remove' || p.target === undefined || !p.link.startsWith(moduleDir + '/')) continue;
        const host = await resolveInRoot(fs, root, hostPath(root, p.target)).catch(() => undefined);
        if (host === undefined) continue;
        files.push({ name: moduleNameFromPath(p.link), path: p.link, relPath: p.link.slice(moduleDir.length + 1), host, isLink: true, external: false, virtual: true });
      }
      tree = { moduleDir, files, chosen: chooseModules(config, files) };
    }
    return new InstalledModules(root, fs, release, tree, config);
  }

  get moduleDir(): string {
    return this.tree.moduleDir;
  }

  /** The file modprobe loads for a module name. */
  chosen(name: string): ModuleFile | undefined {
    return this.tree.chosen.get(foldName(name));
  }

  /** Every installed file of that name, wherever it is. */
  filesNamed(name: string): readonly ModuleFile[] {
    return this.byName.get(foldName(name)) ?? [];
  }

  /** The system path the generator sees for a file (its module directory spelled /lib/modules/K, as dracut's srcmods). */
  systemPath(f: ModuleFile): string {
    return f.relPath === undefined ? f.path : `/lib/modules/${this.release}/${f.relPath}`;
  }

  factsOf(f: ModuleFile): Promise<ModuleFacts> {
    let p = this.facts.get(f.host);
    if (!p) this.facts.set(f.host, (p = this.readFacts(f)));
    return p;
  }

  private async readFacts(f: ModuleFile): Promise<ModuleFacts> {
    let bytes: Uint8Array;
    try {
      bytes = await readRegularFile(this.fs, f.host, READ_BUDGETS.module);
    } catch (e) {
      if (e instanceof KabiError) throw e;
      throw new KabiError('IO', `cannot read the installed module: ${(e as Error).message}`, { file: f.host, cause: e });
    }
    const m = await readModuleBytes(bytes, { file: f.host });
    return {
      aliases: m.modinfo.getAll('alias'),
      undefinedSymbols: m.undefinedSymbols.map((s) => s.name),
      firmware: m.modinfo.getAll('firmware'),
      depends: m.depends.map(foldName),
      signed: m.signature !== undefined,
    };
  }

  /**
   * The modules a file needs loaded first, as modules.dep lists them (every level: depmod
   * writes the whole closure on each line); from modinfo depends= when modules.dep has no
   * line for the file.
   */
  async dependencies(f: ModuleFile): Promise<ModuleFile[]> {
    const dep = await (this.dep ??= this.readModulesDep());
    const key = f.relPath ?? f.path;
    const listed = dep?.get(key);
    if (listed !== undefined) {
      this.byPath ??= new Map(this.tree.files.map((x) => [x.relPath ?? x.path, x]));
      return listed.flatMap((p) => this.byPath!.get(p) ?? []);
    }
    const out: ModuleFile[] = [];
    const seen = new Set<string>([f.name]);
    const queue = [...(await this.factsOf(f)).depends];
    while (queue.length > 0) {
      const n = queue.shift()!;
      if (seen.has(n)) continue;
      seen.add(n);
      const c = this.chosen(n);
      if (!c) continue;
      out.push(c);
      queue.push(...(await this.factsOf(c)).depends);
    }
    return out;
  }

  private async readModulesDep(): Promise<Map<string, string[]> | undefined> {
    const text = await this.readText(posix.join(this.moduleDir, 'modules.dep'));
    if (text === undefined) return undefined;
    const out = new Map<string, string[]>();
    for (const line of text.split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      out.set(line.slice(0, colon), line.slice(colon + 1).split(' ').filter(Boolean));
    }
    return out;
  }

  /** softdep lines for a name: modprobe.d's and modules.softdep's. */
  async softdeps(name: string): Promise<SoftDeps[]> {
    const all = await (this.soft ??= this.readSoftdeps());
    return all.get(foldName(name)) ?? [];
  }

  /** weakdep names for a module (modules.weakdep, kmod ≥ 33). */
  async weakdeps(name: string): Promise<readonly string[]> {
    const all = await (this.weak ??= this.readWeakdeps());
    return all.get(foldName(name)) ?? [];
  }

  /** The modprobe.d files in effect, in kmod's order. */
  async modprobeConfigFiles(): Promise<string[]> {
    const byName = new Map<string, string>();
    for (const d of MODPROBE_DIRS) {
      let names: string[];
      try {
        names = await this.fs.readdir(hostPath(this.root, d));
      } catch (e) {
        if (isNotFound(e)) continue;
        throw e;
      }
      for (const n of names) if (n.endsWith('.conf') && !byName.has(n)) byName.set(n, posix.join(d, n));
    }
    return [...byName.keys()].sort().map((n) => byName.get(n)!);
  }

  private async readSoftdeps(): Promise<Map<string, SoftDeps[]>> {
    const out = new Map<string, SoftDeps[]>();
    const texts: string[] = [];
    for (const f of await this.modprobeConfigFiles()) texts.push((await this.readText(f)) ?? '');
    texts.push((await this.readText(posix.join(this.moduleDir, 'modules.softdep'))) ?? '');
    for (const text of texts) {
      for (const line of joinContinuations(text)) {
        const w = line.trim().split(/\s+/);
        if (w[0] !== 'softdep' || w.length < 3) continue;
        const pre: string[] = [];
        const post: string[] = [];
        let into: string[] | undefined;
        for (const t of w.slice(2)) {
          if (t === 'pre:') into = pre;
          else if (t === 'post:') into = post;
          else into?.push(foldName(t));
        }
        const key = foldName(w[1]!);
        out.set(key, [...(out.get(key) ?? []), { pre, post }]);
      }
    }
    return out;
  }

  private async readWeakdeps(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const text = await this.readText(posix.join(this.moduleDir, 'modules.weakdep'));
    for (const line of joinContinuations(text ?? '')) {
      const w = line.trim().split(/\s+/);
      if (w[0] !== 'weakdep' || w.length < 3) continue;
      const key = foldName(w[1]!);
      out.set(key, [...(out.get(key) ?? []), ...w.slice(2).map(foldName)]);
    }
    return out;
  }

  /**
   * Does an argument of instmods or manual_add_modules reach this module: by name, through a
   * modprobe.d alias, by one of its own alias patterns, as "=DIR" (dracut: extra/DIR,
   * kernel/DIR or updates/DIR hold a file of its name), or as a path to a file of its name?
   */
  async reaches(arg: string, file: ModuleFile): Promise<boolean> {
    if (arg.startsWith('=')) {
      const dir = arg.slice(1).replace(/^\/+|\/+$/g, '');
      return this.filesNamed(file.name).some((f) => f.relPath !== undefined && ['extra', 'kernel', 'updates'].some((top) => f.relPath!.startsWith(`${top}/${dir}/`)));
    }
    if (arg.startsWith('/')) return moduleNameFromPath(arg) === file.name;
    const folded = normalizeAlias(arg);
    if (folded === file.name) return true;
    if (this.chosen(folded)) return false;
    const configured = await this.configuredAlias(folded);
    if (configured !== undefined) return configured === file.name;
    return (await this.factsOf(file)).aliases.some((a) => globMatch(normalizeAlias(a), folded));
  }

  /** The module a modprobe.d `alias` line sends a name to, if any. */
  async configuredAlias(name: string): Promise<string | undefined> {
    const all = await (this.aliasConfig ??= this.readConfiguredAliases());
    return all.get(foldName(name));
  }

  private async readConfiguredAliases(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const f of await this.modprobeConfigFiles()) {
      for (const line of joinContinuations((await this.readText(f)) ?? '')) {
        const w = line.trim().split(/\s+/);
        if (w[0] === 'alias' && w.length >= 3 && !out.has(foldName(w[1]!))) out.set(foldName(w[1]!), foldName(w[2]!));
      }
    }
    return out;
  }

  private async readText(sys: string): Promise<string | undefined> {
    try {
      return new TextDecoder().decode(await readSystemFile(this.fs, this.root, sys));
    } catch (e) {
      if (isNotFound(e) || (e as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
      throw e;
    }
  }
}

function joinContinuations(text: string): string[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'));
}
