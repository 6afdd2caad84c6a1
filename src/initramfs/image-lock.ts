import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound } from '../fs.js';
import { isScratchOf, LEGACY_BACKUP_SUFFIX } from './atomic-write.js';

/*
 * One writer per image. The lock is a file beside the image, `.NAME.kabi-lock`, holding the
 * owner's pid and process start time, and it comes into existence with that content in one
 * step (written under a private name, then hard-linked to the lock name), so no crash or full
 * disk leaves a lock nobody can judge. A lock whose owner is gone (or whose pid now belongs to
 * another process) is broken by the next run. Whoever holds the lock removes what killed runs
 * left beside the image: half-written `.NAME.kabi-PID-HEX` files and earlier versions'
 * NAME.kabi-bak copies.
 */

export interface ImageLock {
  readonly path: string;
  /** Files removed when the lock was taken (host paths). */
  readonly cleaned: readonly string[];
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long to wait for another run (default 300 s, as long as a generator may take). */
  timeoutMs?: number;
  pollMs?: number;
}

/** A lock left without an owner (an old kabi, or a filesystem without hard links, killed mid-write) is stale after this. */
const OWNERLESS_STALE_MS = 10_000;

export function lockPathOf(image: string): string {
  return join(dirname(image), `.${basename(image)}.kabi-lock`);
}

export async function lockImage(fs: KabiFs, image: string, opts: LockOptions = {}): Promise<ImageLock> {
  const lock = lockPathOf(image);
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  const me = ownerLine(process.pid);
  for (;;) {
    if (await tryCreate(fs, lock, me)) {
      const cleaned = await cleanLeftovers(fs, image);
      return {
        path: lock,
        cleaned,
        release: async () => {
          // Only our own lock goes: if it was broken and taken over meanwhile, it is not ours.
          if ((await readOwner(fs, lock))?.line === me) await fs.unlink(lock).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
        },
      };
    }
    const owner = await readOwner(fs, lock);
    if (owner === undefined) continue; // released between our attempt and the read
    if (isStale(owner)) {
      await breakLock(fs, lock, owner.line);
      continue;
    }
    if (Date.now() > deadline) {
      throw new KabiError('LOCKED', `another kabi run (pid ${owner.pid ?? '?'}) is updating ${image}; waited ${Math.round((opts.timeoutMs ?? 300_000) / 1000)} s`, { file: lock });
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}

/** Create the lock with its content in one step; false if it exists. */
async function tryCreate(fs: KabiFs, lock: string, content: string): Promise<boolean> {
  const tmp = `${lock}-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fs.writeFile(tmp, content, { flag: 'wx', mode: 0o644 });
  } catch (e) {
    throw new KabiError('IO', `cannot create the image lock: ${(e as Error).message}`, { file: lock, cause: e });
  }
  try {
    await fs.link(tmp, lock);
    return true;
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') {
      throw new KabiError('IO', `cannot create the image lock: ${(e as Error).message}`, { file: lock, cause: e });
    }
    // No hard links here (vfat /boot/efi): exclusive create, then the content. A kill in
    // between leaves an ownerless lock, which goes stale after OWNERLESS_STALE_MS.
    try {
      const fh = await fs.open(lock, 'wx', 0o644);
      try {
        await fh.writeFile(content);
      } finally {
        await fh.close();
      }
      return true;
    } catch (e2) {
      if (errnoCode(e2) === 'EEXIST') return false;
      throw new KabiError('IO', `cannot create the image lock: ${(e2 as Error).message}`, { file: lock, cause: e2 });
    }
  } finally {
    await fs.unlink(tmp).catch(() => undefined);
  }
}

interface Owner {
  readonly line: string;
  readonly pid: number | undefined;
  readonly start: string | undefined;
  readonly ageMs: number;
}

async function readOwner(fs: KabiFs, lock: string): Promise<Owner | undefined> {
  try {
    const [text, st] = await Promise.all([fs.readFile(lock, 'utf8'), fs.lstat(lock)]);
    const [p, s] = text.trim().split(/\s+/);
    const pid = Number.parseInt(p ?? '', 10);
    return { line: text, pid: Number.isSafeInteger(pid) && pid > 0 ? pid : undefined, start: s || undefined, ageMs: Date.now() - st.mtimeMs };
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw new KabiError('IO', `cannot read the image lock: ${(e as Error).message}`, { file: lock, cause: e });
  }
}

function isStale(o: Owner): boolean {
  if (o.pid === undefined) return o.ageMs > OWNERLESS_STALE_MS;
  if (!processAlive(o.pid)) return true;
  // The pid is taken again, by another process: not the owner.
  const start = startTime(o.pid);
  return o.start !== undefined && start !== undefined && start !== o.start;
}

/**
 * Move the stale lock aside and delete it, unless what was moved is no longer the stale lock
 * (another run broke it and took the lock in between): then put that one back.
 */
async function breakLock(fs: KabiFs, lock: string, staleLine: string): Promise<void> {
  const aside = `${lock}-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fs.rename(lock, aside);
  } catch (e) {
    if (isNotFound(e)) return;
    throw new KabiError('IO', `cannot break a stale image lock: ${(e as Error).message}`, { file: lock, cause: e });
  }
  const moved = await fs.readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== undefined && moved !== staleLine) await fs.link(aside, lock).catch(() => undefined);
  await fs.unlink(aside).catch(() => undefined);
}

/** What killed runs left beside `image`; called with the lock held. */
async function cleanLeftovers(fs: KabiFs, image: string): Promise<string[]> {
  const dir = dirname(image);
  const base = basename(image);
  const lockTmp = `${basename(lockPathOf(image))}-`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if (isNotFound(e)) return removed;
    throw e;
  }
  for (const name of names) {
    let stale = isScratchOf(base, name) || name === base + LEGACY_BACKUP_SUFFIX;
    if (!stale && name.startsWith(lockTmp)) {
      const pid = Number.parseInt(name.slice(lockTmp.length), 10);
      stale = Number.isSafeInteger(pid) && pid !== process.pid && !processAlive(pid);
    }
    if (!stale) continue;
    const p = join(dir, name);
    try {
      const st = await fs.lstat(p);
      if (!st.isFile()) continue;
      await fs.unlink(p);
      removed.push(p);
    } catch (e) {
      if (!isNotFound(e)) throw new KabiError('IO', `cannot remove a leftover of a killed run: ${(e as Error).message}`, { file: p, cause: e });
    }
  }
  return removed;
}

function ownerLine(pid: number): string {
  return `${pid} ${startTime(pid) ?? ''}`.trimEnd() + '\n';
}

/** The process's start time in clock ticks since boot (/proc/PID/stat field 22), or undefined without /proc. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid exists (one we may not signal counts). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}
