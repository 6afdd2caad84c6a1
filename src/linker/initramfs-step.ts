import { access, constants } from 'node:fs/promises';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { imageNeedsUpdate } from '../initramfs/check.js';
import { refreshInitramfs, type RefreshStrategy } from '../initramfs/refresh.js';
import { hostPath } from '../kernel/paths.js';
import type { InstalledKernel } from '../kernel/discover.js';
import { runCommand, type Runner } from '../util/run.js';
import type { Plan } from './types.js';

export interface InitramfsStepOptions {
  root: string;
  fs?: KabiFs;
  kernels: readonly InstalledKernel[];
  plan: Plan;
  /** weak-modules --check-initramfs-prog: called as `PROG <release>` instead of the built-in step. */
  checkProg?: string;
  /** weak-modules --dracut. */
  dracut?: string;
  log: (line: string) => void;
  warn: (line: string) => void;
  run?: Runner;
}

/**
 * weak-modules' per-kernel initramfs step, after depmod. An image that does not exist is not
 * created (the kernel package's kernel-install builds the first one after the links exist).
 * Instead of building a temporary image with dracut and comparing, kabi reads the existing
 * image and runs dracut only if a module that changed is in it (or named in dracut's
 * configuration). An image kabi cannot read is rebuilt, as the original would.
 */
export function initramfsStep(opts: InitramfsStepOptions): (release: string) => Promise<void> {
  const run = opts.run ?? runCommand;
  const fs = opts.fs ?? nodeFs;
  return async (release) => {
    if (opts.checkProg) {
      opts.log(`${opts.checkProg} ${release}`);
      const r = await run(opts.checkProg, [release]);
      if (r.spawnError) opts.warn(`weak-modules: cannot run ${opts.checkProg}: ${r.spawnError}`);
      return;
    }
    const k = opts.kernels.find((x) => x.release === release);
    if (!k || !k.initramfs.exists) return;
    const changed = opts.plan.kernels.find((x) => x.release === release)?.changedModules ?? [];
    try {
      const check = await imageNeedsUpdate({ root: opts.root, fs, release, changedModules: changed });
      if (!check.needsUpdate) {
        opts.log(`initramfs ${check.image} holds none of the changed modules, not rebuilding it`);
        return;
      }
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
      opts.warn(`weak-modules: cannot read ${k.initramfs.path} (${e.detail}); rebuilding it`);
    }
    const image = hostPath(opts.root, k.initramfs.path);
    const dracut = opts.dracut ?? '/usr/bin/dracut';
    const args = ['-f', image, release];
    opts.log([dracut, ...args].join(' '));
    const r = await run(dracut, args);
    if (r.spawnError) opts.warn(`weak-modules: cannot run ${dracut}: ${r.spawnError}`);
    else if (r.status !== 0) opts.warn(`weak-modules: ${dracut} failed for ${release} (status ${r.status}): ${r.stderr.trimEnd()}`);
  };
}

/** kabi link's step: the initramfs layer decides (native rewrite, generator or deferred record). */
export function refreshStep(opts: { root: string; fs?: KabiFs; plan: Plan; strategy: RefreshStrategy; log: (l: string) => void; warn: (l: string) => void }): (release: string) => Promise<void> {
  return async (release) => {
    const changed = opts.plan.kernels.find((x) => x.release === release)?.changedModules ?? [];
    try {
      const r = await refreshInitramfs({ root: opts.root, ...(opts.fs ? { fs: opts.fs } : {}), release, changedModules: changed, strategy: opts.strategy });
      if (r.action !== 'none') opts.log(`initramfs ${r.check.image}: ${r.action === 'deferred' ? 'refresh recorded for kabi initramfs flush' : `rebuilt (${r.action})`}`);
      for (const n of r.notes) opts.log(`initramfs ${r.check.image}: ${n}`);
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
      opts.warn(`kabi: initramfs of ${release} not refreshed: ${e.message}`);
    }
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
