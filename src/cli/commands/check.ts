import { basename, resolve } from 'node:path';
import type { Verdict } from '../../compat/types.js';
import { KabiError } from '../../errors.js';
import { parse, EXIT_ERROR, type Command } from '../command.js';
import type { CliIo } from '../io.js';
import { KERNELS_OPTION, ROOT_OPTION, SEMANTICS_OPTION, systemRoot } from '../options.js';
import { withProgress } from '../progress.js';
import { paint } from '../style.js';
import { summaryOf } from '../summaries.js';

const usage = `Usage: kabi check [--root DIR] [--kernel K]... [--kernel-package FILE]... [--shard I/N] [--semantics loader|depmod] [--missing-crc reject|warn] [--json | --json-lines] MODULE...
       kabi check --merge [--json] FILE...`;

export const checkCommand: Command = {
  name: 'check',
  summary: summaryOf('check'),
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        root: ROOT_OPTION,
        kernel: KERNELS_OPTION,
        semantics: SEMANTICS_OPTION,
        'missing-crc': { type: 'string', arg: 'POLICY', choices: ['reject', 'warn'], help: 'a symbol without a CRC entry: reject (Debian) or warn (upstream); default: the kernel distribution’s' },
        json: { type: 'boolean' },
        'kernel-package': { type: 'string', multiple: true, arg: 'FILE', complete: 'file', help: 'judge against the kernel in these .deb or .rpm packages, as if installed under the root (nothing is unpacked)' },
        shard: { type: 'string', arg: 'I/N', complete: 'none', help: 'judge only the I-th of N contiguous runs of the kernels, printing --json-lines' },
        'json-lines': { type: 'boolean', help: 'one JSON object per verdict per line' },
        merge: { type: 'boolean', help: 'join --json-lines outputs (FILEs, - for standard input) into the table or --json' },
        help: { type: 'boolean', short: 'h' },
      },
      usage,
    );
    if (values.help) {
      io.stdout(`${usage}

Checks each MODULE against every kernel installed under --root (default $KABI_ROOT, else /), or only the
--kernel releases given, as the kernel's module loader would (--semantics loader, the
default) or exactly as depmod -e -E and so weak-modules would (--semantics depmod).
The modules given are taken as installed together, ahead of same-named modules of the
kernel. --missing-crc overrides the distribution policy for a symbol without a CRC entry
(Debian kernels reject it; upstream warns).

--kernel-package FILE (repeatable) judges against the kernels in .deb or .rpm packages
instead, as if they were installed under --root: give the image and the package with
Module.symvers together (Debian: linux-image-K + linux-headers-K; 7.x: linux-modules-K,
linux-base-K, linux-headers-K; RHEL: kernel-core + kernel-modules). Nothing is unpacked. A
MODULE may be a module package too: its modules are judged.

Fleet runs: --shard I/N judges only the I-th of N contiguous runs of the kernels (in
release order) and prints one JSON object per verdict per line, as --json-lines does;
the shards' outputs concatenated in order are exactly one unsharded --json-lines run.
kabi check --merge FILE... ('-' for standard input) joins such lines into the usual
table (or --json), with the usual exit status.

Exit status: 0 if every module loads on every kernel, 1 if any does not, 2 on error.
`);
      return 0;
    }
    if (values.merge) {
      if (values['kernel-package'] || values.shard || values['json-lines']) throw new KabiError('USAGE', `--merge takes only FILEs (and --json)\n${usage}`);
      if (positionals.length === 0) throw new KabiError('USAGE', `no file to merge\n${usage}`);
      const verdicts: Verdict[] = [];
      for (const f of positionals) verdicts.push(...parseVerdictLines(f === '-' ? await io.readStdin() : await readText(io, f), f));
      io.stdout(values.json ? JSON.stringify(verdicts.map(verdictJson), null, 2) + '\n' : renderTable(verdicts, io));
      return verdicts.every((v) => v.compatible) ? 0 : 1;
    }
    const shard = values.shard === undefined ? undefined : parseShard(values.shard);
    const jsonLines = values['json-lines'] === true || shard !== undefined;
    if (jsonLines && values.json) throw new KabiError('USAGE', `--json and --json-lines (or --shard) exclude each other\n${usage}`);
    const semantics = values.semantics ?? 'loader';
    if (semantics !== 'loader' && semantics !== 'depmod') throw new KabiError('USAGE', `--semantics must be loader or depmod\n${usage}`);
    const missingCrc = values['missing-crc'];
    if (missingCrc !== undefined && missingCrc !== 'reject' && missingCrc !== 'warn') throw new KabiError('USAGE', `--missing-crc must be reject or warn\n${usage}`);
    if (positionals.length === 0) throw new KabiError('USAGE', `no module given\n${usage}`);

    const root = await systemRoot(io, values.root);
    // The verdict engine (and the package readers behind it) only now: `kabi check --help` and
    // a usage error do not compile it.
    const { checkModules } = await import('../../compat/check.js');
    const result = await withProgress(io, 'kabi check', 'judging the modules', () => checkModules(positionals, {
      root,
      fs: io.fs,
      cwd: io.cwd,
      semantics,
      ...(values.kernel ? { kernels: values.kernel } : {}),
      ...(missingCrc ? { missingCrcPolicy: missingCrc } : {}),
      ...(values['kernel-package'] ? { kernelPackages: values['kernel-package'] } : {}),
      ...(shard ? { shard } : {}),
    }));
    if (jsonLines) {
      // One line per verdict, so shards can be concatenated (and streamed) as they are.
      io.stdout(result.verdicts.map((v) => JSON.stringify(verdictJson(v)) + '\n').join(''));
      return result.verdicts.every((v) => v.compatible) ? 0 : 1;
    }
    if (result.kernels.length === 0) {
      io.stderr(`kabi check: no kernels installed under ${root}\n`);
      return EXIT_ERROR;
    }
    if (values.json) {
      io.stdout(JSON.stringify(result.verdicts.map(verdictJson), null, 2) + '\n');
    } else {
      io.stdout(renderTable(result.verdicts, io));
      for (const [k, notes] of result.notes) for (const n of notes) io.stderr(`kabi check: ${k}: ${n}\n`);
    }
    return result.verdicts.every((v) => v.compatible) ? 0 : 1;
  },
};

