import { release as osRelease } from 'node:os';
import { isKabiError, KabiError } from '../../errors.js';
import { errnoCode } from '../../fs.js';
import { discoverKernels } from '../../kernel/discover.js';
import { applyPlan, recoverAll } from '../../linker/apply.js';
import { initramfsStep, isExecutable } from '../../linker/initramfs-step.js';
import { planAddKernel, planAddModules, planRemoveKernel, planRemoveModules } from '../../linker/plan.js';
import { postProcess } from '../../linker/post.js';
import type { Plan } from '../../linker/types.js';
import { getopt, GetoptError } from '../getopt.js';
import type { Command } from '../command.js';
import type { CliIo } from '../io.js';

const LONGS = [
  'help',
  'add-modules',
  'remove-modules',
  'add-kernel',
  'remove-kernel',
  'dry-run',
  'no-initramfs',
  'verbose',
  'delete-modules',
  'system-depmod',
].map((name) => ({ name, hasArg: false }));
for (const name of ['basedir', 'dracut', 'check-initramfs-prog']) LONGS.push({ name, hasArg: true });

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

  // dracut is needed only if this run may rebuild an image (the el9 script demands it
  // even with --no-initramfs, which breaks minimal containers).
  const mayRebuild = !noInitramfs && !dryRun && !checkProg && mode !== 'remove-kernel';
  if (mayRebuild && !(await isExecutable(dracut))) {
    io.stdout(`weak-modules: could not find dracut at ${dracut}\n`);
    return 1;
  }

  const release = parsed.positionals[0] ?? osRelease();
  const opts = { root, fs: io.fs, cwd: io.cwd, semantics: 'depmod' as const, policy: { targets: 'as-given' as const } };
  let plan: Plan;
  try {
    if (!dryRun) await recoverAll(root, { fs: io.fs });
    if (mode === 'add-modules' || mode === 'remove-modules') {
      const paths = (await io.readStdin()).split('\n').filter((l) => l !== '');
      if (paths.length === 0) return 0;
      plan = mode === 'add-modules' ? await planAddModules(paths, opts) : await planRemoveModules(paths, opts);
    } else if (mode === 'add-kernel') {
      plan = await planAddKernel(release, opts);
    } else {
      plan = await planRemoveKernel(release, opts);
    }
  } catch (e) {
    if (isKabiError(e) && e.code === 'KERNEL_NOT_FOUND') {
      io.stderr(`${e.message}\n`);
      return 1;
    }
    throw e;
  }
  for (const m of plan.messages) log(m);
  for (const w of plan.warnings) warn(w);
  if (mode === 'remove-kernel') {
    const k = plan.kernels[0];
    if (k) log(`rm -rf ${root === '/' ? '' : root}/lib/modules/${release}/weak-updates/*`);
    if (!dryRun) await applyPlan(plan, { fs: io.fs });
    return 0;
  }
  if (!dryRun) await applyPlan(plan, { fs: io.fs });
  const kernels = await discoverKernels({ root, fs: io.fs });
  const failed = await postProcess(plan, {
    root,
    fs: io.fs,
    depmodMode: o.has('system-depmod') ? 'system' : 'native',
    kernels,
    dryRun,
    log,
    warn,
    ...(noInitramfs ? {} : { initramfs: initramfsStep({ root, fs: io.fs, kernels, plan, dracut, log, warn, ...(checkProg ? { checkProg } : {}) }) }),
  });
  // Incompatible modules leave the exit status 0 (scriptlets run this with `|| exit $?`); a
  // kernel whose module indexes could not be written does not.
  return failed.length > 0 ? 1 : 0;
}

export const weakModulesCommand: Command = {
  name: 'weak-modules',
  summary: 'drop-in replacement for RHEL’s weak-modules (same options and output)',
  usage: USAGE,
  async run(argv, io) {
    try {
      return await weakModules(argv, io);
    } catch (e) {
      if (e instanceof KabiError) {
        io.stderr(`weak-modules: ${e.message}\n`);
        return 2;
      }
      // A failed write must fail the RPM scriptlet (`|| exit $?`); the journal undoes half-done work.
      if (errnoCode(e) !== undefined) {
        io.stderr(`weak-modules: ${(e as Error).message}\n`);
        return 1;
      }
      throw e;
    }
  },
};
