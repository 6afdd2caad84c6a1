import { posix } from 'node:path';
import type { KabiFs } from '../fs.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';

const SEARCH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** System path of a program inside the root, or undefined. */
export async function findProgram(fs: KabiFs, root: string, program: string): Promise<string | undefined> {
  for (const dir of SEARCH_DIRS) {
    const sys = posix.join(dir, program);
    const host = await resolveInRoot(fs, root, hostPath(root, sys)).catch(() => undefined);
    if (host === undefined) continue;
    try {
      const st = await fs.stat(host);
      if (st.isFile() && (st.mode & 0o111) !== 0) return sys;
    } catch {
      // next
    }
  }
  return undefined;
}

