import { posix } from 'node:path';
import type { LinkRequest } from '../../api/link.js';
import { KabiError } from '../../errors.js';
import type { Plan } from '../../linker/types.js';
import { parse, type Command } from '../command.js';
import { DRY_RUN_OPTION, HELP_OPTION, JSON_OPTION, KERNELS_OPTION, ROOT_OPTION, SEMANTICS_OPTION, systemRoot } from '../options.js';
import { withProgress } from '../progress.js';
import { paint, type Style } from '../style.js';
import type { CliIo } from '../io.js';
import { verdictJson } from './check.js';
import { summaryOf } from '../summaries.js';

const usage = `Usage: kabi link [--root DIR] [--kernel K]... [--dry-run] [--json] [--forward-only] [--multi-version]
                 [--semantics loader|depmod] [--depmod native|system|none] [--initramfs auto|native|generator|defer|none]
                 (--add MODULE... | --remove MODULE... | --add-kernel K | --remove-kernel K)`;

const options = {
  root: ROOT_OPTION,
  add: { type: 'boolean', help: 'link the MODULEs where they load (all-or-nothing per kernel)' },
  remove: { type: 'boolean', help: 'drop links to the MODULEs whose files are gone, and links that lost a provider' },
  'add-kernel': { type: 'string', arg: 'K', complete: 'kernel', help: "link other kernels' modules into K, newest source first" },
  'remove-kernel': { type: 'string', arg: 'K', complete: 'kernel', help: "empty K's weak-updates/" },
  kernel: { ...KERNELS_OPTION, help: 'with --add or --remove: change only kernel K; the others are left as they are' },
  'dry-run': DRY_RUN_OPTION,
  json: { ...JSON_OPTION, help: 'print the plan as JSON' },
  'forward-only': { type: 'boolean', help: "link only into kernels newer than the module's own (RPM order)" },
  'multi-version': { type: 'boolean', help: 'of several versions of a module, link the newest each kernel can load' },
  semantics: SEMANTICS_OPTION,
  'no-depmod': { type: 'boolean', help: 'the same as --depmod none' },
  depmod: { type: 'string', arg: 'HOW', choices: ['native', 'system', 'none'], help: "refresh changed kernels' depmod files with kabi's depmod (native, the default), the system's, or not at all" },
  'no-initramfs': { type: 'boolean', help: 'the same as --initramfs none' },
  initramfs: { type: 'string', arg: 'HOW', choices: ['auto', 'native', 'generator', 'defer', 'none'], help: "refresh changed kernels' images that hold a changed module: auto (default), native, generator, defer, none" },
  help: HELP_OPTION,
} as const;

