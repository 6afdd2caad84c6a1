import { basename, resolve } from 'node:path';
import { KabiError } from '../../errors.js';
import { explainCell } from '../../status/explain.js';
import { explanationJson, statusJson } from '../../status/json.js';
import { renderExplanation, renderStatus } from '../../status/render.js';
import { statusReport, storeSystemPath } from '../../status/report.js';
import { selectKernels } from '../../status/select.js';
import { KernelPackages } from '../../package/kernel-packages.js';
import type { Cell, StatusReport } from '../../status/types.js';
import { parse, type Command } from '../command.js';
import { KERNELS_OPTION, ROOT_OPTION, SEMANTICS_OPTION, systemRoot } from '../options.js';
import { createProgress } from '../progress.js';
import { painter } from '../style.js';
import { summaryOf } from '../summaries.js';

const usage = `Usage: kabi status [--root DIR] [--kernel K]... [--store DIR]... [--dkms-tree DIR] [--kernel-package FILE]... [--incoming] [--semantics loader|depmod] [--json]
       kabi status --why MODULE --kernel K [--root DIR] [--store DIR]... [--kernel-package FILE]... [--json]`;

const help = `${usage}

Shows every out-of-tree module (extra/, updates/, updates/dkms/, depmod.d external
directories, weak-updates link targets, DKMS's build tree, module stores) against every
kernel installed under --root (default /, or $KABI_ROOT), from the filesystem alone:

  built          in the kernel's own tree (built* : another file of that name wins)
  linked<-[n]    a weak-updates link to a module built for kernel [n], and it loads
  compatible*    would load, but nothing links it in (the reason is printed below)
  incompatible   no known copy loads on that kernel (first reasons below)
  stale!         a weak-updates link whose target is gone or no longer loads

  --store DIR        a module store: its modules are candidates for every kernel
                     (repeatable; also $KABI_STORE, colon-separated)
  --dkms-tree DIR    DKMS's tree (default /var/lib/dkms)
  --semantics S      loader (default): as the kernel's loader decides;
                     depmod: as depmod -e -E and so weak-modules decide
  --kernel K         only kernel K's column (repeatable)
  --why MODULE       explain one cell in full: every reason, which module provides each
                     symbol, and every known copy (MODULE is a name or a file), on the
                     one --kernel K given
  --json             the report as JSON (format documented in docs/status.md)
  --kernel-package FILE  a kernel package (.deb, .rpm; repeatable: give the image and
                     the package with Module.symvers together) whose kernel is shown as if
                     installed, without unpacking anything: "will my modules load after
                     this update?"
  --incoming         with --kernel-package: print only the modules that will not load on
                     the packages' kernels, and why (what package-manager hooks show);
                     exit status 1 when there is one

Exit status: 0 when the report was made (whatever it says), 2 on error; with --incoming,
1 when a module will not load on an incoming kernel.
`;

