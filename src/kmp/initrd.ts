import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import { imageNeedsUpdate } from '../initramfs/check.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import type { Runner } from '../util/run.js';
import type { InitrdGenerator } from './settings.js';
import type { KernelRefresh } from './types.js';

/** How weak-modules2 builds initrds on this system (environment and /etc/sysconfig/bootloader). */
export interface InitrdSettings {
  readonly generator: InitrdGenerator;
  /** DRACUT (default /usr/bin/dracut). */
  readonly dracut: string;
  /** MKOSI_INITRD (default /usr/bin/mkosi-initrd). */
  readonly mkosiInitrd: string;
  /** sdbootutil, when the system boots through it (see detectSdbootutil). */
  readonly sdbootutil: string | undefined;
  /** INITRD_IN_POSTTRANS: record the kernel in /run/regenerate-initrd for %posttrans instead of building now. */
  readonly inPosttrans: boolean;
  /** TRANSACTIONAL_UPDATE: inside a transaction, sdbootutil's images are built after it. */
  readonly transactional: boolean;
  /** KMP_NEEDS_MKINITRD (a KMP built with %kernel_module_package -b): always rebuild. */
  readonly kmpNeedsMkinitrd: boolean;
}

/** The directory SUSE's regenerate-initrd-posttrans reads in %posttrans (one empty file per kernel). */
export const REGENERATE_DIR = '/run/regenerate-initrd';

export interface InitrdContext {
  readonly root: string;
  readonly fs: KabiFs;
  readonly run: Runner;
  readonly dryRun: boolean;
  readonly settings: InitrdSettings;
  /** Print a line at weak-modules2's level (log: -v, dlog: -vv). */
  readonly say: (level: 'warn' | 'log' | 'dlog', text: string) => void;
}

const IMAGE_NAMES = ['vmlinuz', 'image', 'vmlinux', 'linux', 'bzImage', 'uImage', 'Image', 'zImage'];

/** A system path inside the root exists (links followed inside the root only). */
async function exists(ctx: InitrdContext, sys: string): Promise<boolean> {
  return (await resolveInRoot(ctx.fs, ctx.root, hostPath(ctx.root, sys)).catch(() => undefined)) !== undefined;
}