export const linkCommand: Command = {
  name: 'link',
  summary: summaryOf('link'),
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, options, usage);
    if (values.help) {
      io.stdout(`${usage}

Links modules into the weak-updates/ directory of every installed kernel that can load them,
or removes such links, and refreshes depmod files (and existing initramfs images) of the
kernels that changed. Nothing is written with --dry-run; --json prints the plan.

  --add MODULE...        link these modules where compatible (all-or-nothing per kernel)
  --remove MODULE...     drop links to these modules whose files are gone, and links that
                         lost a provider
  --add-kernel K         link other kernels' extra/ modules into K, newest source first
  --remove-kernel K      empty K's weak-updates/
  --kernel K             with --add or --remove: change only kernel K (repeatable)
  --forward-only         link only into kernels newer than the module's own (RPM order)
  --multi-version        given several versions of a module, link the newest one each
                         kernel can load
  --semantics loader     judge as the kernel's loader does (default): vermagic, licence,
                         namespaces, struct module size and CRCs
  --semantics depmod     judge exactly as weak-modules does (depmod -e -E)
  --depmod HOW           refresh the depmod files of changed kernels with kabi's own depmod
                         (native, the default: incremental, byte for byte kmod's output),
                         the system's depmod (system), or not at all (none; --no-depmod)
  --initramfs HOW        refresh the images of changed kernels that hold a changed module:
                         auto (native rewrite where possible, else the generator; default),
                         native, generator, defer (record for \`kabi initramfs flush\`), none
                         (none; --no-initramfs)
  --root DIR             the system under DIR (default $KABI_ROOT, else /)

Modules are judged as the installed system under --root sees them (symlinks followed inside
the root), and links point at them by that path. The run holds the root's lock from before it
reads anything until the initramfs step is done; each kernel's links and depmod files change
together or not at all (see the README). Each kernel's line of the plan lists the steps that
will follow for it: [depmod, initramfs].

Exit status: 0 when the plan was made and applied (incompatible modules are part of the plan;
a kernel or a module of another kernel that cannot be read is left out with a warning);
1 when some kernel could not be updated (each is named and left wholly as it was; the others
are done); 128+N when signal N stopped the run between two kernels; 2 when nothing was done:
a usage error, a root or a module given that is missing or not a module, an unknown --kernel,
the lock not obtained in time ($KABI_LOCK_TIMEOUT seconds, default 300), or --add-kernel of a
kernel that is not installed.
`);
      return 0;
    }
    const modes = [values.add, values.remove, values['add-kernel'] !== undefined, values['remove-kernel'] !== undefined].filter(Boolean).length;
    if (modes !== 1) throw new KabiError('USAGE', `give exactly one of --add, --remove, --add-kernel, --remove-kernel\n${usage}`);
    if ((values.add || values.remove) && positionals.length === 0) throw new KabiError('USAGE', `no module given\n${usage}`);
    if (!(values.add || values.remove) && positionals.length > 0) throw new KabiError('USAGE', `unexpected argument '${positionals[0]}' (modules go with --add or --remove)\n${usage}`);
    if (values.kernel && !(values.add || values.remove)) throw new KabiError('USAGE', `--kernel goes with --add or --remove (--add-kernel and --remove-kernel name their kernel)\n${usage}`);
    const root = await systemRoot(io, values.root);
    const dryRun = values['dry-run'] === true;
    const depmod = values['no-depmod'] ? 'none' : (values.depmod ?? 'native');
    const initramfs = values['no-initramfs'] ? 'none' : (values.initramfs ?? 'auto');
    const request: LinkRequest = values.add ? { add: positionals } : values.remove ? { remove: positionals } : values['add-kernel'] !== undefined ? { addKernel: values['add-kernel'] } : { removeKernel: values['remove-kernel']! };
    // The linker (with depmod and the initramfs code) only now: `kabi link --help` does not compile it.
    const { apply, finishingSteps } = await import('../../api/link.js');
    const steps = finishingSteps({ depmod, initramfs });
    const warn = (l: string) => io.stderr(`kabi link: ${l}\n`);
    const run = await withProgress(io, 'kabi link', dryRun ? 'planning' : 'planning and applying', (progress) =>
      apply(request, {
        root,
        fs: io.fs,
        cwd: io.cwd,
        semantics: values.semantics ?? 'loader',
        forwardOnly: values['forward-only'] === true,
        multiVersion: values['multi-version'] === true,
        ...(values.kernel ? { kernels: values.kernel } : {}),
        depmod,
        initramfs,
        dryRun,
        log: (l) => {
          progress.clear();
          if (values.json) io.stderr(l + '\n');
          else io.stdout(l + '\n');
        },
        warn: (l) => {
          progress.clear();
          warn(l);
        },
        onPlan: (plan) => {
          progress.clear();
          if (values.json) io.stdout(JSON.stringify(planJson(plan, dryRun), null, 2) + '\n');
          else io.stdout(renderPlan(plan, dryRun, steps, io));
          progress.update(dryRun ? 'planned' : 'applying');
        },
      }),
    );
    if (run.interrupted !== undefined) return run.interrupted;
    return run.failed.length > 0 ? 1 : 0;
  },
};

/** The `--json` plan (documented in the README). */
export function planJson(plan: Plan, dryRun: boolean) {
  return {
    mode: plan.mode,
    root: plan.root,
    dryRun,
    kernels: plan.kernels.map((k) => ({
      release: k.release,
      installed: k.installed,
      depmod: k.depmod,
      initramfs: k.initramfs,
      fellBack: k.fellBack,
      ops: k.ops.map((o) => ({
        kind: o.kind,
        link: o.link,
        ...(o.target !== undefined ? { target: o.target } : {}),
        ...(o.previousTarget !== undefined ? { previousTarget: o.previousTarget } : {}),
        ...(o.verdict ? { verdict: verdictJson(o.verdict) } : {}),
      })),
    })),
    messages: plan.messages,
  };
}

/**
 * The plan as `kabi link` prints it: each kernel with the steps that will follow its links
 * (only those that run: --no-depmod and --no-initramfs take theirs away), each link change.
 */
export function renderPlan(plan: Plan, dryRun: boolean, steps: { depmod: boolean; initramfs: boolean } = { depmod: true, initramfs: true }, io?: Pick<CliIo, 'stdoutIsTTY' | 'env' | 'color'>): string {
  const colour = (text: string, style: Style) => (io ? paint(text, style, io) : text);
  let out = '';
  for (const k of plan.kernels) {
    const notes = [
      k.fellBack ? colour('kept as it was: not every module can load there', 'yellow') : '',
      k.depmod && steps.depmod && plan.mode !== 'remove-kernel' ? 'depmod' : '',
      k.initramfs && steps.initramfs ? 'initramfs' : '',
    ].filter(Boolean);
    out += `${k.release}${k.installed ? '' : ' (not installed)'}${notes.length ? ` [${notes.join(', ')}]` : ''}\n`;
    for (const o of k.ops) {
      const sign = o.kind === 'add' ? colour('+', 'green') : o.kind === 'remove' ? colour('-', 'red') : colour('~', 'yellow');
      const rel = posix.relative(`/lib/modules/${k.release}`, o.link);
      out += `  ${sign} ${rel}${o.target ? ` -> ${o.target}` : ''}\n`;
    }
  }
  for (const m of plan.messages) if (/not compatible/.test(m)) out += `${m}\n`;
  if (dryRun) out += 'dry run: nothing was changed\n';
  return out;
}
