import { inspect, isModuleName, type Inspection } from '../../api/inspect.js';
import { formatCrc } from '../../module/modversions.js';
import type { KernelModule } from '../../module/read-module.js';
import { parse, EXIT_ERROR, type Command } from '../command.js';
import type { CliIo } from '../io.js';
import { HELP_OPTION, JSON_OPTION, ROOT_OPTION, systemRoot } from '../options.js';
import { createProgress } from '../progress.js';
import { summaryOf } from '../summaries.js';

const usage = 'Usage: kabi inspect [--json | -F FIELD] [--root DIR | -b BASEDIR] [-k K] (FILE | NAME)...';

const options = {
  json: JSON_OPTION,
  field: { type: 'string', short: 'F', arg: 'FIELD', complete: 'none', help: "print only FIELD's values, one per line, as modinfo -F does (filename, a modinfo key, parm, signer, sig_key…)" },
  root: { ...ROOT_OPTION, help: 'look NAMEs up in the system installed under DIR, as it sees itself (files are read where they are); default $KABI_ROOT, else /' },
  basedir: { type: 'string', short: 'b', arg: 'BASEDIR', complete: 'dir', help: 'look NAMEs up in BASEDIR/lib/modules/K as modinfo -b does: links and depmod.d of this machine, files shown by their path here' },
  kernel: { type: 'string', short: 'k', arg: 'K', complete: 'kernel', help: 'the kernel whose modules NAMEs are looked up in (default: the running one on /, else $KABI_KERNEL, else the only one installed)' },
  'set-version': { type: 'string', arg: 'K', complete: 'kernel', help: "modinfo's spelling of --kernel" },
  help: HELP_OPTION,
} as const;

const help = `${usage}

Prints what modinfo prints (filename, every .modinfo entry, parameters, the signature) and
then what modinfo does not show: the ELF identity, the size of struct module, the
modversions list, the undefined and exported symbols. Each operand is a module file (any
path with a slash, or a name ending in .ko, .ko.xz, .ko.zst or .ko.gz) or a module NAME,
looked up as modprobe finds it: in kernel K's tree under the root (depmod.d's search order;
- and _ alike) or among K's built-in modules.

  --json          an array of objects (the format is in the README)
  -F FIELD        only FIELD's values, one per line, as modinfo -F: filename, name, any
                  modinfo key (license, version, alias, depends…), parm ("name:text
                  (type)"), sig_id, signer, sig_key, sig_hashalgo, and kabi's elf and
                  this_module; nothing for a field the module lacks
  --root DIR      look NAMEs up in the system under DIR as it sees itself (links followed
                  inside DIR); the file is shown by its path in that system
  -b BASEDIR      look NAMEs up in BASEDIR/lib/modules/K as modinfo -b does (links
                  followed on this machine); the file is shown by its path here
  -k K            the kernel for NAMEs (also --set-version, as modinfo spells it)

Exit status: 0 on success, 2 if a file cannot be read or is not a valid module, or a NAME
is not found (the others are still printed).
`;

export const inspectCommand: Command = {
  name: 'inspect',
  summary: summaryOf('inspect'),
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, options, usage);
    if (values.help) {
      io.stdout(help);
      return 0;
    }
    if (positionals.length === 0) {
      io.stderr(`kabi inspect: no module given\n${usage}\n`);
      return EXIT_ERROR;
    }
    if (values.json && values.field !== undefined) {
      io.stderr(`kabi inspect: --json and -F exclude each other\n${usage}\n`);
      return EXIT_ERROR;
    }
    if (values.basedir !== undefined && values.root !== undefined) {
      io.stderr(`kabi inspect: --root and -b exclude each other\n${usage}\n`);
      return EXIT_ERROR;
    }
    let status = 0;
    const progress = createProgress(io, 'kabi inspect');
    let found: Inspection[];
    try {
      // Only a NAME needs a root; a missing --root is an error then, not before.
      const needsRoot = positionals.some(isModuleName);
      const root = needsRoot ? await systemRoot(io, values.basedir ?? values.root) : undefined;
      const kernel = values.kernel ?? values['set-version'] ?? (root !== undefined && root !== '/' ? io.env['KABI_KERNEL'] || undefined : undefined);
      found = await inspect(positionals, {
        fs: io.fs,
        cwd: io.cwd,
        ...(root !== undefined ? { root } : {}),
        ...(values.basedir !== undefined ? { view: 'host' as const } : {}),
        ...(kernel !== undefined ? { kernel } : {}),
        onProgress: (label, done, total) => progress.update(label, done, total),
        onError: (e) => {
          progress.clear();
          io.stderr(`kabi inspect: ${e.message}\n`);
          status = EXIT_ERROR;
        },
      });
    } finally {
      progress.clear();
    }
    if (values.json) io.stdout(JSON.stringify(found.map((f) => (f.module ? inspectJson(f.module, f.file) : builtinJson(f))), null, 2) + '\n');
    else if (values.field !== undefined) io.stdout(found.flatMap((f) => fieldValues(f, values.field!)).map((v) => v + '\n').join(''));
    else io.stdout(found.map((f) => (f.module ? inspectText(f.module, f.file) : builtinText(f))).join(positionals.length > 1 ? '\n' : ''));
    return status;
  },
};

