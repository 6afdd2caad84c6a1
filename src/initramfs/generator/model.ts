import type { ModuleFile } from '../../kernel/module-tree.js';
import type { HostView } from './host-view.js';
import { foldName, normalizeAlias, type InstalledModules } from './installed-modules.js';
import { globMatch } from './shell-eval.js';

/*
 * A generator's module selection, read from its configuration in the root: asked about one
 * installed module, it says whether a fresh run would put it in the image on its own (not as
 * another module's dependency), and which rule says so; or that it cannot be told from files,
 * and why. Dependencies, soft dependencies and firmware follow from the selection the same way
 * for every generator, with the few switches below.
 */

export type Verdict = { readonly include: true; readonly rule: string } | { readonly include: false } | { readonly include: undefined; readonly why: string };

export const NO: Verdict = { include: false };

/**
 * The strip a generator runs: binutils' (whose output kabi reproduces byte for byte; from
 * 2.42 on it aligns sections in the file to at most the word size) or elfutils' eu-strip
 * (reproduced in what the kernel loads, not byte for byte).
 */
export interface StripTool {
  readonly program: 'strip' | 'eu-strip';
  readonly wordAlignedFile: boolean;
}

export interface GeneratorModel {
  /** e.g. "dracut 059, hostonly (sloppy)", "initramfs-tools, MODULES=most". */
  readonly description: string;
  /** Would a fresh run select this module (the file modprobe picks for its name)? */
  selects(file: ModuleFile): Promise<Verdict>;
  /** Names never installed, not even as a dependency (dracut's omit_drivers). */
  omits(name: string): boolean;
  /** Unsigned plain .ko files are stored `strip -g`ed (dracut's default), and by which strip. */
  readonly strips: StripTool | undefined;
  /** .ko.xz/.ko.zst are stored unpacked as .ko (initramfs-tools). */
  readonly unpacks: boolean;
  /** Soft dependencies (pre and post) are installed with a module. */
  readonly softdeps: boolean;
  /** Weak dependencies are installed with a module (dracut ≥ 103 on kmod ≥ 33). */
  readonly weakdeps: boolean;
  /** Where firmware named by a module is looked for (system paths, in order). */
  readonly firmwareDirs: readonly string[];
  /** Every directory that has the firmware gets it copied (dracut), or only the first (initramfs-tools). */
  readonly firmwareFromEveryDir: boolean;
  /** What about the configuration could not be read (shown as notes). */
  readonly notes: readonly string[];
}

/** Ask each rule in turn: the first yes (asking no further), else the first unknown, else no. */
export async function firstVerdict<T>(rules: Iterable<T>, ask: (rule: T) => Promise<Verdict>): Promise<Verdict> {
  let unknown: Verdict | undefined;
  for (const r of rules) {
    const v = await ask(r);
    if (v.include === true) return v;
    if (v.include === undefined) unknown ??= v;
  }
  return unknown ?? NO;
}

/**
 * dracut-install's host-only module list (`modules_loaded`): modules loaded in the running
 * kernel (and what their names resolve to in the target kernel), and every module of the
 * target kernel whose alias matches the modalias of a device in sysfs.
 */
export class HostModules {
  private loaded: Promise<ReadonlySet<string> | undefined> | undefined;
  private aliases: Promise<readonly string[]> | undefined;

  constructor(
    readonly host: HostView,
    readonly installed: InstalledModules,
  ) {}

  /**
   * Is the module in the list? Without /proc/modules (a container, a kernel without module
   * support) dracut-install's list holds only the modalias matches, and so does this answer.
   */
  async has(file: ModuleFile): Promise<boolean> {
    const loaded = await (this.loaded ??= this.host.loadedModules());
    if (loaded?.has(file.name)) return true;
    const facts = await this.installed.factsOf(file);
    if (facts.aliases.length === 0) return false;
    // kmod compares both sides with dashes folded (alias_normalize).
    const patterns = facts.aliases.map(normalizeAlias);
    const devices = await (this.aliases ??= this.host.deviceModaliases().then((l) => l.map(normalizeAlias)));
    if (devices.some((d) => patterns.some((a) => globMatch(a, d)))) return true;
    // A loaded module's name that no module of the target kernel has resolves by alias.
    return loaded !== undefined && [...loaded].some((l) => !this.installed.chosen(l) && patterns.some((a) => globMatch(a, normalizeAlias(l))));
  }

  /**
   * Could an argument computed at run time name this module? When the code says what every
   * value starts with (`crypto-$cipher`), only a module whose name or an alias starts so. Else
   * such arguments are what the running system names (the driver of a disk, a watchdog, a
   * loaded module): only a module it uses, loaded or bound to one of its devices.
   */
  async couldBeNamed(file: ModuleFile, prefix: string | undefined): Promise<boolean> {
    if (prefix) {
      const p = normalizeAlias(prefix);
      return file.name.startsWith(p) || (await this.installed.factsOf(file)).aliases.some((a) => normalizeAlias(a).startsWith(p));
    }
    return this.has(file);
  }
}

export function sameModule(a: string, b: string): boolean {
  return foldName(a) === foldName(b);
}
