import { basename } from 'node:path';
import { checkModules } from '../../compat/check.js';
import type { Verdict } from '../../compat/types.js';
import { KabiError } from '../../errors.js';
import { parse, EXIT_ERROR, type Command } from '../command.js';
import type { CliIo } from '../io.js';
import { KERNELS_OPTION, ROOT_OPTION, SEMANTICS_OPTION, systemRoot } from '../options.js';
import { withProgress } from '../progress.js';
import { paint } from '../style.js';

const usage = 'Usage: kabi check [--root DIR] [--kernel K]... [--semantics loader|depmod] [--missing-crc reject|warn] [--json] MODULE...';

export const checkCommand: Command = {
  name: 'check',
  summary: 'decide whether modules load on each installed kernel',
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

Exit status: 0 if every module loads on every kernel, 1 if any does not, 2 on error.
`);
      return 0;
    }
    const semantics = values.semantics ?? 'loader';
    if (semantics !== 'loader' && semantics !== 'depmod') throw new KabiError('USAGE', `--semantics must be loader or depmod\n${usage}`);
    const missingCrc = values['missing-crc'];
    if (missingCrc !== undefined && missingCrc !== 'reject' && missingCrc !== 'warn') throw new KabiError('USAGE', `--missing-crc must be reject or warn\n${usage}`);
    if (positionals.length === 0) throw new KabiError('USAGE', `no module given\n${usage}`);

    const root = await systemRoot(io, values.root);
    const result = await withProgress(io, 'kabi check', 'judging the modules', () => checkModules(positionals, {
      root,
      fs: io.fs,
      cwd: io.cwd,
      semantics,
      ...(values.kernel ? { kernels: values.kernel } : {}),
      ...(missingCrc ? { missingCrcPolicy: missingCrc } : {}),
    }));
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