/** The `--json` shape (documented in the README). */
export function inspectJson(mod: KernelModule, file = mod.file ?? '') {
  return {
    file,
    name: mod.name,
    vermagic: mod.vermagic?.raw ?? null,
    license: mod.license ?? null,
    depends: mod.depends,
    importNamespaces: mod.importNamespaces,
    modinfo: mod.modinfo.toJSON(),
    versions: (mod.versions ?? []).map((v) => ({ symbol: v.symbol, crc: formatCrc(v.crc) })),
    versionsAllocated: mod.versionsAllocated,
    extendedVersions: mod.extendedVersions?.map((v) => ({ symbol: v.symbol, crc: formatCrc(v.crc) })) ?? null,
    undefined: mod.undefinedSymbols.map((s) => s.name),
    weakUndefined: mod.undefinedSymbols.filter((s) => s.weak).map((s) => s.name),
    exports: mod.exports.map((e) => ({
      symbol: e.symbol,
      crc: e.crc === undefined ? null : formatCrc(e.crc),
      gpl: e.gplOnly,
      namespace: e.namespace ?? null,
    })),
    signed: mod.signature !== undefined,
    signature: mod.signature
      ? {
          wellFormed: mod.signature.wellFormed,
          problem: mod.signature.problem ?? null,
          idType: mod.signature.idType,
          length: mod.signature.signatureLength,
          signer: mod.signature.signer ?? null,
          keyId: mod.signature.keyId ?? null,
          hashAlgorithm: mod.signature.hashAlgorithm ?? null,
        }
      : null,
    elf: { class: mod.elf.class, endian: mod.elf.endian, machine: mod.elf.machineName },
    thisModuleSize: mod.thisModule?.size ?? null,
    compression: mod.compression ?? null,
  };
}

function row(key: string, value: string): string {
  // modinfo's "%s:%-*s%s": the key, a colon, padded to 16 columns (longer keys are not cut).
  return `${key}:${' '.repeat(Math.max(0, 15 - key.length))}${value}\n`;
}

/**
 * modinfo's parameters: `parm` (description) and `parmtype` entries of one name merged, in
 * modinfo's order (the name seen last first), as "name:description (type)".
 */
export function moduleParameters(entries: readonly (readonly [string, string])[], field = false): string[] {
  const params: { name: string; desc: string | undefined; type: string | undefined }[] = [];
  for (const [key, value] of entries) {
    if (key !== 'parm' && key !== 'parmtype') continue;
    const colon = value.indexOf(':');
    if (colon < 0) continue;
    const name = value.slice(0, colon);
    let p = params.find((x) => x.name === name);
    if (!p) params.unshift((p = { name, desc: undefined, type: undefined }));
    if (key === 'parm') p.desc = value.slice(colon + 1);
    else p.type = value.slice(colon + 1);
  }
  // A type without a description: "name:type" in the listing, "name: (type)" for -F parm (modinfo's two formats).
  return params.map((p) => (p.desc === undefined ? (field ? `${p.name}: (${p.type})` : `${p.name}:${p.type}`) : p.type === undefined ? `${p.name}:${p.desc}` : `${p.name}:${p.desc} (${p.type})`));
}

