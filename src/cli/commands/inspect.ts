import { resolve } from 'node:path';
import { formatCrc } from '../../module/modversions.js';
import type { KernelModule } from '../../module/read-module.js';
import { ModuleCache } from '../../compat/kernel-model.js';
import { mapPool } from '../../util/pool.js';
import { isKabiError } from '../../errors.js';
import { parse, EXIT_ERROR, type Command } from '../command.js';
import type { CliIo } from '../io.js';

const usage = 'Usage: kabi inspect [--json] FILE...';

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'show a module’s modinfo, modversions, imports, exports and signature',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, usage);
    if (values.help) {
      io.stdout(`${usage}\n\nPrints what modinfo prints plus the modversions list, the undefined and exported\nsymbols and the signature header. --json prints an array of objects.\nExit status: 0 on success, 2 if a file cannot be read or is not a valid module.\n`);
      return 0;
    }
    if (positionals.length === 0) {
      io.stderr(`kabi inspect: no module given\n${usage}\n`);
      return EXIT_ERROR;
    }
    let status = 0;
    const results: object[] = [];
    // Read in parallel (worker threads for many files), report in the order given.
    const cache = new ModuleCache(io.fs);
    const read = await mapPool(positionals, 32, (p) =>
      cache.read(resolve(io.cwd, p)).then(
        (mod) => ({ mod, error: undefined }),
        (error: unknown) => ({ mod: undefined, error }),
      ),
    );
    read.forEach(({ mod, error }, i) => {
      const p = positionals[i]!;
      if (mod) {
        if (values.json) results.push(inspectJson(mod, p));
        else io.stdout(inspectText(mod, p) + (positionals.length > 1 ? '\n' : ''));
        return;
      }
      if (!isKabiError(error)) throw error;
      io.stderr(`kabi inspect: ${error.message}\n`);
      status = EXIT_ERROR;
    });
    if (values.json) io.stdout(JSON.stringify(results, null, 2) + '\n');
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
  return `${(key + ':').padEnd(16)}${value}\n`;
}

/** modinfo's layout (key: padded to 16 columns), then what modinfo does not show. */
export function inspectText(mod: KernelModule, file = mod.file ?? ''): string {
  let s = row('filename', file);
  for (const [k, v] of mod.modinfo.entries) s += row(k, v);
  const sig = mod.signature;
  if (sig) {
    s += row('sig_id', sig.idType === 2 ? 'PKCS#7' : `type ${sig.idType}`);
    if (sig.signer !== undefined) s += row('signer', sig.signer);
    if (sig.keyId !== undefined) s += row('sig_key', sig.keyId);
    if (sig.hashAlgorithm !== undefined) s += row('sig_hashalgo', sig.hashAlgorithm);
    if (!sig.wellFormed) s += row('sig_problem', sig.problem ?? 'malformed');
  }
  s += row('elf', `ELF${mod.elf.class} ${mod.elf.endian}-endian ${mod.elf.machineName}${mod.compression ? `, ${mod.compression}-compressed` : ''}`);
  if (mod.thisModule) s += row('this_module', `0x${mod.thisModule.size.toString(16)} bytes`);
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

export type { CliIo };
