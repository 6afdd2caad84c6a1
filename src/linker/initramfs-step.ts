import { access, constants } from 'node:fs/promises';
import { hostPath } from '../kernel/paths.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { runCommand, type Runner } from '../util/run.js';

export interface InitramfsStepOptions {
  root: string;
  kernels: readonly InstalledKernel[];
  /** weak-modules --check-initramfs-prog: called as `PROG <release>` instead of the built-in step. */
  checkProg?: string;
  /** weak-modules --dracut. */
  dracut?: string;
  log: (line: string) => void;
  warn: (line: string) => void;
  run?: Runner;
}

/**
 * The per-kernel initramfs step weak-modules runs after depmod. Like the original, an image
 * that does not exist yet is not created here (the kernel package's own kernel-install
 * builds the first one after the links exist).
 */
export function initramfsStep(opts: InitramfsStepOptions): (release: string) => Promise<void> {
  const run = opts.run ?? runCommand;
  return async (release) => {
    if (opts.checkProg) {
      opts.log(`${opts.checkProg} ${release}`);
      const r = await run(opts.checkProg, [release]);
      if (r.spawnError) opts.warn(`weak-modules: cannot run ${opts.checkProg}: ${r.spawnError}`);
      return;
    }
    const k = opts.kernels.find((x) => x.release === release);
    if (!k || !k.initramfs.exists) return;
    const image = hostPath(opts.root, k.initramfs.path);
    const dracut = opts.dracut ?? '/usr/bin/dracut';
    const args = ['-f', image, release];
    opts.log([dracut, ...args].join(' '));
    const r = await run(dracut, args);
    if (r.spawnError) opts.warn(`weak-modules: cannot run ${dracut}: ${r.spawnError}`);
    else if (r.status !== 0) opts.warn(`weak-modules: ${dracut} failed for ${release} (status ${r.status}): ${r.stderr.trimEnd()}`);
  };
}

export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
