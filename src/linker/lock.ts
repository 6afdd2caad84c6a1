import { spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname, basename } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode } from '../fs.js';

export interface Lock {
  readonly path: string;
  release(): Promise<void>;
}

/** How long to wait for the root's lock, and what to say while waiting. */
export interface LockOptions {
  /** How long to wait for another run (default: $KABI_LOCK_TIMEOUT seconds, else 300 s). */
  timeoutMs?: number;
  /**
   * A reader's lock (dry runs): it waits for a run in progress but lets other readers in, and
   * it is never created — where no lock file exists, no run is in progress.
   */
  shared?: boolean;
  /** Called once if the lock is not free at once, with what is known of its holder. */
  onWait?: (holder: string) => void;
  /** flock(1) on the lock file (default when util-linux's flock is installed), or an abstract socket. */
  mechanism?: 'flock' | 'socket';
  /** How often the socket mechanism tries again. */
  pollMs?: number;
}

/** Children of a run that holds a lock (a --check-initramfs-prog calling kabi) share it: "pid:dev:ino". */
const INHERITED = 'KABI_LOCK_HELD';

const held = new Map<string, { count: number; exclusive: boolean; release: () => void }>();

export function defaultLockTimeoutMs(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const s = Number(env.KABI_LOCK_TIMEOUT);
  return Number.isFinite(s) && s >= 0 && env.KABI_LOCK_TIMEOUT !== '' ? s * 1000 : 300_000;
}

/**
 * An exclusive (or shared) lock on `path`, held by this process until release() or its end.
 *
 * The lock is flock(2) on an open descriptor, so the kernel drops it when the holder dies,
 * however it dies: no pid is trusted, a lock file left by a crash, an empty one (ENOSPC) or
 * one naming an unrelated live process (pid 1) blocks nobody. Node cannot call flock(2), so
 * util-linux's flock(1) is given the descriptor and locks the open file description the two
 * processes share, then exits; the lock stays with this process's descriptor. The holder
 * removes the file when it releases the lock; a waiter that then wakes up on the removed
 * file sees that the path names another file (or none) and starts again.
 *
 * Without flock(1) an abstract Unix socket named after the lock's directory serves instead
 * (also dropped by the kernel with its holder; it only excludes runs in the same network
 * namespace). Taken again by the same process, the lock is counted, not waited for.
 */
export async function acquireLock(_fs: KabiFs, path: string, opts: LockOptions = {}): Promise<Lock> {
  const mine = held.get(path);
  if (mine && (mine.exclusive || opts.shared)) {
    mine.count++;
    return countedRelease(path);
  }
  if (inheritedFromParent(path)) return { path, release: async () => undefined };
  const timeoutMs = opts.timeoutMs ?? defaultLockTimeoutMs();
  const deadline = Date.now() + timeoutMs;
  const mechanism = opts.mechanism ?? ((await flockBinary()) !== undefined ? 'flock' : 'socket');
  const release = mechanism === 'flock' ? await lockWithFlock(path, deadline, timeoutMs, opts) : await lockWithSocket(path, deadline, timeoutMs, opts);
  if (release === undefined) return { path, release: async () => undefined };
  held.set(path, { count: 1, exclusive: opts.shared !== true, release });
  return countedRelease(path);
}

function countedRelease(path: string): Lock {
  let done = false;
  return {
    path,
    release: async () => {
      if (done) return;
      done = true;
      const h = held.get(path);
      if (!h || --h.count > 0) return;
      held.delete(path);
      h.release();
    },
  };
}

let flockPath: Promise<string | undefined> | undefined;
function flockBinary(): Promise<string | undefined> {
  flockPath ??= (async () => {
    const { which } = await import('../util/run.js');
    for (const p of ['/usr/bin/flock', '/bin/flock']) if (await which(p)) return p;
    return which('flock');
  })();
  return flockPath;
}

/** Returns the release function, or undefined for a shared lock whose file does not exist. */
async function lockWithFlock(path: string, deadline: number, timeoutMs: number, opts: LockOptions): Promise<(() => void) | undefined> {
  const flock = (await flockBinary()) ?? 'flock';
  let warned = false;
  for (;;) {
    const fd = openLockFile(path, opts.shared === true);
    if (fd === undefined) return undefined;
    const { fd: n, writable } = fd;
    let ok = false;
    try {
      const st = fstatSync(n);
      if (!st.isFile()) throw new KabiError('UNSAFE_PATH', 'the lock is not a regular file (refusing to use it)', { file: path });
      let r = await runFlock(flock, n, opts.shared === true, 0);
      if (r === 'busy') {
        if (!warned) opts.onWait?.(describeHolder(path));
        warned = true;
        r = await runFlock(flock, n, opts.shared === true, Math.max(0, deadline - Date.now()) / 1000);
      }
      if (r === 'busy') throw lockTimeout(path, timeoutMs);
      // The file may have been removed (and made anew) by the holder that released it.
      let now;
      try {
        now = lstatSync(path);
      } catch {
        now = undefined;
      }
      if (now === undefined || now.ino !== st.ino || now.dev !== st.dev) continue;
      if (writable) {
        try {
          ftruncateSync(n, 0);
          writeSync(n, `${process.pid}\n`);
        } catch {
          /* only informative: the lock is the flock, not the text */
        }
      }
      const previous = process.env[INHERITED];
      if (opts.shared !== true) process.env[INHERITED] = `${process.pid}:${st.dev}:${st.ino}`;
      ok = true;
      return () => {
        if (opts.shared !== true) {
          if (previous === undefined) delete process.env[INHERITED];
          else process.env[INHERITED] = previous;
          // Removed while still locked: nothing is left behind, and waiters start again.
          if (writable) {
            try {
              unlinkSync(path);
            } catch {
              /* a read-only file system: the file stays, harmlessly */
            }
          }
        }
        closeSync(n);
      };
    } finally {
      if (!ok) closeSync(n);
    }
  }
}

