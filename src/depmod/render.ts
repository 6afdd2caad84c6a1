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
  /** Also return how the outputs are made of the modules (for a later incremental run). */
  readonly recordParts?: boolean;
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
  readonly parts?: RenderParts;
}

/** How the outputs are made of the modules, for patching them later instead of rendering anew. */
export interface RenderParts {
  /** Per text file made of one part per module: where module i's part starts (n+1 entries; [0] is the header's length). */
  readonly segments: ReadonlyMap<string, Uint32Array>;
  /** Every module's dependencies as modules.dep lists them: closure[closureOff[i], closureOff[i + 1]). */
  readonly closureOff: Uint32Array;
  readonly closure: Uint32Array;
  /** Messages rendering printed about one module: [file, module index, message]. */
  readonly moduleMessages: readonly ModuleMessage[];
}

export type ModuleMessage = readonly [file: string, module: number, text: string];

export const TEXT_HEADERS = {
  'modules.alias': '# Aliases extracted from modules themselves.\n',
  'modules.softdep': '# Soft dependencies extracted from modules themselves.\n',
  'modules.weakdep': '# Weak dependencies extracted from modules themselves.\n',
  'modules.symbols': '# Aliases for symbols, used by symbol_request().\n',
  'modules.devname': '# Device nodes to trigger on-demand module loading.\n',
} as const;

/** The modinfo key each per-module text file is made of, and its line. */
export const INFO_FILES = [
  ['modules.alias', 'alias', (name: string, value: string) => `alias ${value} ${name}\n`],
  ['modules.softdep', 'softdep', (name: string, value: string) => `softdep ${name} ${value}\n`],
  ['modules.weakdep', 'weakdep', (name: string, value: string) => `weakdep ${name} ${value}\n`],
] as const;

/** One module's modules.dep line. */
export function depLine(outPath: string, deps: readonly string[]): string {
  let line = `${outPath}:`;
  for (const d of deps) line += ` ${d}`;
  return line + '\n';
}

