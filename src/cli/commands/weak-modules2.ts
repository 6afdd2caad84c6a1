import { release as osRelease } from 'node:os';
import { isAbsolute, posix, resolve } from 'node:path';
import { KabiError } from '../../errors.js';
import { errnoCode } from '../../fs.js';
import { hostPath } from '../../kernel/paths.js';
import { detectSdbootutil, type InitrdSettings } from '../../kmp/initrd.js';
import { weakModules2 } from '../../kmp/run.js';
import { readInitrdGenerator, readKmpPolicy } from '../../kmp/settings.js';
import type { KmpLine, Wm2Mode } from '../../kmp/types.js';
import { runCommand, type Runner } from '../../util/run.js';
import { isExecutable } from '../../linker/initramfs-step.js';
import { getopt, GetoptError } from '../getopt.js';
import type { Command } from '../command.js';
import type { CliIo } from '../io.js';
import { summaryOf } from '../summaries.js';

const MODES: readonly Wm2Mode[] = ['add-kernel', 'remove-kernel', 'add-kmp', 'remove-kmp', 'add-kernel-modules', 'remove-kernel-modules'];
const LONGS = [...MODES, 'usage', 'help', 'verbose', 'dry-run', 'debug'].map((name) => ({ name, hasArg: false }));
LONGS.push({ name: 'logfile', hasArg: true }, { name: 'root', hasArg: true });

const HELP = `weak-modules2 --add-kmp NAME-VERSION-RELEASE
	For a kernel module package's %post: link its modules into the weak-updates/
	directory of every kernel of its flavor that they fit, then run depmod and
	rebuild the initrds that need it.

weak-modules2 --remove-kmp NAME-VERSION-RELEASE < module-list
	For a kernel module package's %postun: the package is gone from the rpm
	database, so its module paths come on standard input. Its links go; where
	another installed version fits, that one is linked instead.

weak-modules2 --add-kernel [KERNEL-RELEASE]
	For a kernel package's %post: link every fitting KMP of the kernel's flavor
	into it, run depmod and build its initrd (default: the running kernel).

weak-modules2 --remove-kernel [KERNEL-RELEASE]
	For a kernel package's %postun: remove the kernel's weak-updates links.

weak-modules2 --add-kernel-modules KERNEL-RELEASE < module-list
	For a kernel subpackage holding only modules: link the KMPs that fit now,
	run depmod and rebuild the initrd if needed.

weak-modules2 --remove-kernel-modules KERNEL-RELEASE < module-list
	Likewise, after such a subpackage is removed.

weak-modules2 -v|--verbose ...
	Say what is done (-vv: and why; -vvv: every command run).

weak-modules2 --dry-run ...
	Change nothing and run nothing; with --verbose, show what would be done.

weak-modules2 --debug ...
	Also show the depmod errors behind each refusal.

weak-modules2 --logfile FILE ...
	Append these messages to FILE (relative names are under /var/log).

weak-modules2 --root DIR ...
	Work on the system mounted at DIR (kabi; default $KABI_ROOT or /).

Environment: WM2_VERBOSE (0-3), WM2_DEBUG=1, WM2_LOGFILE, DRACUT, MKOSI_INITRD,
DEPMOD, SDBOOTUTIL, INITRD_IN_POSTTRANS, KMP_NEEDS_MKINITRD, TRANSACTIONAL_UPDATE;
INITRD_GENERATOR in /etc/sysconfig/bootloader; kabi's KMP policy in
/etc/kabi/kmp.conf or KABI_KMP_* (see kabi's README).
`;

/** The first line of each entry, indented: what --usage and a usage error print. */
function usage(): string {
  return 'Usage:\n' + HELP.split('\n').filter((l) => l.startsWith('weak-modules2 ')).map((l) => `    ${l}\n`).join('');
}

/** KMP_NEEDS_MKINITRD counts when set to anything but a number equal to 0 (`test "$X" -eq 0`). */
function forcesInitrd(v: string | undefined): boolean {
  return v !== undefined && v !== '' && !/^\s*[-+]?0+\s*$/.test(v);
}

/**
 * SUSE's /usr/lib/module-init-tools/weak-modules2, as the kmp, inkmp and kernel scriptlets call
 * it: the same options, environment, standard input, messages on stderr and exit statuses,
 * with kabi deciding compatibility and writing links, depmod files and records. Parses and
 * prints only; src/kmp/ does the work.
 */
