import { release as osRelease } from 'node:os';
import { posix } from 'node:path';
import { KabiError } from '../errors.js';

/**
 * The kernel preserve works for: given explicitly (--kernel), else `uname -r` when the root is
 * the running system, else $KABI_KERNEL. An image or chroot has no running kernel of its own, so
 * guessing there would save (or prune) the wrong tree.
 */
export function runningKernel(root: string, explicit: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  if (explicit) return explicit;
  if (posix.resolve(root) === '/') return osRelease();
  const fromEnv = env.KABI_KERNEL;
  if (fromEnv) return fromEnv;
  throw new KabiError('USAGE', `with --root ${root} the running kernel is unknown: give --kernel K or set KABI_KERNEL`);
}