/** The key: value rows of a module, in modinfo's order (then kabi's own: elf, this_module). */
export function inspectRows(mod: KernelModule, file = mod.file ?? ''): [string, string][] {
  const rows: [string, string][] = [['filename', file]];
  for (const [k, v] of mod.modinfo.entries) if (k !== 'parm' && k !== 'parmtype') rows.push([k, v]);
  const sig = mod.signature;
  if (sig) {
    rows.push(['sig_id', sig.idType === 2 ? 'PKCS#7' : `type ${sig.idType}`]);
    if (sig.signer !== undefined) rows.push(['signer', sig.signer]);
    if (sig.keyId !== undefined) rows.push(['sig_key', sig.keyId]);
    if (sig.hashAlgorithm !== undefined) rows.push(['sig_hashalgo', sig.hashAlgorithm]);
    if (!sig.wellFormed) rows.push(['sig_problem', sig.problem ?? 'malformed']);
  }
  for (const p of moduleParameters(mod.modinfo.entries)) rows.push(['parm', p]);
  rows.push(['elf', `ELF${mod.elf.class} ${mod.elf.endian}-endian ${mod.elf.machineName}${mod.compression ? `, ${mod.compression}-compressed` : ''}`]);
  if (mod.thisModule) rows.push(['this_module', `0x${mod.thisModule.size.toString(16)} bytes`]);
  return rows;
}

/** modinfo's layout (key: padded to 16 columns), then what modinfo does not show. */
export function inspectText(mod: KernelModule, file = mod.file ?? ''): string {
  let s = inspectRows(mod, file).map(([k, v]) => row(k, v)).join('');
  const versions = mod.versions ?? [];
  s += `modversions (${mod.versions ? versions.length : 'none'}${mod.versions && !mod.versionsAllocated ? ', not SHF_ALLOC' : ''}):\n`;
  for (const v of versions) s += `\t${formatCrc(v.crc)}\t${v.symbol}\n`;
  if (mod.extendedVersions) {
    s += `extended modversions (${mod.extendedVersions.length}):\n`;
    for (const v of mod.extendedVersions) s += `\t${formatCrc(v.crc)}\t${v.symbol}\n`;
  }
  s += `undefined symbols (${mod.undefinedSymbols.length}):\n`;
  for (const u of mod.undefinedSymbols) s += `\t${u.name}${u.weak ? ' (weak)' : ''}\n`;
  s += `exports (${mod.exports.length}):\n`;
  for (const e of mod.exports) {
    const tags = [e.gplOnly ? 'GPL' : '', e.gplFuture ? 'GPL_FUTURE' : '', e.namespace ? `ns=${e.namespace}` : ''].filter(Boolean);
    s += `\t${e.crc === undefined ? '-' : formatCrc(e.crc)}\t${e.symbol}${tags.length ? '\t' + tags.join(' ') : ''}\n`;
  }
  return s;
}

/** A built-in module, as modinfo shows one: its name, "(builtin)", its modules.builtin.modinfo entries. */
function builtinText(f: Inspection): string {
  const entries = f.builtin ?? [];
  return row('name', f.target.replaceAll('-', '_')) + row('filename', f.file) + entries.filter(([k]) => k !== 'parm' && k !== 'parmtype').map(([k, v]) => row(k, v)).join('') + moduleParameters(entries).map((p) => row('parm', p)).join('');
}

function builtinJson(f: Inspection) {
  const modinfo: Record<string, string[]> = {};
  for (const [k, v] of f.builtin ?? []) (modinfo[k] ??= []).push(v);
  return { file: f.file, name: f.target.replaceAll('-', '_'), builtin: true, modinfo };
}

/** modinfo -F FIELD: the field's values, in order; nothing when the module has none. */
export function fieldValues(f: Inspection, field: string): string[] {
  if (!f.module) {
    if (field === 'name') return [f.target.replaceAll('-', '_')];
    if (field === 'filename') return [f.file];
    if (field === 'parm') return moduleParameters(f.builtin ?? [], true);
    return (f.builtin ?? []).filter(([k]) => k === field).map(([, v]) => v);
  }
  if (field === 'parm') return moduleParameters(f.module.modinfo.entries, true);
  if (field === 'parmtype') return f.module.modinfo.entries.filter(([k]) => k === field).map(([, v]) => v);
  return inspectRows(f.module, f.file).filter(([k]) => k === field).map(([, v]) => v);
}

export type { CliIo };
