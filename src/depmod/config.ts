import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import { confinedPath, hostPath, readSystemFile } from '../kernel/paths.js';

/** One entry of a `search` line: a subdirectory, or the `built-in`/`external` keywords. */
export type SearchEntry = { kind: 'dir'; path: string } | { kind: 'built-in' } | { kind: 'external' };

export interface OverrideEntry {
  readonly modname: string;
  readonly subdir: string;
}

export interface DepmodConfig {
  /** In configuration order (first = highest priority). Paths are kept as written: kmod compares them verbatim. */
  readonly search: readonly SearchEntry[];
  /** In configuration order; kmod tries them last to first. */
  readonly overrides: readonly OverrideEntry[];
  /** External directories (system paths) for this kernel, in configuration order (scanned last to first). */
  readonly externals: readonly string[];
  /** Names (of directories or files) skipped at any depth while scanning. */
  readonly excludes: readonly string[];
  /** Files the configuration came from (system paths), for messages. */
  readonly files: readonly string[];
  /** What depmod reports about the configuration ("file:line: ignoring bad line…"); nothing in it is fatal. */
  readonly messages?: readonly string[];
}

/** Where kmod looks for depmod.d, most important first; a basename in an earlier one hides later ones. */
export const DEPMOD_CONFIG_DIRS = ['/etc/depmod.d', '/run/depmod.d', '/usr/local/lib/depmod.d', '/usr/lib/depmod.d', '/lib/depmod.d'];

/** No `search` line at all means `search updates`: updates/ outranks everything else, which ties. */
export const DEFAULT_DEPMOD_CONFIG: DepmodConfig = {
  search: [{ kind: 'dir', path: 'updates' }],
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
 * Parse depmod.d text for one kernel release as kmod's cfg_file_parse() does: a line is a
 * comment only when it starts with '#', a backslash-newline joins lines (a backslash before
 * any other character is dropped), words are separated by spaces and tabs. Kernel-version
 * patterns in `override` and `external` are POSIX extended regexes matched anywhere in the
 * release (unanchored regexec), or `*`. Bad lines are reported and skipped, never fatal.
 */
export function parseDepmodConfig(sources: readonly ConfigSource[], kernelRelease: string): DepmodConfig {
  const search: SearchEntry[] = [];
  const overrides: OverrideEntry[] = [];
  const externals: string[] = [];
  const excludes: string[] = [];
  const messages: string[] = [];
  for (const src of sources) {
    for (const { words, line } of logicalLines(src.text)) {
      const [cmd, ...args] = words as [string, ...string[]];
      const bad = () => messages.push(`${src.file}:${line}: ignoring bad line starting with '${cmd}'`);
      switch (cmd) {
        case 'search':
          for (const a of args) {
            if (a === 'built-in') search.push({ kind: 'built-in' });
            else if (a === 'external') search.push({ kind: 'external' });
            else search.push({ kind: 'dir', path: a });
          }
          break;
        case 'override': {
          if (args.length < 3) {
            bad();
            break;
          }
          const [modname, kver, subdir] = args as [string, string, string];
          if (kernelMatches(kver, kernelRelease)) overrides.push({ modname, subdir });
          break;
        }
        case 'external': {
          if (args.length < 2) {
            bad();
            break;
          }
          const [kver, dir] = args as [string, string];
          if (kernelMatches(kver, kernelRelease)) externals.push(dir);
          break;
        }
        case 'exclude':
          excludes.push(...args);
          break;
        case 'include':
        case 'make_map_files':
          break; // accepted and ignored, as kmod does
        default:
          bad();
          break;
      }
    }
  }
  const files = sources.map((s) => s.file);
  if (search.length === 0) return { ...DEFAULT_DEPMOD_CONFIG, overrides, externals, excludes, files, messages };
  return { search, overrides, externals, excludes, files, messages };
}

function kernelMatches(pattern: string, release: string): boolean {
  if (pattern === '*') return true;
  try {
    return new RegExp(pattern).test(release);
  } catch {
    return false; // kmod: a pattern regcomp rejects never matches
  }
}

/** kmod's freadline_wrapped(): the line number reported is that of the last physical line. */
function* logicalLines(text: string): Generator<{ words: string[]; line: number }> {
  let lineNo = 0;
  let i = 0;
  while (i < text.length) {
    let buf = '';
    for (;;) {
      if (i >= text.length) {
        lineNo++;
        break;
      }
      const ch = text[i++]!;
      if (ch === '\n') {
        lineNo++;
        break;
      }
      if (ch === '\\') {
        if (i < text.length && text[i] === '\n') {
          i++;
          lineNo++;
          continue;
        }
        if (i < text.length) buf += text[i++]!;
        continue;
      }
      buf += ch;
    }
    if (buf === '' || buf.startsWith('#')) continue;
    const words = buf.split(/[ \t]+/).filter((w) => w !== '');
    if (words.length > 0) yield { words, line: lineNo };
  }
}

/**
 * Read the depmod.d files of the system under `root`, in kmod's order: all `*.conf`
 * basenames sorted, each taken from the first directory that has it. `dirs` replaces
 * the default directories (depmod -C).
 */
export async function loadDepmodConfig(fs: KabiFs, root: string, kernelRelease: string, dirs: readonly string[] = DEPMOD_CONFIG_DIRS): Promise<DepmodConfig> {
  const chosen = new Map<string, string>();
  const listMessages: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      // Found inside the root: a link among the directories never leads out of it.
      const host = await confinedPath(fs, root, dir);
      const st = await fs.stat(host);
      if (!st.isDirectory()) {
        if (!chosen.has(posix.basename(dir))) chosen.set(posix.basename(dir), dir);
        continue;
      }
      names = await fs.readdir(host);
    } catch (e) {
      if (isNotFound(e)) continue;
      throw new KabiError('IO', `cannot read ${dir}: ${(e as Error).message}`, { file: hostPath(root, dir), cause: e });
    }
    for (const n of names) {
      // cfg_files_filter_out(): hidden files and names not ending in .conf are skipped quietly.
      if (n.startsWith('.') || n.length < 6 || !n.endsWith('.conf') || chosen.has(n)) continue;
      const path = posix.join(dir, n);
      try {
        if ((await fs.stat(await confinedPath(fs, root, path))).isDirectory()) {
          listMessages.push(`Directories inside directories are not supported: ${path}`);
          continue;
        }
      } catch (e) {
        if (!isNotFound(e)) throw new KabiError('IO', `cannot read ${path}: ${(e as Error).message}`, { file: hostPath(root, path), cause: e });
      }
      chosen.set(n, path);
    }
  }
  const sources: ConfigSource[] = [];
  for (const name of [...chosen.keys()].sort()) {
    const file = chosen.get(name)!;
    try {
      sources.push({ file, text: Buffer.from(await readSystemFile(fs, root, file)).toString('latin1') });
    } catch (e) {
      if (!isNotFound(e)) throw new KabiError('IO', `cannot read ${file}: ${(e as Error).message}`, { file: hostPath(root, file), cause: e });
    }
  }
  const config = parseDepmodConfig(sources, kernelRelease);
  return listMessages.length ? { ...config, messages: [...listMessages, ...(config.messages ?? [])] } : config;
}
