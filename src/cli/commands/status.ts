import { KabiError } from '../../errors.js';
import { explainCell } from '../../status/explain.js';
import { explanationJson, statusJson } from '../../status/json.js';
import { renderExplanation, renderStatus } from '../../status/render.js';
import { statusReport, storeSystemPath } from '../../status/report.js';
import { selectKernels } from '../../status/select.js';
import { parse, type Command } from '../command.js';
import { KERNELS_OPTION, ROOT_OPTION, SEMANTICS_OPTION, systemRoot } from '../options.js';
import { createProgress } from '../progress.js';
import { painter } from '../style.js';

const usage = `Usage: kabi status [--root DIR] [--kernel K]... [--store DIR]... [--dkms-tree DIR] [--semantics loader|depmod] [--json]
       kabi status --why MODULE --kernel K [--root DIR] [--store DIR]... [--json]`;

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

Exit status: 0 when the report was made (whatever it says), 2 on error.
`;

export const statusCommand: Command = {
  name: 'status',
  summary: 'every out-of-tree module against every installed kernel: built, linked, compatible, stale',
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
    const root = await systemRoot(io, values.root);
    const stores = [...(values.store ?? []), ...(io.env.KABI_STORE ?? '').split(':').filter((s) => s !== '')].map((s) => storeSystemPath(root, s));
    const progress = createProgress(io, 'kabi status');
    const opts = {
      root,
      fs: io.fs,
      semantics: semantics as 'loader' | 'depmod',
      stores,
      ...(values['dkms-tree'] ? { dkmsTree: values['dkms-tree'] } : {}),
      ...(root !== '/' && io.env.KABI_KERNEL ? { running: io.env.KABI_KERNEL } : {}),
      onProgress: (label: string, done: number, total: number) => progress.update(label, done, total),
    };
    try {
      if (values.why !== undefined) {
        const e = await explainCell({ ...opts, module: values.why, kernel: values.kernel![0]! });
        progress.clear();
        io.stdout(values.json ? JSON.stringify(explanationJson(e), null, 2) + '\n' : renderExplanation(e, painter(io)));
        return 0;
      }
      const report = selectKernels(await statusReport(opts), values.kernel);
      progress.clear();
      io.stdout(values.json ? JSON.stringify(statusJson(report), null, 2) + '\n' : renderStatus(report, painter(io)));
      return 0;
    } finally {
      progress.clear();
    }
  },
};
