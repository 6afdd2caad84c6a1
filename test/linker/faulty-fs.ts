import type { KabiFs } from '../../src/fs.js';

const MUTATING = new Set(['writeFile', 'symlink', 'rename', 'mkdir', 'rmdir', 'unlink', 'rm', 'link', 'chmod', 'chown', 'copyFile', 'utimes', 'lutimes', 'mkdtemp']);

export interface FaultPlan {
  /** 1-based index of the mutating call that fails. */
  failAt: number;
  /** After the failure every later call fails too, as if the process had been killed there. */
  crash?: boolean;
  /** The errno the failing call gets (default EIO): ENOSPC, EROFS… */
  code?: string;
}

/**
 * Wraps a KabiFs so that the Nth mutating call (or opening a file for writing) fails with
 * EIO (or the code asked for). Counting mode (failAt = Infinity) tells how many mutating
 * calls a clean run makes, and which.
 */
export function faultyFs(base: KabiFs, plan: FaultPlan): { fs: KabiFs; count: () => number; tripped: () => boolean; failedOn: () => string; calls: () => string[] } {
  let n = 0;
  let dead = false;
  let failedOn = '';
  const calls: string[] = [];
  const code = plan.code ?? 'EIO';
  const boom = (what: string) => Object.assign(new Error(`${code}: injected fault in ${what}`), { code });
  const fs = new Proxy(base, {
    get(target, prop, receiver) {
      const orig = Reflect.get(target, prop, receiver) as unknown;
      if (typeof orig !== 'function') return orig;
      const name = String(prop);
      return async (...args: unknown[]) => {
        if (dead) throw boom(`${name} after crash`);
        const writes = MUTATING.has(name) || (name === 'open' && typeof args[1] === 'string' && /[wa+x]/.test(args[1]));
        if (writes) {
          n++;
          calls.push(`${name} ${String(args[0])}`);
          if (n === plan.failAt) {
            if (plan.crash) dead = true;
            failedOn = `${name} ${String(args[0])}`;
            throw boom(name);
          }
        }
        return (orig as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { fs, count: () => n, tripped: () => n >= plan.failAt, failedOn: () => failedOn, calls: () => calls };
}
