import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound } from '../fs.js';

export interface Lock {
  release(): Promise<void>;
}

/**
 * An exclusive lock file (O_EXCL) holding the owner's pid. RPM runs the scriptlets of
 * several kmod packages of one transaction one after another, but nothing stops two
 * transactions (or a DKMS build) from overlapping; a lock left by a dead process is
 * taken over.
 */
export async function acquireLock(fs: KabiFs, path: string, opts: { timeoutMs?: number; pollMs?: number } = {}): Promise<Lock> {
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  for (;;) {
    try {
      const h = await fs.open(path, 'wx', 0o644);
      await h.writeFile(`${process.pid}\n`);
      await h.close();
      return {
        release: async () => {
          try {
            await fs.unlink(path);
          } catch (e) {
            if (!isNotFound(e)) throw e;
          }
        },
      };
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw new KabiError('IO', `cannot create lock: ${(e as Error).message}`, { file: path, cause: e });
    }
    const owner = await readOwner(fs, path);
    if (owner !== undefined && !alive(owner)) {
      try {
        await fs.unlink(path);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new KabiError('LOCKED', `another kabi/weak-modules run (pid ${owner ?? '?'}) holds the lock`, { file: path });
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}

async function readOwner(fs: KabiFs, path: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt(new TextDecoder().decode(await fs.readFile(path)).trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}