export const statusCommand: Command = {
  name: 'status',
  summary: summaryOf('status'),
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        root: ROOT_OPTION,
        store: { type: 'string', multiple: true },
        'dkms-tree': { type: 'string' },
        semantics: SEMANTICS_OPTION,
        why: { type: 'string' },
        kernel: KERNELS_OPTION,
        json: { type: 'boolean' },
        'kernel-package': { type: 'string', multiple: true, arg: 'FILE', complete: 'file', help: 'a kernel package (.deb, .rpm) whose kernel is shown as if installed, without unpacking anything' },
        incoming: { type: 'boolean', help: "with --kernel-package: only the modules that will not load on the packages' kernels, and why" },
        help: { type: 'boolean', short: 'h' },
      },
      usage,
    );
    if (values.help) {
      io.stdout(help);
      return 0;
    }
    if (positionals.length > 0) throw new KabiError('USAGE', `unexpected argument '${positionals[0]}'\n${usage}`);
    const semantics = values.semantics ?? 'loader';
    if (semantics !== 'loader' && semantics !== 'depmod') throw new KabiError('USAGE', `--semantics must be loader or depmod\n${usage}`);
    if (values.why !== undefined && values.kernel?.length !== 1) throw new KabiError('USAGE', `--why needs one --kernel K\n${usage}`);
    if (values.incoming && (!values['kernel-package'] || values.why !== undefined)) throw new KabiError('USAGE', `--incoming needs --kernel-package (and no --why)\n${usage}`);
    const root = await systemRoot(io, values.root);
    const stores = [...(values.store ?? []), ...(io.env.KABI_STORE ?? '').split(':').filter((s) => s !== '')].map((s) => storeSystemPath(root, s));
    const progress = createProgress(io, 'kabi status');
    const pkgs = values['kernel-package']
      ? await KernelPackages.open(
          values['kernel-package'].map((f) => resolve(io.cwd, f)),
          { fs: io.fs, onProgress: (label, done, total) => progress.update(label, done, total) },
        )
      : undefined;
    try {
      if (pkgs && pkgs.kernels.length === 0) {
        // Packages none of which holds a kernel: for a hook, nothing to say.
        if (values.incoming) return 0;
        throw new KabiError('KERNEL_NOT_FOUND', `no kernel in the packages given (${values['kernel-package']!.join(', ')})`);
      }
      const opts = {
        root,
        fs: pkgs ? await pkgs.view(io.fs, root) : io.fs,
        semantics: semantics as 'loader' | 'depmod',
        stores,
        ...(values['dkms-tree'] ? { dkmsTree: values['dkms-tree'] } : {}),
        ...(root !== '/' && io.env.KABI_KERNEL ? { running: io.env.KABI_KERNEL } : {}),
        onProgress: (label: string, done: number, total: number) => progress.update(label, done, total),
      };
      if (values.why !== undefined) {
        const e = await explainCell({ ...opts, module: values.why, kernel: values.kernel![0]! });
        progress.clear();
        io.stdout(values.json ? JSON.stringify(explanationJson(e), null, 2) + '\n' : renderExplanation(e, painter(io)));
        return 0;
      }
      const report = selectKernels(await statusReport(opts), values.kernel);
      progress.clear();
      if (values.incoming) {
        const problems = incomingProblems(report, pkgs!);
        io.stdout(problems.text);
        return problems.count > 0 ? 1 : 0;
      }
      if (values.json) {
        const incoming = pkgs ? { kernelPackages: pkgs.kernels.map((k) => ({ release: k, packages: pkgs.sources.get(k) ?? [] })) } : {};
        io.stdout(JSON.stringify({ ...statusJson(report), ...incoming }, null, 2) + '\n');
      } else {
        io.stdout(renderStatus(report, painter(io)));
        if (pkgs) io.stdout(incomingLegend(report, pkgs));
      }
      return 0;
    } finally {
      progress.clear();
      await pkgs?.close();
    }
  },
};

/** Which kernel columns come from packages, under the matrix. */
function incomingLegend(r: StatusReport, pkgs: KernelPackages): string {
  let out = '';
  r.kernels.forEach((k, i) => {
    const files = pkgs.sources.get(k.release);
    if (files) out += `[${i + 1}] ${k.release} is not installed: read from ${files.map((f) => basename(f)).join(', ')}\n`;
  });
  return out === '' ? '' : `\n${out}`;
}

const MAX_REASONS = 3;

/** Cells of incoming kernels where a module will not load. */
function willNotLoad(c: Cell): boolean {
  return c.state === 'incompatible' || c.state === 'stale' || c.loads === false;
}

/** The warning package-manager hooks print: per incoming kernel, each module that will not load and why. */
function incomingProblems(r: StatusReport, pkgs: KernelPackages): { text: string; count: number } {
  let text = '';
  let count = 0;
  r.kernels.forEach((k, i) => {
    const files = pkgs.sources.get(k.release);
    if (!files) return;
    const bad = r.modules.filter((m) => willNotLoad(m.cells[i]!));
    if (bad.length === 0) return;
    count += bad.length;
    const names = pkgs.packages.filter((p) => files.includes(p.file)).map((p) => p.name || basename(p.file));
    text += `kabi: after installing ${names.join(', ')}: ${bad.length} out-of-tree module${bad.length === 1 ? '' : 's'} will not load on ${k.release}:\n`;
    for (const m of bad) {
      const c = m.cells[i]!;
      const dkms = m.copies.length > 0 && m.copies.every((x) => x.origin === 'dkms');
      text += `kabi:   ${m.name}${c.file ? ` (${c.file}${c.builtFor ? `, built for ${c.builtFor}` : ''})` : ''}${dkms ? ' [DKMS builds it anew for the kernel if its headers are installed]' : ''}\n`;
      const errors = c.reasons.filter((x) => x.severity === 'error');
      for (const e of errors.slice(0, MAX_REASONS)) text += `kabi:     ${e.message}${e.provider ? ` (provided by ${e.provider}, which cannot be loaded)` : ''}\n`;
      if (errors.length > MAX_REASONS) text += `kabi:     … and ${errors.length - MAX_REASONS} more (kabi status --why ${m.name} --kernel ${k.release} --kernel-package …)\n`;
      if (errors.length === 0) for (const n of c.notes) text += `kabi:     ${n.message}\n`;
    }
  });
  return { text, count };
}
