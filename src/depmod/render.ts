import { createHash } from 'node:crypto';
import { fgetsLines, isAlpha, scanTwoUnsigned } from './c-text.js';
import { allDependencies, type DepmodMessage, type DepmodModel } from './compute.js';
import { IndexBuilder, type IndexLayout } from './index-format.js';

/**
 * The files depmod writes, rendered from a computed model, byte for byte as kmod writes
 * them. Texts are Latin-1 strings (one char per byte); indexes are kmod's binary trie.
 */

export interface RenderOptions {
  readonly layout: IndexLayout;
  /** kmod ≥ 33 also writes modules.weakdep. */
  readonly weakdep: boolean;
  /** Text of modules.builtin, or undefined when there is none. */
  readonly builtin: string | undefined;
  /** Bytes of modules.builtin.modinfo, or undefined when there is none. */
  readonly builtinModinfo: Uint8Array | undefined;
  /** kmod's cfg->dirname, for messages. */
  readonly dirname: string;
  /** depmod -n: only the text files, concatenated on stdout; no index is built. */
  readonly textOnly?: boolean;
  /**
   * The bytes of an earlier rendering of `name` made from inputs with this fingerprint,
   * which are then taken instead of rendering again (only offered for files whose
   * rendering printed nothing).
   */
  readonly reuse?: (name: string, fingerprint: string) => Uint8Array | undefined;
}

export interface RenderedFile {
  readonly name: string;
  readonly data: Uint8Array;
  /** Digest of everything the file was made from; undefined for files always rendered. */
  readonly fingerprint?: string;
  /** Taken from an earlier rendering. */
  readonly reused?: boolean;
  /** Rendering it printed nothing (so a later run may reuse it without losing messages). */
  readonly quiet?: boolean;
}

export interface Rendered {
  /** In the order depmod writes them. */
  readonly files: readonly RenderedFile[];
  readonly messages: readonly DepmodMessage[];
}

/** Every output file name kmod 30 writes (modules.weakdep only from kmod 33). */
export const DEPMOD_OUTPUTS = [
  'modules.dep',
  'modules.dep.bin',
  'modules.alias',
  'modules.alias.bin',
  'modules.softdep',
  'modules.weakdep',
  'modules.symbols',
  'modules.symbols.bin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
  'modules.devname',
] as const;

const latin1 = (s: string): Uint8Array => Buffer.from(s, 'latin1');

