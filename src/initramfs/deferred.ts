import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs, readTextIfExists } from '../fs.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { findKernel } from './check.js';
import { refreshInitramfs, type RefreshOptions, type RefreshResult, type RefreshStrategy } from './refresh.js';

/*
 * Deferred refreshes, for package transactions: each %post that changes modules records its
 * kernel (cheap, no image touched), and one %posttrans `kabi initramfs flush` rebuilds every
 * recorded image once. Records live in /run (as SUSE's /run/regenerate-initrd does): a reboot
 * before the flush boots the old, still consistent image.
 */

export const DEFAULT_STATE_DIR = '/run/kabi/initramfs';

export interface DeferredRecord {
  readonly release: string;
  /** Module paths that changed; undefined means "look at the whole image". */
  readonly changedModules: readonly string[] | undefined;
  readonly since: string;
}

interface StateOptions {
  root?: string;
  fs?: KabiFs;
  stateDir?: string;
}

function checkRelease(release: string): void {
  if (release === '' || release.startsWith('.') || release.includes('/') || release.includes('\0')) {
    throw new KabiError('USAGE', `"${release}" is not a kernel release`);
  }
}

/** Host path of the state directory, refusing one that leads outside the root through a link. */
async function stateHost(fs: KabiFs, root: string, stateDir: string, create: boolean): Promise<string | undefined> {
  const host = hostPath(root, stateDir);
  if (create) await fs.mkdir(host, { recursive: true, mode: 0o755 });
  const resolved = await resolveInRoot(fs, root, host);
  if (resolved === undefined) return undefined;
  const st = await fs.lstat(resolved);
  if (!st.isDirectory()) throw new KabiError('UNSAFE_PATH', 'the deferred-refresh state path is not a directory', { file: resolved });
  return resolved;
}

/** Record that `release`'s image needs a refresh (merged with what is recorded already). */
export async function deferRefresh(opts: StateOptions & { release: string; changedModules?: readonly string[] }): Promise<DeferredRecord> {
  checkRelease(opts.release);
  const fs = opts.fs ?? nodeFs;
  const dir = (await stateHost(fs, opts.root ?? '/', opts.stateDir ?? DEFAULT_STATE_DIR, true))!;
  const file = posix.join(dir, `${opts.release}.json`);
  const old = await readRecord(fs, file);
  let changed: string[] | undefined;
  if (opts.changedModules === undefined || (old !== undefined && old.changedModules === undefined)) changed = undefined;
  else changed = [...new Set([...(old?.changedModules ?? []), ...opts.changedModules])].sort();
  const record: DeferredRecord = { release: opts.release, changedModules: changed, since: old?.since ?? new Date().toISOString() };
  const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(record) + '\n', { flag: 'wx', mode: 0o644 });
  await fs.rename(tmp, file);
  return record;
}

async function readRecord(fs: KabiFs, file: string): Promise<DeferredRecord | undefined> {
  const text = await readTextIfExists(fs, file);
  if (text === undefined) return undefined;
  try {
    const j = JSON.parse(text) as { release?: unknown; changedModules?: unknown; since?: unknown };
    if (typeof j.release !== 'string') throw new Error('no release');
    const changed = Array.isArray(j.changedModules) ? j.changedModules.filter((x): x is string => typeof x === 'string') : undefined;
    return { release: j.release, changedModules: changed, since: typeof j.since === 'string' ? j.since : '' };
  } catch (e) {
    throw new KabiError('USAGE', `unreadable deferred-refresh record: ${(e as Error).message}`, { file });
  }
}

/** Kernels waiting for a refresh, in name order. */
export async function listDeferred(opts: StateOptions = {}): Promise<DeferredRecord[]> {
  const fs = opts.fs ?? nodeFs;
  let dir: string | undefined;
  try {
    dir = await stateHost(fs, opts.root ?? '/', opts.stateDir ?? DEFAULT_STATE_DIR, false);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  if (dir === undefined) return [];
  const out: DeferredRecord[] = [];
  for (const name of (await fs.readdir(dir)).sort()) {
    if (!name.endsWith('.json')) continue;
    const r = await readRecord(fs, posix.join(dir, name));
    if (r && `${r.release}.json` === name) out.push(r);
  }
  return out;
}

export interface FlushOptions extends Omit<RefreshOptions, 'release' | 'changedModules' | 'strategy'> {
  strategy?: Exclude<RefreshStrategy, 'defer'>;
}

/** What flushing one deferred kernel did: the refresh, or the error, or that the kernel is gone. */
export interface FlushOutcome {
  readonly release: string;
  readonly result?: RefreshResult;
  readonly error?: Error;
  /** The kernel is gone: its record was dropped. */
  readonly dropped?: boolean;
}

/**
 * Refresh every recorded kernel once. A record is claimed by renaming it first, so two flushes
 * running at once never rebuild the same image twice; it is removed after success and put back
 * after a failure (to be retried by the next flush).
 */
export async function flushDeferred(opts: FlushOptions = {}): Promise<FlushOutcome[]> {
  const fs = opts.fs ?? nodeFs;
  const root = opts.root ?? '/';
  const records = await listDeferred(opts);
  if (records.length === 0) return [];
  const dir = (await stateHost(fs, root, opts.stateDir ?? DEFAULT_STATE_DIR, false))!;
  const out: FlushOutcome[] = [];
  for (const r of records) {
    const file = posix.join(dir, `${r.release}.json`);
    if (opts.dryRun) {
      try {
        const result = await refreshInitramfs({ ...opts, release: r.release, strategy: opts.strategy ?? 'auto', ...(r.changedModules ? { changedModules: r.changedModules } : {}) });
        out.push({ release: r.release, result });
      } catch (e) {
        out.push({ release: r.release, error: e as Error });
      }
      continue;
    }
    const claimed = `${file}.flushing-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await fs.rename(file, claimed);
    } catch (e) {
      if (isNotFound(e)) continue; // another flush took it
      throw e;
    }
    try {
      let installed = true;
      try {
        await findKernel(fs, root, r.release);
      } catch (e) {
        if (!(e instanceof KabiError && e.code === 'KERNEL_NOT_FOUND')) throw e;
        installed = false;
      }
      if (!installed) {
        await fs.unlink(claimed);
        out.push({ release: r.release, dropped: true });
        continue;
      }
      const result = await refreshInitramfs({ ...opts, release: r.release, strategy: opts.strategy ?? 'auto', ...(r.changedModules ? { changedModules: r.changedModules } : {}) });
      await fs.unlink(claimed);
      out.push({ release: r.release, result });
    } catch (e) {
      await fs.unlink(claimed).catch(() => undefined);
      await deferRefresh({ root, fs, ...(opts.stateDir ? { stateDir: opts.stateDir } : {}), release: r.release, ...(r.changedModules ? { changedModules: r.changedModules } : {}) }).catch(() => undefined);
      out.push({ release: r.release, error: e as Error });
    }
  }
  return out;
}