async function isFile(ctx: InitrdContext, sys: string): Promise<boolean> {
  const host = await resolveInRoot(ctx.fs, ctx.root, hostPath(ctx.root, sys)).catch(() => undefined);
  if (host === undefined) return false;
  try {
    return (await ctx.fs.stat(host)).isFile();
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** A per-kernel file where SUSE puts it: /usr/lib/modules/K/<name>, else /boot/<name>-K. */
async function kernelFile(ctx: InitrdContext, name: string, release: string): Promise<string | undefined> {
  for (const p of [`/usr/lib/modules/${release}/${name}`, `/boot/${name}-${release}`]) if (await exists(ctx, p)) return p;
  return undefined;
}

/** Run a program of the system: directly on /, through chroot for another root. */
function inRoot(ctx: InitrdContext, argv: readonly string[]): string[] {
  return posix.resolve(ctx.root) === '/' ? [...argv] : ['chroot', ctx.root, ...argv];
}

async function execute(ctx: InitrdContext, argv: readonly string[]): Promise<boolean> {
  ctx.say('log', argv.join(' '));
  if (ctx.dryRun) return true;
  const full = inRoot(ctx, argv);
  const r = await ctx.run(full[0]!, full.slice(1));
  if (r.spawnError !== undefined) {
    ctx.say('warn', `${argv[0]}: cannot run (${r.spawnError})`);
    return false;
  }
  const out = `${r.stdout}${r.stderr}`.trimEnd();
  if (out !== '') for (const l of out.split('\n')) ctx.say('warn', l);
  return r.status === 0;
}

/**
 * sdbootutil, if this system boots through it: SDBOOTUTIL when it names a program, else
 * /usr/bin/sdbootutil when `sdbootutil is-installed` says so.
 */
export async function detectSdbootutil(ctx: Pick<InitrdContext, 'root' | 'fs' | 'run'>, fromEnv: string | undefined): Promise<string | undefined> {
  const c = { ...ctx, dryRun: false } as InitrdContext;
  if (fromEnv && (await isFile(c, fromEnv))) return fromEnv;
  if (!(await exists(c, '/usr/bin/sdbootutil'))) return undefined;
  const argv = inRoot(c, ['/usr/bin/sdbootutil', 'is-installed']);
  const r = await ctx.run(argv[0]!, argv.slice(1));
  return r.status === 0 ? '/usr/bin/sdbootutil' : undefined;
}

/** Where the kernel's current initrd is: /boot/initrd-K, or what sdbootutil's boot entry names. */
async function currentInitrd(ctx: InitrdContext, release: string, sdboot: string | undefined): Promise<string | undefined> {
  if (sdboot === undefined || ctx.settings.transactional) return `/boot/initrd-${release}`;
  const token = await resolveInRoot(ctx.fs, ctx.root, hostPath(ctx.root, '/etc/kernel/entry-token')).catch(() => undefined);
  if (token === undefined || (await ctx.fs.stat(token)).size === 0) return `/boot/initrd-${release}`;
  const entry = inRoot(ctx, [sdboot, '--entry-keys=initrd', 'show-entry', release]);
  const r = await ctx.run(entry[0]!, entry.slice(1));
  const path = r.status === 0 ? r.stdout.trim().split(/\s+/)[1] : undefined;
  const bootArgv = inRoot(ctx, ['bootctl', '--print-boot-path']);
  const boot = await ctx.run(bootArgv[0]!, bootArgv.slice(1));
  if (path === undefined || boot.status !== 0) return undefined;
  return posix.join(boot.stdout.trim(), path);
}

/**
 * weak-modules2's initrd step for one kernel, after depmod: decide whether the initrd needs
 * building, then build it now or leave a note for %posttrans. Returns false when the generator
 * failed (the run then exits 1).
 */
export async function initrdStep(refresh: KernelRefresh, ctx: InitrdContext): Promise<boolean> {
  const K = refresh.release;
  const s = ctx.settings;
  // kdump kernels get theirs from mkdumprd when kdump is loaded.
  if (K.includes('kdump')) return true;
  if (!(await isFile(ctx, '/etc/fstab')) || (await exists(ctx, '/.buildenv'))) {
    ctx.say(
      'warn',
      s.generator === 'dracut'
        ? `Please run "${s.dracut} -f /boot/initrd-${K} ${K}" as soon as your system is complete.`
        : `Please run "${s.mkosiInitrd} --kernel-version ${K} -O /boot -o initrd-${K}" as soon as your system is complete.`,
    );
    return true;
  }
  const sdboot = s.sdbootutil;
  if (!(await needsInitrd(refresh, ctx, sdboot))) return true;

  let image: string | undefined;
  for (const name of IMAGE_NAMES) if ((image = await kernelFile(ctx, name, K))) break;
  if (image === undefined) {
    ctx.say('warn', `WARNING: kernel image for ${K} not found!`);
    return true;
  }
  if (s.inPosttrans || (sdboot !== undefined && s.transactional)) {
    ctx.say('log', `touch ${REGENERATE_DIR}/${K}`);
    if (!ctx.dryRun) await recordForPosttrans(ctx.fs, ctx.root, K);
    return true;
  }
  if (sdboot !== undefined) return s.transactional ? true : execute(ctx, [sdboot, '--no-reuse-initrd', 'add-kernel', K]);
  if (s.generator === 'mkosi-initrd') return execute(ctx, [s.mkosiInitrd, '--kernel-version', K, '-O', '/boot', '-o', `initrd-${K}`]);
  return execute(ctx, [s.dracut, '-f', (await currentInitrd(ctx, K, undefined))!, K]);
}

async function needsInitrd(refresh: KernelRefresh, ctx: InitrdContext, sdboot: string | undefined): Promise<boolean> {
  const K = refresh.release;
  if (ctx.settings.kmpNeedsMkinitrd) {
    ctx.say('dlog', 'needs_initrd: yes, KMP_NEEDS_MKINITRD is set');
    return true;
  }
  if (refresh.changed === '_kernel_') {
    ctx.say('dlog', 'needs_initrd: yes, kernel package');
    return true;
  }
  const initrd = await currentInitrd(ctx, K, sdboot);
  if (sdboot === undefined && initrd !== undefined && !(await exists(ctx, initrd))) {
    ctx.say('dlog', "needs_initrd: yes, initrd doesn't exist yet");
    return true;
  }
  if (initrd === undefined) return false;
  // Instead of listing the image (lsinitrd) and intersecting names, ask whether any changed
  // module is in it with other contents, gone, or named in dracut's configuration.
  try {
    const check = await imageNeedsUpdate({ root: ctx.root, fs: ctx.fs, release: K, changedModules: refresh.changedModules, image: initrd });
    const names = [...new Set(check.changes.map((c) => c.name))];
    ctx.say('log', `changed initrd modules for kernel ${K}: ${names.length > 0 ? names.join(' ') : 'none'}`);
    return check.needsUpdate;
  } catch (e) {
    if (!(e instanceof KabiError)) throw e;
    ctx.say('warn', `weak-modules2: cannot read ${initrd} (${e.detail}); rebuilding it`);
    return true;
  }
}

/** touch /run/regenerate-initrd/K (the directory made if needed), never through a link. */
export async function recordForPosttrans(fs: KabiFs, root: string, release: string): Promise<void> {
  if (release === '' || release.includes('/') || release.startsWith('.')) throw new KabiError('USAGE', `"${release}" is not a kernel release`);
  await fs.mkdir(hostPath(root, REGENERATE_DIR), { recursive: true, mode: 0o755 });
  const dir = await resolveInRoot(fs, root, hostPath(root, REGENERATE_DIR));
  if (dir === undefined || !(await fs.lstat(dir)).isDirectory()) throw new KabiError('UNSAFE_PATH', `${REGENERATE_DIR} is not a directory`, { file: hostPath(root, REGENERATE_DIR) });
  const file = posix.join(dir, release);
  try {
    const st = await fs.lstat(file);
    if (!st.isFile()) throw new KabiError('UNSAFE_PATH', `${file} is not a regular file`, { file });
    const now = new Date();
    await fs.utimes(file, now, now);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await fs.writeFile(file, '', { flag: 'wx', mode: 0o644 });
  }
}