export function renderDepmod(model: DepmodModel, opts: RenderOptions): Rendered {
  const messages: DepmodMessage[] = [];
  const files: RenderedFile[] = [];
  const mods = model.modules;
  const str = model.strings;
  const aliasId = str.find('alias') ?? -1;
  const softdepId = str.find('softdep') ?? -1;
  const weakdepId = str.find('weakdep') ?? -1;

  // Each file from what it is made of; with a fingerprint, an earlier identical one is reused.
  const emit = (name: string, fingerprint: string | undefined, make: () => Uint8Array) => {
    const old = fingerprint !== undefined ? opts.reuse?.(name, fingerprint) : undefined;
    if (old !== undefined) {
      files.push({ name, data: old, fingerprint, reused: true, quiet: true });
      return;
    }
    const before = messages.length;
    const data = make();
    files.push({ name, data, ...(fingerprint !== undefined ? { fingerprint } : {}), quiet: messages.length === before });
  };
  const text = (name: string, fingerprint: string | undefined, s: () => string) => emit(name, fingerprint, () => latin1(s()));
  const bin = (name: string, fingerprint: string | undefined, make: () => Uint8Array) => {
    if (!opts.textOnly) emit(name, fingerprint, make);
  };
  const digest = (parts: () => string) => (opts.reuse === undefined ? undefined : createHash('sha1').update(`${opts.layout}\0${parts()}`, 'latin1').digest('hex'));
  const infoDigest = (keys: number[]) =>
    digest(() => {
      let d = '';
      mods.forEach((m, i) => {
        const info = m.summary.info;
        for (let k = 0; k < info.length; k += 2) if (keys.includes(info[k]!)) d += `${i}\0${m.name}\0${info[k]}\0${str.strings[info[k + 1]!]}\n`;
      });
      return d;
    });
  const aliasFp = infoDigest([aliasId]);
  const softFp = infoDigest([softdepId]);
  const weakFp = infoDigest([weakdepId]);
  const symbolsFp = digest(() => model.symbols.map((s) => `${s.name}\0${s.owner}\0${mods[s.owner]!.name}\n`).join(''));
  const builtinFp = digest(() => (opts.builtin === undefined ? '\u0001missing' : opts.builtin));
  const modinfoFp = digest(() => (opts.builtinModinfo === undefined ? '\u0001missing' : Buffer.from(opts.builtinModinfo).toString('latin1')));

  const depLines = mods.map((m, i) => {
    const all = m.deps.length === 0 ? [] : allDependencies(model, i);
    let line = `${m.outPath}:`;
    for (const d of all) line += ` ${mods[d]!.outPath}`;
    return line;
  });

  text('modules.dep', undefined, () => depLines.map((l) => l + '\n').join(''));
  bin('modules.dep.bin', undefined, () => {
    const idx = new IndexBuilder();
    mods.forEach((m, i) => idx.insert(m.name, depLines[i]!, i));
    return idx.write(opts.layout);
  });

  const infoLines = (key: string, line: (name: string, value: string) => string, header: string): string => {
    let out = header;
    const keyId = str.find(key);
    if (keyId === undefined) return out;
    for (const m of mods) {
      const info = m.summary.info;
      for (let k = 0; k < info.length; k += 2) if (info[k] === keyId) out += line(m.name, str.strings[info[k + 1]!]!);
    }
    return out;
  };
  text('modules.alias', aliasFp, () => infoLines('alias', (n, v) => `alias ${v} ${n}\n`, '# Aliases extracted from modules themselves.\n'));
  bin('modules.alias.bin', aliasFp, () => {
    const idx = new IndexBuilder();
    mods.forEach((m, i) => {
      const info = m.summary.info;
      for (let k = 0; k < info.length; k += 2) {
        if (info[k] !== aliasId) continue;
        const v = str.strings[info[k + 1]!]!;
        const key = normalizeAlias(v);
        if (key === undefined) messages.push({ level: 'WARNING', text: `Unmatched bracket in ${v}\n` });
        else idx.insert(key, m.name, i);
      }
    });
    return idx.write(opts.layout);
  });
  text('modules.softdep', softFp, () => infoLines('softdep', (n, v) => `softdep ${n} ${v}\n`, '# Soft dependencies extracted from modules themselves.\n'));
  if (opts.weakdep) text('modules.weakdep', weakFp, () => infoLines('weakdep', (n, v) => `weakdep ${n} ${v}\n`, '# Weak dependencies extracted from modules themselves.\n'));

  text('modules.symbols', symbolsFp, () => {
    let symbols = '# Aliases for symbols, used by symbol_request().\n';
    for (const s of model.symbols) symbols += `alias symbol:${s.name} ${mods[s.owner]!.name}\n`;
    return symbols;
  });
  bin('modules.symbols.bin', symbolsFp, () => {
    const idx = new IndexBuilder();
    for (const s of model.symbols) idx.insert(`symbol:${s.name}`, mods[s.owner]!.name, s.owner);
    return idx.write(opts.layout);
  });

  bin('modules.builtin.bin', builtinFp, () => {
    if (opts.builtin === undefined) {
      messages.push({ level: 'WARNING', text: `could not open modules.builtin at ${opts.dirname}: No such file or directory\n` });
      return new Uint8Array(0);
    }
    const idx = new IndexBuilder();
    for (const line of fgetsLines(opts.builtin, 4096)) {
      if (!isAlpha(line[0])) {
        messages.push({ level: 'ERROR', text: `Invalid modules.builtin line: ${line}\n` });
        continue;
      }
      idx.insert(pathToModname(line), '', 0);
    }
    return idx.write(opts.layout);
  });
  bin('modules.builtin.alias.bin', modinfoFp, () => {
    if (opts.builtinModinfo === undefined) {
      messages.push({ level: 'WARNING', text: `could not open modules.builtin.modinfo at ${opts.dirname}: No such file or directory\n` });
      return new Uint8Array(0);
    }
    const idx = new IndexBuilder();
    for (const [modname, alias] of builtinAliases(opts.builtinModinfo)) {
      const key = normalizeAlias(alias);
      if (key === undefined) messages.push({ level: 'WARNING', text: `Unmatched bracket in ${alias}\n` });
      else idx.insert(key, modname, 0);
    }
    return idx.write(opts.layout);
  });

  text('modules.devname', aliasFp, () => {
    let devname = '';
    for (const m of mods) {
      let name: string | undefined;
      let type = '';
      let major = 0;
      let minor = 0;
      const info = m.summary.info;
      for (let k = 0; k < info.length; k += 2) {
        if (info[k] !== aliasId) continue;
        const v = str.strings[info[k + 1]!]!;
        if (v.startsWith('devname:')) name = v.slice('devname:'.length);
        else {
          const c = scanTwoUnsigned(v, 'char-major-', '-');
          const b = c.count === 2 ? c : scanTwoUnsigned(v, 'block-major-', '-');
          if (b.count === 2) {
            type = c.count === 2 ? 'c' : 'b';
            major = b.a;
            minor = b.b;
          }
        }
        if (type !== '' && name !== undefined) break;
      }
      if (name === undefined) continue;
      if (type === '') {
        messages.push({ level: 'ERROR', text: `Module '${m.name}' has devname (${name}) but lacks major and minor information. Ignoring.\n` });
        continue;
      }
      if (devname === '') devname = '# Device nodes to trigger on-demand module loading.\n';
      devname += `${m.name} ${name} ${type}${major}:${minor}\n`;
    }
    return devname;
  });
  return { files, messages };
}

