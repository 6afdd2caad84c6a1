import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import { hostPath, readSystemFile } from '../kernel/paths.js';

/*
 * Module names a generator is told to include whatever the image holds now: dracut's
 * add_drivers/force_drivers/drivers/filesystems, initramfs-tools' modules files,
 * mkinitcpio's MODULES array. A changed module named there needs the generator even when
 * the current image lacks it (SUSE's weak-modules2 asks dracut's configuration the same
 * question). Only literal names count: shell expansions in these files are not evaluated.
 */

const DRACUT_DIRS = ['/usr/lib/dracut/dracut.conf.d', '/etc/dracut.conf.d'];
const DRACUT_KEYS = new Set(['add_drivers', 'force_drivers', 'drivers', 'filesystems']);

export interface ConfiguredDrivers {
  /** kmod module names ('-' folded to '_'). */
  readonly names: ReadonlySet<string>;
  /** System paths of the files the names came from. */
  readonly files: readonly string[];
}

export async function configuredDrivers(fs: KabiFs, root: string): Promise<ConfiguredDrivers> {
  const names = new Set<string>();
  const files: string[] = [];
  const add = (file: string, words: Iterable<string>) => {
    let any = false;
    for (const w of words) {
      if (/^[A-Za-z0-9_-]+$/.test(w)) {
        names.add(w.replace(/-/g, '_'));
        any = true;
      }
    }
    if (any) files.push(file);
  };
  for (const f of ['/etc/dracut.conf', ...(await confFiles(fs, root, DRACUT_DIRS))]) {
    const text = await readText(fs, root, f);
    if (text !== undefined) add(f, shellAssignments(text, DRACUT_KEYS));
  }
  for (const f of ['/etc/initramfs-tools/modules', ...(await dirFiles(fs, root, '/usr/share/initramfs-tools/modules.d'))]) {
    const text = await readText(fs, root, f);
    if (text !== undefined) add(f, initramfsToolsModules(text));
  }
  for (const f of ['/etc/mkinitcpio.conf', ...(await confFiles(fs, root, ['/etc/mkinitcpio.conf.d']))]) {
    const text = await readText(fs, root, f);
    if (text !== undefined) add(f, mkinitcpioModules(text));
  }
  return { names, files };
}

/** Words assigned to any of `keys` in a shell-style config (`key="a b"`, `key+=" c "`). */
export function shellAssignments(text: string, keys: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const re = /^\s*([A-Za-z_][A-Za-z0-9_]*)\+?=\s*(?:"([^"]*)"|'([^']*)'|(\S*))/gm;
  for (const m of text.matchAll(re)) {
    if (!keys.has(m[1]!)) continue;
    out.push(...(m[2] ?? m[3] ?? m[4] ?? '').split(/\s+/).filter(Boolean));
  }
  return out;
}

/** initramfs-tools "modules" file: one module per line, optional arguments after it. */
export function initramfsToolsModules(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean)
    .map((l) => l.split(/\s+/)[0]!);
}

/** mkinitcpio.conf: MODULES=(a b) or MODULES="a b". */
export function mkinitcpioModules(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*MODULES\+?=\s*(?:\(([^)]*)\)|"([^"]*)")/gm)) {
    const body = (m[1] ?? m[2] ?? '').replace(/#[^\n]*/g, '');
    out.push(...body.split(/\s+/).map((w) => w.replace(/^['"]|['"]?\??$/g, '')).filter(Boolean));
  }
  return out;
}

async function readText(fs: KabiFs, root: string, sys: string): Promise<string | undefined> {
  try {
    return new TextDecoder().decode(await readSystemFile(fs, root, sys));
  } catch (e) {
    if (isNotFound(e) || (e as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
    throw e;
  }
}

async function dirFiles(fs: KabiFs, root: string, dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(hostPath(root, dir))).sort().map((n) => posix.join(dir, n));
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

/** *.conf files of several directories, a name in a later directory hiding the same name in an earlier one. */
async function confFiles(fs: KabiFs, root: string, dirs: readonly string[]): Promise<string[]> {
  const byName = new Map<string, string>();
  for (const d of dirs) for (const f of await dirFiles(fs, root, d)) if (f.endsWith('.conf')) byName.set(posix.basename(f), f);
  return [...byName.keys()].sort().map((n) => byName.get(n)!);
}
