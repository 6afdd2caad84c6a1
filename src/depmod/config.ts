import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import { hostPath, readSystemFile } from '../kernel/paths.js';

/** One entry of a `search` line: a subdirectory, or the `built-in`/`external` keywords. */
export type SearchEntry = { kind: 'dir'; path: string } | { kind: 'built-in' } | { kind: 'external' };

export interface OverrideEntry {
  readonly modname: string;
  readonly subdir: string;
}

export interface DepmodConfig {
  /** In configuration order (first = highest priority). */
  readonly search: readonly SearchEntry[];
  /** In configuration order; the first matching one wins. */
  readonly overrides: readonly OverrideEntry[];
  /** External directories (system paths) for this kernel, in configuration order. */
  readonly externals: readonly string[];
  /** Directory names skipped at any depth while scanning. */
  readonly excludes: readonly string[];
  /** Files the configuration came from (system paths), for messages. */
  readonly files: readonly string[];
}

/** Where kmod looks for depmod.d, most important first; a basename in an earlier one hides later ones. */
export const DEPMOD_CONFIG_DIRS = ['/etc/depmod.d', '/run/depmod.d', '/usr/local/lib/depmod.d', '/usr/lib/depmod.d', '/lib/depmod.d'];

/** No configuration at all means `search updates`, with built-in (the rest of the tree) below it. */
export const DEFAULT_DEPMOD_CONFIG: DepmodConfig = {
  search: [{ kind: 'dir', path: 'updates' }, { kind: 'built-in' }],
  overrides: [],
  externals: [],
  excludes: [],
  files: [],
};

export interface ConfigSource {
  readonly file: string;
  readonly text: string;
}

/**
 * Parse depmod.d text for one kernel release. Kernel-version patterns in `override` and
 * `external` are POSIX extended regexes matched anywhere in the release (kmod uses an
 * unanchored regexec), or `*`.
 */
export function parseDepmodConfig(sources: readonly ConfigSource[], kernelRelease: string): DepmodConfig {
  const search: SearchEntry[] = [];
  const overrides: OverrideEntry[] = [];
  const externals: string[] = [];
  const excludes: string[] = [];
  let sawSearch = false;
  for (const src of sources) {
    for (const { words, line } of logicalLines(src.text)) {
      const [cmd, ...args] = words;
      const fail = (why: string) => new KabiError('DEPMOD_CONFIG', why, { file: src.file, line });
      switch (cmd) {
        case 'search':
          sawSearch = true;
          for (const a of args) {
            if (a === 'built-in') search.push({ kind: 'built-in' });
            else if (a === 'external') search.push({ kind: 'external' });
            else search.push({ kind: 'dir', path: a.replace(/^\/+|\/+$/g, '') });
          }
          break;
        case 'override': {
          if (args.length < 3) throw fail('override needs <modname> <kernel-version> <subdirectory>');
          const [modname, kver, subdir] = args as [string, string, string];
          if (kernelMatches(kver, kernelRelease)) overrides.push({ modname, subdir: subdir.replace(/^\/+|\/+$/g, '') });
          break;
        }
        case 'external': {
          if (args.length < 2) throw fail('external needs <kernel-version> <absolute directory>');
          const [kver, dir] = args as [string, string];
          if (kernelMatches(kver, kernelRelease)) externals.push(posix.normalize(dir).replace(/\/+$/, ''));
          break;
        }
        case 'exclude':
          excludes.push(...args);
          break;
        case 'include':
        case 'make_map_files':
          break; // accepted and ignored, as kmod does
        default:
          // kmod warns and goes on; an unknown word must not stop module installation.
          break;
      }
    }
  }
  if (!sawSearch) return { ...DEFAULT_DEPMOD_CONFIG, overrides, externals, excludes, files: sources.map((s) => s.file) };
  return { search, overrides, externals, excludes, files: sources.map((s) => s.file) };
}

function kernelMatches(pattern: string, release: string): boolean {
  if (pattern === '*') return true;
  try {
    return new RegExp(pattern).test(release);
  } catch {
    return false; // kmod: a pattern regcomp rejects never matches
  }
}

function* logicalLines(text: string): Generator<{ words: string[]; line: number }> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = i + 1;
    let l = lines[i]!;
    while (l.endsWith('\\') && i + 1 < lines.length) l = l.slice(0, -1) + ' ' + lines[++i]!;
    const hash = l.indexOf('#');
    if (hash >= 0) l = l.slice(0, hash);
    const words = l.split(/[ \t\r]+/).filter((w) => w !== '');
    if (words.length > 0) yield { words, line: first };
  }
}

/**
 * Read the depmod.d files of the system under `root`, in kmod's order: all `*.conf`
 * basenames sorted, each taken from the first directory that has it. `dirs` replaces
 * the default directories (depmod -C).
 */
export async function loadDepmodConfig(fs: KabiFs, root: string, kernelRelease: string, dirs: readonly string[] = DEPMOD_CONFIG_DIRS): Promise<DepmodConfig> {
  const chosen = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      const st = await fs.stat(hostPath(root, dir));
      if (st.isFile()) {
        chosen.set(posix.basename(dir), dir);
        continue;
      }
      names = await fs.readdir(hostPath(root, dir));
    } catch (e) {
      if (isNotFound(e)) continue;
      throw new KabiError('IO', `cannot read ${dir}: ${(e as Error).message}`, { file: hostPath(root, dir), cause: e });
    }
    for (const n of names) if (n.endsWith('.conf') && !chosen.has(n)) chosen.set(n, posix.join(dir, n));
  }
  const sources: ConfigSource[] = [];
  for (const name of [...chosen.keys()].sort()) {
    const file = chosen.get(name)!;
    try {
      sources.push({ file, text: new TextDecoder().decode(await readSystemFile(fs, root, file)) });
    } catch (e) {
      if (!isNotFound(e)) throw new KabiError('IO', `cannot read ${file}: ${(e as Error).message}`, { file: hostPath(root, file), cause: e });
    }
  }
  return parseDepmodConfig(sources, kernelRelease);
}