/** alias_normalize(): '-' becomes '_' except inside [...]; an unbalanced bracket is refused. */
export function normalizeAlias(alias: string): string | undefined {
  if (alias.length < 4095 && !alias.includes('[') && !alias.includes(']')) return alias.includes('-') ? alias.replaceAll('-', '_') : alias;
  let out = '';
  const n = Math.min(alias.length, 4095);
  for (let i = 0; i < n; i++) {
    const c = alias[i]!;
    if (c === '-') out += '_';
    else if (c === ']') return undefined;
    else if (c === '[') {
      const close = alias.indexOf(']', i);
      if (close < 0) return undefined;
      out += alias.slice(i, close + 1);
      i = close;
    } else out += c;
  }
  return out;
}

/** path_to_modname(): the basename up to its first '.', '-' folded to '_' (a trailing newline stays). */
function pathToModname(line: string): string {
  const base = line.slice(line.lastIndexOf('/') + 1);
  const dot = base.indexOf('.');
  return (dot < 0 ? base : base.slice(0, dot)).replace(/-/g, '_');
}

/**
 * output_builtin_alias_bin()'s stream parser over "modname.key=value\0" records: a record
 * whose key is not terminated by '=' takes the next record down with it, as the skip reads
 * on to the following NUL; a value cut off by the end of the file is dropped. Module names
 * are taken as written.
 */
export function builtinAliases(data: Uint8Array): [modname: string, alias: string][] {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
  const out: [string, string][] = [];
  const n = text.length;
  let p = 0;
  // Read up to `end` (or a NUL, or the end); the text, and whether `end` was what stopped it.
  let hit = false;
  const readTo = (end: string): string => {
    const nul = text.indexOf('\0', p);
    let stop = end === '\0' ? nul : text.indexOf(end, p);
    if (stop < 0 || (nul >= 0 && nul < stop)) stop = nul;
    if (stop < 0) stop = n;
    const s = text.slice(p, stop);
    hit = stop < n && text[stop] === end;
    p = stop < n ? stop + 1 : n;
    return s;
  };
  while (p < n) {
    const mod = readTo('.');
    if (!hit || mod === '') continue;
    const key = readTo('=');
    if (!hit || key !== 'alias') {
      readTo('\0');
      continue;
    }
    const value = readTo('\0');
    if (!hit || value === '') continue;
    out.push([mod, value]);
  }
  return out;
}