export async function weakModules2Main(argv: string[], io: CliIo, deps: { run?: Runner } = {}): Promise<number> {
  let parsed;
  try {
    parsed = getopt(argv, LONGS, { v: 'verbose', h: 'help' });
  } catch (e) {
    if (!(e instanceof GetoptError)) throw e;
    io.stderr(`weak-modules2: ${e.message}\n${usage()}`);
    return 1;
  }
  const env = io.env;
  let verbose = /^[0-3]$/.test(env.WM2_VERBOSE ?? '') ? Number(env.WM2_VERBOSE) : 0;
  let debug = env.WM2_DEBUG === '1';
  let logfile = env.WM2_LOGFILE || undefined;
  let dryRun = false;
  let mode: Wm2Mode | undefined;
  let root = env.KABI_ROOT || '/';
  for (const [name, value] of parsed.sequence) {
    if ((MODES as readonly string[]).includes(name)) mode = name as Wm2Mode;
    else if (name === 'verbose') verbose++;
    else if (name === 'dry-run') dryRun = true;
    else if (name === 'debug') debug = true;
    else if (name === 'logfile') logfile = value as string;
    else if (name === 'root') root = value as string;
    else if (name === 'usage') {
      io.stdout(usage());
      return 0;
    } else if (name === 'help') {
      io.stdout(HELP);
      return 0;
    }
  }
  const args = parsed.positionals;
  let err: string | undefined;
  if (!mode) err = 'Please specify one of the --add-* or --remove-* options';
  else if (mode === 'add-kernel' || mode === 'remove-kernel') {
    if (args.length > 1) err = `Too many arguments to --${mode}`;
  } else if (args.length !== 1) err = `Option --${mode} requires exactly one argument`;
  if (err || !mode) {
    io.stderr(`ERROR: ${err}\n${usage()}`);
    return 1;
  }
  root = resolve(io.cwd, root);
  const arg = args[0] ?? osRelease();

  // --logfile: everything weak-modules2 prints goes there from now on (appended).
  let log: { write: (t: string) => Promise<void>; close: () => Promise<void> } | undefined;
  if (logfile) {
    const path = isAbsolute(logfile) ? logfile : hostPath(root, posix.join('/var/log', logfile));
    io.stderr(`weak-modules2: appending output to ${path}\n`);
    const h = await io.fs.open(path, 'a', 0o644);
    log = { write: async (t) => void (await h.appendFile(t)), close: () => h.close() };
  }
  let written = Promise.resolve();
  const stderr = (t: string) => {
    if (log) written = written.then(() => log.write(t));
    else io.stderr(t);
  };
  const trace = verbose >= 3;
  const say = (level: KmpLine['level'] | 'trace', text: string) => {
    const show = level === 'error' || level === 'warn' || (level === 'log' && verbose >= 1) || (level === 'dlog' && verbose >= 2) || (level === 'debug' && (debug || verbose >= 2)) || (level === 'trace' && trace);
    if (show) stderr(text + '\n');
  };

  try {
    const run = deps.run ?? runCommand;
    const policy = await readKmpPolicy(io.fs, root, env);
    const initrd: InitrdSettings = {
      generator: await readInitrdGenerator(io.fs, root),
      dracut: env.DRACUT || '/usr/bin/dracut',
      mkosiInitrd: env.MKOSI_INITRD || '/usr/bin/mkosi-initrd',
      sdbootutil: await detectSdbootutil({ root, fs: io.fs, run }, env.SDBOOTUTIL || undefined),
      inPosttrans: !!env.INITRD_IN_POSTTRANS,
      transactional: !!env.TRANSACTIONAL_UPDATE,
      kmpNeedsMkinitrd: forcesInitrd(env.KMP_NEEDS_MKINITRD),
    };
    // DEPMOD names the system's depmod to use; kabi's own depmod needs no program.
    const depmod = env.DEPMOD && (await isExecutable(env.DEPMOD)) ? env.DEPMOD : undefined;
    // --remove-kmp gets the module list; the kernel-modules modes' list is read and ignored.
    const stdin = mode === 'remove-kmp' || mode === 'add-kernel-modules' || mode === 'remove-kernel-modules' ? await io.readStdin() : '';
    const r = await weakModules2(mode, arg, mode === 'remove-kmp' ? stdin : '', {
      root,
      fs: io.fs,
      run,
      policy,
      initrd,
      dryRun,
      ...(depmod ? { depmod } : {}),
      say,
    });
    return r.status;
  } catch (e) {
    if (e instanceof KabiError) {
      say('error', e.code === 'USAGE' ? `ERROR: ${e.message}` : `weak-modules2: ${e.message}`);
      return 1;
    }
    // A failed write fails the scriptlet; the linker's journal undoes half-done work.
    if (errnoCode(e) !== undefined) {
      say('error', `weak-modules2: ${(e as Error).message}`);
      return 1;
    }
    throw e;
  } finally {
    await written;
    await log?.close();
  }
}

export const weakModules2Command: Command = {
  name: 'weak-modules2',
  summary: summaryOf('weak-modules2'),
  usage: usage(),
  run: (argv, io) => weakModules2Main(argv, io),
};