function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const shard = m ? { index: Number(m[1]), count: Number(m[2]) } : undefined;
  if (!shard || shard.index < 1 || shard.count < 1 || shard.index > shard.count) throw new KabiError('USAGE', `--shard must be I/N with 1 <= I <= N, got '${text}'\n${usage}`);
  return shard;
}

async function readText(io: CliIo, file: string): Promise<string> {
  try {
    return new TextDecoder().decode(await io.fs.readFile(resolve(io.cwd, file)));
  } catch (e) {
    throw new KabiError('IO', `cannot read: ${(e as Error).message}`, { file, cause: e });
  }
}

const REASON_KINDS = new Set<string>([
  'signature-malformed', 'signature-required', 'elf-mismatch', 'not-relocatable', 'this-module', 'module-struct-size', 'no-modversions',
  'module-layout', 'vermagic', 'vermagic-missing', 'exports-without-crcs', 'exports-without-flags', 'module-namespace-import', 'common-symbol',
  'unknown-symbol', 'gpl-only', 'gpl-taint-inherit', 'crc-mismatch', 'missing-crc', 'namespace', 'provider-incompatible', 'duplicate-export',
  'taint', 'unprovable',
]);

/** Verdicts from --json-lines output; a line that is not one is an error naming the file and line. */
export function parseVerdictLines(text: string, file: string): Verdict[] {
  const out: Verdict[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const bad = (why: string) => new KabiError('USAGE', `not a kabi check --json-lines verdict: ${why}`, { file, line: i + 1 });
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw bad((e as Error).message);
    }
    const v = o as Record<string, unknown>;
    if (typeof v !== 'object' || v === null || typeof v.module !== 'string' || typeof v.name !== 'string' || typeof v.kernel !== 'string' || typeof v.compatible !== 'boolean' || !Array.isArray(v.reasons)) {
      throw bad('needs module, name, kernel, compatible and reasons');
    }
    const reasons = (v.reasons as unknown[]).map((r) => {
      const x = r as Record<string, unknown>;
      if (typeof x !== 'object' || x === null || typeof x.kind !== 'string' || !REASON_KINDS.has(x.kind) || (x.severity !== 'error' && x.severity !== 'warning') || typeof x.message !== 'string') {
        throw bad('a reason needs a known kind, a severity and a message');
      }
      return {
        kind: x.kind as Verdict['reasons'][number]['kind'],
        severity: x.severity as 'error' | 'warning',
        message: x.message,
        ...(typeof x.symbol === 'string' ? { symbol: x.symbol } : {}),
        ...(typeof x.provider === 'string' ? { provider: x.provider } : {}),
      };
    });
    out.push({ module: v.module, name: v.name, kernel: v.kernel, compatible: v.compatible, reasons });
  });
  return out;
}

export function verdictJson(v: Verdict) {
  return {
    module: v.module,
    name: v.name,
    kernel: v.kernel,
    compatible: v.compatible,
    reasons: v.reasons.map((r) => ({
      kind: r.kind,
      severity: r.severity,
      ...(r.symbol !== undefined ? { symbol: r.symbol } : {}),
      ...(r.provider !== undefined ? { provider: r.provider } : {}),
      message: r.message,
    })),
  };
}

const MAX_REASONS = 3;

/** Module rows × kernel columns, then the first reasons of every refusal. */
export function renderTable(verdicts: readonly Verdict[], io: Pick<CliIo, 'stdoutIsTTY' | 'env' | 'color'>): string {
  const modules = [...new Set(verdicts.map((v) => v.module))];
  const kernels = [...new Set(verdicts.map((v) => v.kernel))];
  const cell = (m: string, k: string) => verdicts.find((v) => v.module === m && v.kernel === k);
  const label = (m: string) => basename(m);
  const w0 = Math.max('module'.length, ...modules.map((m) => label(m).length));
  const widths = kernels.map((k) => Math.max(k.length, 'incompatible'.length));
  let out = 'module'.padEnd(w0) + '  ' + kernels.map((k, i) => k.padEnd(widths[i]!)).join('  ') + '\n';
  for (const m of modules) {
    out += label(m).padEnd(w0);
    kernels.forEach((k, i) => {
      const v = cell(m, k);
      const text = v === undefined ? '-' : v.compatible ? 'ok' : 'incompatible';
      const padded = text.padEnd(widths[i]!);
      out += '  ' + (v === undefined ? padded : paint(padded, v.compatible ? 'green' : 'red', io));
    });
    out += '\n';
  }
  const refused = verdicts.filter((v) => !v.compatible);
  if (refused.length > 0) out += '\n';
  for (const v of refused) {
    const errors = v.reasons.filter((r) => r.severity === 'error');
    out += `${label(v.module)} on ${v.kernel}:\n`;
    for (const r of errors.slice(0, MAX_REASONS)) out += `  ${r.message}${r.provider ? ` (provided by ${r.provider}, which cannot be loaded)` : ''}\n`;
    if (errors.length > MAX_REASONS) out += `  … and ${errors.length - MAX_REASONS} more (--json lists all)\n`;
  }
  return out;
}
