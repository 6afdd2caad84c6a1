import { release as osRelease } from 'node:os';
import { isKabiError, KabiError } from '../../errors.js';
import { errnoCode } from '../../fs.js';
import { initramfsStep } from '../../linker/initramfs-step.js';
import { runCommand, type Runner } from '../../util/run.js';
import { planAddKernel, planAddModules, planRemoveKernel, planRemoveModules } from '../../linker/plan.js';
import { depmodStep } from '../../linker/post.js';
import { runLinker } from '../../linker/run.js';
import { getopt, GetoptError } from '../getopt.js';
import type { Command } from '../command.js';
import type { OptionTable } from '../options.js';
import type { CliIo } from '../io.js';
import { summaryOf } from '../summaries.js';

/** weak-modules' options (el9's, and kabi's --system-depmod), for getopt and for the man page. */
const OPTIONS = {
  help: { type: 'boolean', short: 'h', help: 'show the usage and exit' },
  'add-modules': { type: 'boolean', help: 'link the modules listed on standard input into every compatible kernel' },
  'remove-modules': { type: 'boolean', help: 'remove the links to the modules listed on standard input whose files are gone, and links that lost a provider' },
  'add-kernel': { type: 'boolean', help: "link compatible extra/ modules of the other kernels into the kernel named (default: the running one)" },
  'remove-kernel': { type: 'boolean', help: "empty the named kernel's weak-updates/" },
  'dry-run': { type: 'boolean', help: 'print what would be done; change nothing and run nothing' },
  'no-initramfs': { type: 'boolean', help: 'do not refresh initramfs images' },
  verbose: { type: 'boolean', help: 'print what is done and each compatibility decision' },
  'delete-modules': { type: 'boolean', help: 'accepted for compatibility; no effect' },
  'system-depmod': { type: 'boolean', help: "refresh depmod files with the system's depmod instead of kabi's own" },
  basedir: { type: 'string', arg: 'DIR', complete: 'dir', help: 'work on the system under DIR (default /)' },
  dracut: { type: 'string', arg: 'PATH', complete: 'file', help: 'the dracut to call (default /usr/bin/dracut)' },
  'check-initramfs-prog': { type: 'string', arg: 'PROG', complete: 'command', help: "call PROG KERNEL for each changed kernel instead of refreshing its initramfs with dracut" },
} as const satisfies OptionTable;

const LONGS = Object.entries(OPTIONS).map(([name, o]) => ({ name, hasArg: o.type === 'string' }));

const USAGE = `Usage: weak-modules [options] {--add-modules|--remove-modules}
       weak-modules [options] {--add-kernel|--remove-kernel} {kernel-release}
Options:
  --add-modules           Link the modules listed on standard input (one path per line)
                          into the weak-updates/ directory of every compatible kernel.
  --remove-modules        Remove the links to the modules listed on standard input
                          whose files are gone, and links that lost a provider.
  --add-kernel [K]        Link compatible extra/ modules of the other kernels into K
                          (default: the running kernel).
  --remove-kernel [K]     Empty K's weak-updates/ directory.
  --dry-run               Print what would be done; change nothing and run nothing.
  --no-initramfs          Do not refresh initramfs images.
  --verbose               Print what is done and each compatibility decision.
  --basedir DIR           Work on the system under DIR (default /).
  --dracut PATH           dracut to call (default /usr/bin/dracut).
  --check-initramfs-prog PROG
                          Call PROG <kernel> for each changed kernel instead of
                          refreshing its initramfs with dracut.
  --delete-modules        Accepted for compatibility; has no effect.
  --system-depmod         Refresh depmod files with the system's depmod instead of kabi's
                          own (which writes the same files, incrementally).
  -h, --help              Show this help.
`;

/**
 * A drop-in for RHEL's /usr/sbin/weak-modules: the same options, standard input, verbose
 * lines and exit codes (0 even when modules are incompatible, as kernel scriptlets run it
 * with `|| exit $?`), with compatibility decided natively instead of by depmod runs.
 */
