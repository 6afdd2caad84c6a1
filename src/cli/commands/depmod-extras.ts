import { posix } from 'node:path';
import type { KabiFs } from '../../fs.js';
import type { DepmodMessage } from '../../depmod/compute.js';
import { normalizeAlias } from '../../depmod/render.js';
import { resolveInRoot } from '../../kernel/paths.js';
import { latin1Text } from '../../depmod/c-text.js';

/**
 * What kmod's depmod does around its run that kabi's depmod (src/depmod) leaves to its
 * caller: the -A up-to-date test and the -w duplicate warnings.
 */

/**
 * depmod -A: is modules.dep at least as new as every module file of the tree? As kmod's
 * depfile_up_to_date(): the tree is walked (`build` and `source` skipped at any depth,
 * symbolic links followed), only names with a module extension count, and microseconds are
 * compared. An error (no modules.dep) means "not up to date", after kmod's message.
 * `linkRoot` is where a symbolic link is followed: "/" for -b (this machine, as kmod), the
 * root itself for --root.
 */
export async function depfileUpToDate(
  fs: KabiFs,
  dir: string,
  messageDir: string,
  extensions: readonly string[],
  linkRoot: string,
  messages: DepmodMessage[],
): Promise<boolean> {
  let depMtime: bigint;
  try {
    depMtime = usec((await fs.stat(posix.join(dir, 'modules.dep'), { bigint: true })).mtimeNs);
  } catch (e) {
    messages.push({ level: 'ERROR', text: `could not fstatat(${messageDir}, modules.dep): ${strerror(e)}\n` });
    return false;
  }
  const seen = new Set<string>();
  const walk = async (host: string, shown: string): Promise<boolean> => {
    // A directory reached twice (a link loop) is not walked again: kmod would recurse until
    // the path is too long, with the same answer.
    let id: string;
    try {
      const st = await fs.stat(host, { bigint: true });
      id = `${st.dev}:${st.ino}`;
    } catch {
      return true;
    }
    if (seen.has(id)) return true;
    seen.add(id);
    let names: string[];
    try {
      names = (await fs.readdir(host)).map(String).sort();
    } catch (e) {
      messages.push({ level: 'ERROR', text: `could not open directory ${shown}: ${strerror(e)}\n` });
      return true;
    }
    for (const name of names) {
      if (name === 'build' || name === 'source') continue;
      const entry = posix.join(host, name);
      const target = await followInside(fs, entry, linkRoot);
      let st;
      try {
        st = await fs.stat(target, { bigint: true });
      } catch (e) {
        messages.push({ level: 'ERROR', text: `fstatat(${shown}, ${name}): ${strerror(e)}\n` });
        continue;
      }
      if (st.isDirectory()) {
        if (!(await walk(target, `${shown}/${name}`))) return false;
      } else if (st.isFile()) {
        if (!extensions.some((x) => name.endsWith(x))) continue;
        if (usec(st.mtimeNs) > depMtime) return false;
      } else {
        messages.push({ level: 'ERROR', text: `unsupported file type ${shown}/${name}: ${(Number(st.mode) & 0o170000).toString(8)}\n` });
      }
    }
    return true;
  };
  return walk(dir, messageDir);
}

function usec(ns: bigint): bigint {
  return ns / 1000n;
}

/** A path whose symbolic links are followed inside `linkRoot` ("/" follows them on this machine). */
async function followInside(fs: KabiFs, host: string, linkRoot: string): Promise<string> {
  if (linkRoot === '/') return host;
  try {
    return (await resolveInRoot(fs, linkRoot, host)) ?? host;
  } catch {
    return host;
  }
}

function strerror(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'No such file or directory';
  if (code === 'ENOTDIR') return 'Not a directory';
  if (code === 'EACCES') return 'Permission denied';
  if (code === 'ELOOP') return 'Too many levels of symbolic links';
  return (e as Error)?.message ?? String(e);
}

/**
 * depmod -w: kmod warns when modules.alias.bin gets the same (normalised) alias for the same
 * module twice, while it writes that index, so after the messages of the computation and
 * before those of the builtin indexes, which it writes later.
 */
export function withDuplicateWarnings(messages: readonly DepmodMessage[], aliasText: string | undefined): DepmodMessage[] {
  if (aliasText === undefined) return [...messages];
  const seen = new Set<string>();
  const warnings: DepmodMessage[] = [];
  for (const line of aliasText.split('\n')) {
    const m = /^alias (\S+) (\S+)$/.exec(line);
    if (!m) continue;
    const key = normalizeAlias(m[1]!);
    if (key === undefined) continue;
    const k = `${key}\0${m[2]}`;
    if (seen.has(k)) warnings.push({ level: 'WARNING', text: `duplicate module alias:\n${key} ${m[2]}\n` });
    seen.add(k);
  }
  const at = messages.findIndex((x) => /modules\.builtin/.test(x.text));
  const out = [...messages];
  out.splice(at < 0 ? out.length : at, 0, ...warnings);
  return out;
}

/** A rendered output as text (the text files depmod writes are Latin-1 safe byte strings). */
export function outputText(files: readonly { name: string; data: Uint8Array }[], name: string): string | undefined {
  const f = files.find((x) => x.name === name);
  return f === undefined ? undefined : latin1Text(f.data);
}

/**
 * depmod -P C strips C from the front of each symbol name: of the modules' exports, of
 * Module.symvers (-E), of System.map's field before kmod looks for `__ksymtab_` (-F), and of
 * each symbol a module needs before it is looked up. kabi's depmod has no such step; where
 * the prefix would change what kmod computes, that is said (the caller writes nothing), and
 * otherwise the outputs are kmod's as they are. Returns why they would differ, or undefined.
 */
export function prefixMatters(prefix: string, symbolsText: string | undefined, symvers: string | undefined, systemMap: string | undefined): string | undefined {
  for (const line of (symbolsText ?? '').split('\n')) {
    const m = /^alias symbol:(\S+) /.exec(line);
    if (m && m[1]!.startsWith(prefix)) return `the export ${m[1]} begins with it`;
  }
  for (const line of (symvers ?? '').split('\n')) {
    const sym = line.split('\t')[1];
    if (sym !== undefined && sym.startsWith(prefix)) return `the symvers symbol ${sym} begins with it`;
  }
  const KSYM = '__ksymtab_';
  for (const line of (systemMap ?? '').split('\n')) {
    const field = line.split(' ')[2];
    if (field === undefined || !field.startsWith(prefix)) continue;
    if (field.startsWith(KSYM) !== field.slice(1).startsWith(KSYM)) return `System.map's ${field} reads differently with it`;
  }
  return undefined;
}
