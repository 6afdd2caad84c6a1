import { posix } from 'node:path';
import { KabiError } from '../../errors.js';
import { refreshStep } from '../../linker/initramfs-step.js';
import { planAddKernel, planAddModules, planRemoveKernel, planRemoveModules, type PlanOptions } from '../../linker/plan.js';
import { depmodStep } from '../../linker/post.js';
import { runLinker } from '../../linker/run.js';
import type { Plan } from '../../linker/types.js';
import { parse, type Command } from '../command.js';
import { verdictJson } from './check.js';

const usage = `Usage: kabi link [--root DIR] [--dry-run] [--json] [--forward-only] [--multi-version]
                 [--semantics loader|depmod] [--depmod native|system|none] [--initramfs auto|native|generator|defer|none]
                 (--add MODULE... | --remove MODULE... | --add-kernel K | --remove-kernel K)`;

export const linkCommand: Command = {
  name: 'link',
  summary: 'plan and apply weak-updates links (the modern interface to weak-modules)',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        root: { type: 'string' },
        add: { type: 'boolean' },
        remove: { type: 'boolean' },
        'add-kernel': { type: 'string' },
        'remove-kernel': { type: 'string' },
        'dry-run': { type: 'boolean', short: 'n' },
        json: { type: 'boolean' },
        'forward-only': { type: 'boolean' },
        'multi-version': { type: 'boolean' },
        semantics: { type: 'string' },
        'no-depmod': { type: 'boolean' },
        depmod: { type: 'string' },
        'no-initramfs': { type: 'boolean' },
        initramfs: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      usage,
    );
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

Modules are judged as the installed system under --root sees them (symlinks followed inside
the root), and links point at them by that path. The run holds the root's lock from before it
reads anything until the initramfs step is done; each kernel's links and depmod files change
together or not at all (see the README).

Exit status: 0 when the plan was made and applied (incompatible modules are part of the plan;
a kernel or a module of another kernel that cannot be read is left out with a warning);
1 when some kernel could not be updated (each is named and left wholly as it was; the others
are done); 128+N when signal N stopped the run between two kernels; 2 when nothing was done:
a usage error, a module given that is missing or not a module, the lock not obtained in time
($KABI_LOCK_TIMEOUT seconds, default 300), or --add-kernel of a kernel that is not installed.
`);
      return 0;
    }
    const modes = [values.add, values.remove, values['add-kernel'] !== undefined, values['remove-kernel'] !== undefined].filter(Boolean).length;
    if (modes !== 1) throw new KabiError('USAGE', `give exactly one of --add, --remove, --add-kernel, --remove-kernel\n${usage}`);
    const semantics = values.semantics ?? 'loader';
    if (semantics !== 'loader' && semantics !== 'depmod') throw new KabiError('USAGE', `--semantics must be loader or depmod\n${usage}`);
    if ((values.add || values.remove) && positionals.length === 0) throw new KabiError('USAGE', `no module given\n${usage}`);
    const root = values.root ?? '/';
    const dryRun = values['dry-run'] === true;
    const how = values['no-initramfs'] ? 'none' : (values.initramfs ?? 'auto');
    const depmodMode = values['no-depmod'] ? 'none' : (values.depmod ?? 'native');
    if (depmodMode !== 'native' && depmodMode !== 'system' && depmodMode !== 'none') throw new KabiError('USAGE', `--depmod must be native, system or none\n${usage}`);
    if (!['auto', 'native', 'generator', 'defer', 'none'].includes(how)) throw new KabiError('USAGE', `--initramfs must be auto, native, generator, defer or none\n${usage}`);
    const opts: PlanOptions = {
      root,
      fs: io.fs,
      cwd: io.cwd,
      semantics,
      policy: {
        forwardOnly: values['forward-only'] === true,
        multiVersion: values['multi-version'] === true,
        sources: 'all',
        requireSymvers: false,
      },
    };
    const log = (l: string) => (values.json ? io.stderr(l + '\n') : io.stdout(l + '\n'));
    const warn = (l: string) => io.stderr(`kabi link: ${l}\n`);
    const run = await runLinker({
      root,
      fs: io.fs,
      dryRun,
      warn,
      plan: async () => {
        if (values.add) return planAddModules(positionals, opts);
        if (values.remove) return planRemoveModules(positionals, opts);
        if (values['add-kernel'] !== undefined) return planAddKernel(values['add-kernel'], opts);
        return planRemoveKernel(values['remove-kernel']!, opts);
      },
      onPlan: (plan) => {
        for (const w of plan.warnings) warn(w);
        if (values.json) io.stdout(JSON.stringify(planJson(plan, dryRun), null, 2) + '\n');
        else io.stdout(renderPlan(plan, dryRun));
      },
      ...(values['remove-kernel'] !== undefined ? { forgetKernel: values['remove-kernel'] } : {}),
      depmod: (plan, kernels) => (plan.mode === 'remove-kernel' || dryRun ? undefined : depmodStep(plan, { requireInstalled: false, root, kernels, log, warn, depmodMode, fs: io.fs })),
      ...(how === 'none'
        ? {}
        : { initramfs: (plan) => refreshStep({ root, fs: io.fs, plan, strategy: how as 'auto' | 'native' | 'generator' | 'defer', log, warn, dryRun }) }),
    });
    if (run.interrupted !== undefined) return run.interrupted;
    return run.result.failed.length > 0 ? 1 : 0;
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

export function renderPlan(plan: Plan, dryRun: boolean): string {
  let out = '';
  for (const k of plan.kernels) {
    const notes = [k.fellBack ? 'kept as it was: not every module can load there' : '', k.depmod ? 'depmod' : '', k.initramfs ? 'initramfs' : ''].filter(Boolean);
    out += `${k.release}${k.installed ? '' : ' (not installed)'}${notes.length ? ` [${notes.join(', ')}]` : ''}\n`;
    for (const o of k.ops) {
      const sign = o.kind === 'add' ? '+' : o.kind === 'remove' ? '-' : '~';
      const rel = posix.relative(`/lib/modules/${k.release}`, o.link);
      out += `  ${sign} ${rel}${o.target ? ` -> ${o.target}` : ''}\n`;
    }
  }
  for (const m of plan.messages) if (/not compatible/.test(m)) out += `${m}\n`;
  if (dryRun) out += 'dry run: nothing was changed\n';
  return out;
}