export async function weakModules(argv: string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = getopt(argv, LONGS, { h: 'help' });
  } catch (e) {
    if (!(e instanceof GetoptError)) throw e;
    io.stderr(`weak-modules: ${e.message}\n`);
    io.stdout(USAGE);
    return 1;
  }
  const o = parsed.options;
  if (o.has('help')) {
    io.stdout(USAGE);
    return 0;
  }
  const mode = o.has('add-modules') ? 'add-modules' : o.has('remove-modules') ? 'remove-modules' : o.has('add-kernel') ? 'add-kernel' : o.has('remove-kernel') ? 'remove-kernel' : undefined;
  if (!mode) {
    io.stdout(USAGE);
    return 1;
  }
  const verbose = o.has('verbose');
  const dryRun = o.has('dry-run');
  const noInitramfs = o.has('no-initramfs');
  const root = (o.get('basedir') as string | undefined) || '/';
  const dracut = (o.get('dracut') as string | undefined) ?? '/usr/bin/dracut';
  const checkProg = o.get('check-initramfs-prog') as string | undefined;
  if (o.has('delete-modules')) io.stdout('WARNING: --delete-modules is deprecated, no effect\n');
  const log = (line: string) => verbose && io.stdout(line + '\n');
  const warn = (line: string) => io.stderr(line + '\n');

  // el9 refuses to start without dracut, even when no image would be rebuilt (a kernel's own
  // %posttrans runs before its first image exists, and minimal roots have no dracut): kabi
  // says el9's line, with el9's status, only when an image must really be rebuilt.
  let dracutMissing = false;
  const runInitramfs: Runner = async (cmd, args, runOpts) => {
    const r = await runCommand(cmd, args, runOpts);
    if (cmd === dracut && r.spawnError !== undefined && !dracutMissing) {
      dracutMissing = true;
      io.stdout(`weak-modules: could not find dracut at ${dracut}\n`);
    }
    return r;
  };

  const release = parsed.positionals[0] ?? osRelease();
  const opts = { root, fs: io.fs, cwd: io.cwd, semantics: 'depmod' as const, badInput: 'warn' as const };
  let paths: string[] = [];
  if (mode === 'add-modules' || mode === 'remove-modules') {
    paths = (await io.readStdin()).split('\n').filter((l) => l !== '');
    if (paths.length === 0) return 0;
  }
  let run;
  try {
    run = await runLinker({
      root,
      fs: io.fs,
      dryRun,
      warn: (l) => warn(`weak-modules: ${l}`),
      plan: async () => {
        if (mode === 'add-modules') return planAddModules(paths, opts);
        if (mode === 'remove-modules') return planRemoveModules(paths, opts);
        if (mode === 'add-kernel') return planAddKernel(release, opts);
        return planRemoveKernel(release, opts);
      },
      onPlan: (plan) => {
        for (const m of plan.messages) log(m);
        for (const w of plan.warnings) warn(`weak-modules: ${w}`);
        if (mode === 'remove-kernel' && plan.kernels[0]) log(`rm -rf ${root === '/' ? '' : root}/lib/modules/${release}/weak-updates/*`);
      },
      ...(mode === 'remove-kernel' ? { forgetKernel: release } : {}),
      // --remove-kernel runs neither depmod nor the initramfs step (the original exits first).
      depmod: (plan, kernels) =>
        mode === 'remove-kernel' ? undefined : depmodStep(plan, { root, fs: io.fs, depmodMode: o.has('system-depmod') ? 'system' : 'native', kernels, dryRun, log, warn }),
      ...(noInitramfs || mode === 'remove-kernel'
        ? {}
        : { initramfs: (plan, kernels) => initramfsStep({ root, fs: io.fs, kernels, plan, dracut, log, warn, dryRun, run: runInitramfs, ...(checkProg ? { checkProg } : {}) }) }),
    });
  } catch (e) {
    if (isKabiError(e) && e.code === 'KERNEL_NOT_FOUND') {
      io.stderr(`${e.message}\n`);
      return 1;
    }
    throw e;
  }
  if (run.interrupted !== undefined) return run.interrupted;
  // Incompatible modules, and files or kernels skipped with a warning, leave the exit status
  // 0 (scriptlets run this with \`|| exit $?\`); a kernel that could not be updated (and was
  // left as it was) does not.
  return run.result.failed.length > 0 || dracutMissing ? 1 : 0;
}

export const weakModulesCommand: Command = {
  name: 'weak-modules',
  summary: summaryOf('weak-modules'),
  usage: USAGE,
  options: OPTIONS,
  async run(argv, io) {
    try {
      return await weakModules(argv, io);
    } catch (e) {
      // el9's statuses are 0 and 1: whatever stopped the run (a lock held too long, a write
      // that failed before any kernel changed) is 1, never anything a scriptlet does not expect.
      if (e instanceof KabiError || errnoCode(e) !== undefined) {
        io.stderr(`weak-modules: ${(e as Error).message}\n`);
        return 1;
      }
      io.stderr(`weak-modules: internal error: ${(e as Error)?.message ?? String(e)}; nothing more was changed (a kernel in progress is finished or undone by the next run)\n`);
      return 1;
    }
  },
};
