import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import type { InitramfsStyle, InstalledKernel } from '../kernel/discover.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { runCommand, type Runner } from '../util/run.js';
import { findKernel } from './check.js';
import { findProgram } from './find-program.js';

export { findProgram };

/*
 * The programs that build images, driven the way each distribution's own scripts drive them:
 * dracut -f IMAGE K (RHEL's weak-modules, SUSE), update-initramfs -u -k K (Debian),
 * mkinitcpio -p PRESET or -k K -g IMAGE (Arch), kernel-install add K KERNEL (BLS systems, whose
 * plugins call whichever generator is configured).
 */

export const GENERATORS = ['dracut', 'initramfs-tools', 'mkinitcpio', 'kernel-install'] as const;
/** An initramfs generator kabi can run: dracut, initramfs-tools (update-initramfs), mkinitcpio, kernel-install. */
export type GeneratorName = (typeof GENERATORS)[number];

const PROGRAM: Record<GeneratorName, string> = {
  dracut: 'dracut',
  'initramfs-tools': 'update-initramfs',
  mkinitcpio: 'mkinitcpio',
  'kernel-install': 'kernel-install',
};

const STYLE_GENERATOR: Record<InitramfsStyle, GeneratorName> = {
  dracut: 'dracut',
  suse: 'dracut',
  'initramfs-tools': 'initramfs-tools',
  mkinitcpio: 'mkinitcpio',
  'kernel-install': 'kernel-install',
};


export function isGeneratorName(s: string): s is GeneratorName {
  return (GENERATORS as readonly string[]).includes(s);
}

/**
 * The generator for a kernel: the one whose image naming convention the existing image
 * follows, if installed; otherwise the first installed one.
 */
export async function detectGenerator(fs: KabiFs, root: string, kernel: InstalledKernel): Promise<GeneratorName | undefined> {
  const preferred = STYLE_GENERATOR[kernel.initramfs.style];
  if (await findProgram(fs, root, PROGRAM[preferred])) return preferred;
  for (const g of GENERATORS) if (await findProgram(fs, root, PROGRAM[g])) return g;
  return undefined;
}

/** The command line that rebuilds `kernel`'s image with generator `g` (system paths; run inside the root). */
export async function generatorCommand(fs: KabiFs, root: string, g: GeneratorName, kernel: InstalledKernel): Promise<string[]> {
  const k = kernel.release;
  switch (g) {
    case 'dracut':
      return ['dracut', '-f', kernel.initramfs.path, k];
    case 'initramfs-tools':
      return ['update-initramfs', kernel.initramfs.exists ? '-u' : '-c', '-k', k];
    case 'mkinitcpio': {
      const pkgbase = await readTrimmed(fs, root, `${kernel.moduleDir}/pkgbase`);
      if (pkgbase && (await resolveInRoot(fs, root, hostPath(root, `/etc/mkinitcpio.d/${pkgbase}.preset`)).catch(() => undefined))) {
        return ['mkinitcpio', '-p', pkgbase];
      }
      return ['mkinitcpio', '-k', k, '-g', kernel.initramfs.path];
    }
    case 'kernel-install': {
      const inTree = `${kernel.moduleDir}/vmlinuz`;
      const image = (await resolveInRoot(fs, root, hostPath(root, inTree)).catch(() => undefined)) ? inTree : `/boot/vmlinuz-${k}`;
      return ['kernel-install', 'add', k, image];
    }
  }
}

async function readTrimmed(fs: KabiFs, root: string, sys: string): Promise<string | undefined> {
  try {
    const host = await resolveInRoot(fs, root, hostPath(root, sys));
    if (host === undefined) return undefined;
    return new TextDecoder().decode(await fs.readFile(host)).trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface RegenerateOptions {
  root?: string;
  fs?: KabiFs;
  release: string;
  /** Which generator; default: detected for this kernel. */
  generator?: GeneratorName;
  /** The generator that built the image (read from it), used when it is installed. */
  preferred?: GeneratorName | undefined;
  /** dracut: keep the options the image was built with (`--rebuild IMAGE`; the image records them). */
  dracutRebuild?: boolean;
  /** The image to rebuild, when not the one discovery names (a kernel-install entry's initrd). */
  image?: { path: string; style: InitramfsStyle; exists: boolean } | undefined;
  dryRun?: boolean;
  runner?: Runner;
  env?: Record<string, string | undefined>;
}

/** What running a kernel's initramfs generator did: which generator, the command, its outcome. */
export interface RegenerateResult {
  readonly release: string;
  readonly generator: GeneratorName;
  /** The command as run (with `chroot ROOT` in front when the root is not /). */
  readonly argv: readonly string[];
  readonly ran: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Rebuild a kernel's image with its generator. Never runs anything in a dry run. */
export async function regenerateWithGenerator(opts: RegenerateOptions): Promise<RegenerateResult> {
  const root = opts.root ?? '/';
  const fs = opts.fs ?? nodeFs;
  const found = await findKernel(fs, root, opts.release);
  const kernel: InstalledKernel = opts.image ? { ...found, initramfs: opts.image } : found;
  const preferred = opts.preferred !== undefined && (await findProgram(fs, root, PROGRAM[opts.preferred])) ? opts.preferred : undefined;
  const generator = opts.generator ?? preferred ?? (await detectGenerator(fs, root, kernel));
  if (!generator) {
    throw new KabiError('EXTERNAL_TOOL', `no initramfs generator (${GENERATORS.map((g) => PROGRAM[g]).join(', ')}) is installed under ${root}`);
  }
  let cmd = await generatorCommand(fs, root, generator, kernel);
  if (generator === 'dracut' && opts.dracutRebuild && kernel.initramfs.exists) cmd = ['dracut', '--rebuild', kernel.initramfs.path, ...cmd.slice(1)];
  // Another root is another system: its own generator, configuration and /boot, as in a chroot.
  const argv = posix.resolve(root) === '/' ? cmd : ['chroot', root, ...cmd];
  const base = { release: opts.release, generator, argv };
  if (opts.dryRun) return { ...base, ran: false, stdout: '', stderr: '' };
  if (!(await findProgram(fs, root, PROGRAM[generator]))) {
    throw new KabiError('EXTERNAL_TOOL', `${PROGRAM[generator]} (${generator}) is not installed under ${root}`);
  }
  const run = opts.runner ?? runCommand;
  const r = await run(argv[0]!, argv.slice(1), opts.env ? { env: opts.env } : {});
  if (r.spawnError !== undefined) throw new KabiError('EXTERNAL_TOOL', `cannot run ${argv[0]} (${r.spawnError})`);
  if (r.status !== 0) {
    throw new KabiError('EXTERNAL_TOOL', `${argv.join(' ')} failed (${r.signal ?? `exit status ${r.status}`}): ${lastLines(r.stderr || r.stdout)}`);
  }
  return { ...base, ran: true, stdout: r.stdout, stderr: r.stderr };
}

function lastLines(s: string, n = 5): string {
  return s.trim().split('\n').slice(-n).join('\n');
}