/** One module's modules.devname line (from its aliases, in modinfo order), or the error depmod prints instead. */
export function devnameEntry(name: string, aliases: readonly string[]): { line: string } | { error: string } | undefined {
  let dev: string | undefined;
  let type = '';
  let major = 0;
  let minor = 0;
  for (const v of aliases) {
    if (v.startsWith('devname:')) dev = v.slice('devname:'.length);
    else {
      const c = scanTwoUnsigned(v, 'char-major-', '-');
      const b = c.count === 2 ? c : scanTwoUnsigned(v, 'block-major-', '-');
      if (b.count === 2) {
        type = c.count === 2 ? 'c' : 'b';
        major = b.a;
        minor = b.b;
      }
    }
    if (type !== '' && dev !== undefined) break;
  }
  if (dev === undefined) return undefined;
  if (type === '') return { error: `Module '${name}' has devname (${dev}) but lacks major and minor information. Ignoring.\n` };
  return { line: `${name} ${dev} ${type}${major}:${minor}\n` };
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
  const segments = new Map<string, Uint32Array>();
  const moduleMessages: ModuleMessage[] = [];
  const moduleMessage = (file: string, i: number, text: string, level: DepmodMessage['level']) => {
    messages.push({ level, text });
    if (opts.recordParts) moduleMessages.push([file, i, text]);
  };

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
  /** A per-module text: its parts are located even when the file itself is taken as it was. */
  const partsText = (name: string, fingerprint: string | undefined, s: () => string) => {
    text(name, fingerprint, s);
    if (opts.recordParts && !segments.has(name)) s();
  };
  const bin = (name: string, fingerprint: string | undefined, make: () => Uint8Array) => {
    if (!opts.textOnly) emit(name, fingerprint, make);
  };
  /** A text made of a header and one part per module (where each part starts is kept for recordParts). */
  const perModule = (name: string, header: string, part: (i: number) => string): string => {
    const off = new Uint32Array(mods.length + 1);
    const parts: string[] = [];
    let pos = 0;
    for (let i = 0; i < mods.length; i++) {
      off[i] = pos;
      const p = part(i);
      if (p !== '') parts.push(p);
      pos += p.length;
    }
    off[mods.length] = pos;
    // modules.devname has its header only above a first line.
    const h = name === 'modules.devname' && pos === 0 ? '' : header;
    if (h.length > 0) for (let i = 0; i <= mods.length; i++) off[i]! += h.length;
    if (opts.recordParts) segments.set(name, off);
    return h + parts.join('');
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
  const builtinFps = opts.reuse === undefined ? undefined : builtinFingerprints(opts.layout, opts.builtin, opts.builtinModinfo);
  const builtinFp = builtinFps?.['modules.builtin.bin'];
  const modinfoFp = builtinFps?.['modules.builtin.alias.bin'];

  const closureOff = new Uint32Array(mods.length + 1);
  const closures: number[][] = [];
  const depLines = mods.map((m, i) => {
    const all = m.deps.length === 0 ? [] : allDependencies(model, i);
    closures.push(all);
    closureOff[i + 1] = closureOff[i]! + all.length;
    return depLine(m.outPath, all.map((d) => mods[d]!.outPath));
  });

  partsText('modules.dep', undefined, () => perModule('modules.dep', '', (i) => depLines[i]!));
  bin('modules.dep.bin', undefined, () => {
    const idx = new IndexBuilder();
    mods.forEach((m, i) => idx.insert(m.name, depLines[i]!.slice(0, -1), i));
    return idx.write(opts.layout);
  });

  const values = (i: number, keyId: number): string[] => {
    const out: string[] = [];
    const info = mods[i]!.summary.info;
    for (let k = 0; k < info.length; k += 2) if (info[k] === keyId) out.push(str.strings[info[k + 1]!]!);
    return out;
  };
  const infoText = (file: (typeof INFO_FILES)[number]): string => {
    const [name, key, line] = file;
    const keyId = str.find(key);
    return perModule(name, TEXT_HEADERS[name], (i) => (keyId === undefined ? '' : values(i, keyId).map((v) => line(mods[i]!.name, v)).join('')));
  };
  const [aliasFile, softdepFile, weakdepFile] = INFO_FILES;
  partsText('modules.alias', aliasFp, () => infoText(aliasFile));
  bin('modules.alias.bin', aliasFp, () => {
    const idx = new IndexBuilder();
    mods.forEach((m, i) => {
      for (const v of values(i, aliasId)) {
        const key = normalizeAlias(v);
        if (key === undefined) moduleMessage('modules.alias.bin', i, `Unmatched bracket in ${v}\n`, 'WARNING');
        else idx.insert(key, m.name, i);
      }
    });
    return idx.write(opts.layout);
  });
  partsText('modules.softdep', softFp, () => infoText(softdepFile));
  if (opts.weakdep) partsText('modules.weakdep', weakFp, () => infoText(weakdepFile));

  text('modules.symbols', symbolsFp, () => {
    let symbols = TEXT_HEADERS['modules.symbols'];
    for (const s of model.symbols) symbols += `alias symbol:${s.name} ${mods[s.owner]!.name}\n`;
    return symbols;
  });
  bin('modules.symbols.bin', symbolsFp, () => {
    const idx = new IndexBuilder();
    for (const s of model.symbols) idx.insert(`symbol:${s.name}`, mods[s.owner]!.name, s.owner);
    return idx.write(opts.layout);
  });

  bin('modules.builtin.bin', builtinFp, () => renderBuiltin(opts.builtin, opts, messages));
  bin('modules.builtin.alias.bin', modinfoFp, () => renderBuiltinAliases(opts.builtinModinfo, opts, messages));

  partsText('modules.devname', aliasFp, () =>
    perModule('modules.devname', TEXT_HEADERS['modules.devname'], (i) => {
      const e = devnameEntry(mods[i]!.name, values(i, aliasId));
      if (e === undefined) return '';
      if ('error' in e) {
        moduleMessage('modules.devname', i, e.error, 'ERROR');
        return '';
      }
      return e.line;
    }),
  );
  const parts: RenderParts | undefined = opts.recordParts ? { segments, closureOff, closure: Uint32Array.from(closures.flat()), moduleMessages } : undefined;
  return { files, messages, ...(parts ? { parts } : {}) };
}

/** Digests of what the two builtin indexes are made of. */
export function builtinFingerprints(layout: IndexLayout, builtin: string | undefined, modinfo: Uint8Array | undefined): Record<'modules.builtin.bin' | 'modules.builtin.alias.bin', string> {
  const digest = (s: string) => createHash('sha1').update(`${layout}\0${s}`, 'latin1').digest('hex');
  return {
    'modules.builtin.bin': digest(builtin === undefined ? '\u0001missing' : builtin),
    'modules.builtin.alias.bin': digest(modinfo === undefined ? '\u0001missing' : Buffer.from(modinfo.buffer, modinfo.byteOffset, modinfo.byteLength).toString('latin1')),
  };
}

/** modules.builtin.bin, from the text of modules.builtin. */
export function renderBuiltin(builtin: string | undefined, opts: { readonly layout: IndexLayout; readonly dirname: string }, messages: DepmodMessage[]): Uint8Array {
  if (builtin === undefined) {
    messages.push({ level: 'WARNING', text: `could not open modules.builtin at ${opts.dirname}: No such file or directory\n` });
    return new Uint8Array(0);
  }
  const idx = new IndexBuilder();
  for (const line of fgetsLines(builtin, 4096)) {
    if (!isAlpha(line[0])) {
      messages.push({ level: 'ERROR', text: `Invalid modules.builtin line: ${line}\n` });
      continue;
    }
    idx.insert(pathToModname(line), '', 0);
  }
  return idx.write(opts.layout);
}

/** modules.builtin.alias.bin, from the bytes of modules.builtin.modinfo. */
export function renderBuiltinAliases(modinfo: Uint8Array | undefined, opts: { readonly layout: IndexLayout; readonly dirname: string }, messages: DepmodMessage[]): Uint8Array {
  if (modinfo === undefined) {
    messages.push({ level: 'WARNING', text: `could not open modules.builtin.modinfo at ${opts.dirname}: No such file or directory\n` });
    return new Uint8Array(0);
  }
  const idx = new IndexBuilder();
  for (const [modname, alias] of builtinAliases(modinfo)) {
    const key = normalizeAlias(alias);
    if (key === undefined) messages.push({ level: 'WARNING', text: `Unmatched bracket in ${alias}\n` });
    else idx.insert(key, modname, 0);
  }
  return idx.write(opts.layout);
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