function openLockFile(path: string, shared: boolean): { fd: number; writable: boolean } | undefined {
  const flags = constants.O_NOFOLLOW | constants.O_NONBLOCK;
  const fail = (e: unknown): never => {
    if (errnoCode(e) === 'ELOOP') throw new KabiError('UNSAFE_PATH', 'the lock is a symbolic link (kabi never follows a link it did not create)', { file: path, cause: e });
    throw new KabiError('IO', `cannot open the lock: ${(e as Error).message}`, { file: path, cause: e });
  };
  if (!shared) {
    try {
      return { fd: openSync(path, constants.O_RDWR | constants.O_CREAT | flags, 0o644), writable: true };
    } catch (e) {
      if (errnoCode(e) !== 'EROFS' && errnoCode(e) !== 'EACCES') fail(e);
    }
  }
  try {
    return { fd: openSync(path, constants.O_RDONLY | flags), writable: false };
  } catch (e) {
    if (shared && errnoCode(e) === 'ENOENT') return undefined;
    return fail(e);
  }
}

function runFlock(flock: string, fd: number, shared: boolean, waitSeconds: number): Promise<'locked' | 'busy'> {
  return new Promise((resolve, reject) => {
    const args = [shared ? '-s' : '-x', ...(waitSeconds > 0 ? ['-w', waitSeconds.toFixed(3)] : ['-n']), '3'];
    const child = spawn(flock, args, { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new KabiError('IO', `cannot run ${flock}: ${e.message}`, { cause: e })));
    child.on('close', (status) => {
      if (status === 0) resolve('locked');
      else if (status === 1 && err.trim() === '') resolve('busy');
      else reject(new KabiError('IO', `${flock} failed (status ${status}): ${err.trim()}`));
    });
  });
}

async function lockWithSocket(path: string, deadline: number, timeoutMs: number, opts: LockOptions): Promise<(() => void) | undefined> {
  if (opts.shared) return undefined;
  let dir;
  try {
    dir = lstatSync(dirname(path));
  } catch (e) {
    throw new KabiError('IO', `cannot lock: ${(e as Error).message}`, { file: path, cause: e });
  }
  const name = `\0kabi-lock:${dir.dev}:${dir.ino}:${basename(path)}`;
  let warned = false;
  for (;;) {
    const server = await new Promise<Server | undefined>((resolve, reject) => {
      const s = createServer();
      s.once('error', (e) => (errnoCode(e) === 'EADDRINUSE' ? resolve(undefined) : reject(new KabiError('IO', `cannot lock: ${e.message}`, { file: path, cause: e }))));
      s.listen({ path: name }, () => resolve(s));
    });
    if (server) {
      server.unref();
      return () => void server.close();
    }
    if (!warned) opts.onWait?.('another run');
    warned = true;
    if (Date.now() >= deadline) throw lockTimeout(path, timeoutMs);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 50));
  }
}

function lockTimeout(path: string, timeoutMs: number): KabiError {
  return new KabiError('LOCKED', `another kabi or weak-modules run (${describeHolder(path)}) holds the lock; gave up after ${Math.round(timeoutMs / 1000)} s without changing anything (KABI_LOCK_TIMEOUT sets the wait)`, { file: path });
}

/** "pid N: command line", from the text the holder wrote (informative only). */
function describeHolder(path: string): string {
  let pid: number | undefined;
  try {
    const n = Number.parseInt(readFileSync(path, 'latin1').trim(), 10);
    pid = Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    pid = undefined;
  }
  if (pid === undefined) return 'holder unknown';
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    return `pid ${pid}: ${cmd.length > 120 ? cmd.slice(0, 117) + '…' : cmd}`;
  } catch {
    return `pid ${pid}`;
  }
}

/** True if an ancestor of this process holds the lock on this very file and passed it down. */
function inheritedFromParent(path: string): boolean {
  const v = process.env[INHERITED];
  if (!v) return false;
  const [pid, dev, ino] = v.split(':').map(Number);
  try {
    const st = lstatSync(path);
    if (st.dev !== dev || st.ino !== ino) return false;
  } catch {
    return false;
  }
  for (let p = process.ppid, hops = 0; p > 1 && hops < 64; hops++) {
    if (p === pid) return true;
    p = parentOf(p) ?? 0;
  }
  return false;
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}
