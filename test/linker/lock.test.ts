import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFs } from '../../src/fs.js';
import { acquireLock } from '../../src/linker/lock.js';
import { withRootLock } from '../../src/linker/root-lock.js';
import { errorOf } from '../initramfs/helpers.js';

/** The built lock (npm test builds first): a child process runs it as kabi's bins would. */
const LOCK_MODULE = join(process.cwd(), 'dist/src/linker/lock.js');

function lockDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kabi-lock-'));
  mkdirSync(join(d, 'lib/modules'), { recursive: true });
  return d;
}

/** Another process holding the lock (flock(1) on the same file, as kabi takes it) until killed or for `holdMs`. */
function holder(path: string, holdMs = 60_000) {
  // -o: only flock itself holds the lock, so killing it (kill -9) is the holder dying.
  const child = spawn('flock', ['-o', '-x', path, 'sh', '-c', `echo locked; exec sleep ${holdMs / 1000}`], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const ready = new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const kill = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  return { child, ready, kill };
}


describe('the root lock', () => {
  for (const content of ['', 'garbage\n', '1\n', `${process.ppid}\n`]) {
    it(`a lock file holding ${JSON.stringify(content)} (a crash, ENOSPC, an unrelated live pid) blocks nobody`, async () => {
      const d = lockDir();
      const path = join(d, 'lib/modules/.kabi.lock');
      writeFileSync(path, content);
      const t0 = Date.now();
      const lock = await acquireLock(nodeFs, path, { timeoutMs: 2000 });
      expect(Date.now() - t0).toBeLessThan(1500);
      expect(readFileSync(path, 'utf8')).toBe(`${process.pid}\n`);
      await lock.release();
      expect(existsSync(path)).toBe(false); // nothing left behind
    });
  }

  it('waits for a live holder, gives up after the bounded wait naming it, and has it once the holder is killed', async () => {
    const d = lockDir();
    const path = join(d, 'lib/modules/.kabi.lock');
    const h = holder(path);
    await h.ready;
    let waitedFor = '';
    const t0 = Date.now();
    const e = await errorOf(acquireLock(nodeFs, path, { timeoutMs: 700, onWait: (w) => (waitedFor = w) }));
    const waited = Date.now() - t0;
    expect(e.code).toBe('LOCKED');
    expect(e.message).toMatch(/another kabi or weak-modules run .* holds the lock; gave up after 1 s without changing anything/);
    expect(waited).toBeGreaterThanOrEqual(650);
    expect(waited).toBeLessThan(5000);
    expect(waitedFor).not.toBe('');
    // kill -9: the kernel drops the lock with its holder.
    h.kill();
    const lock = await acquireLock(nodeFs, path, { timeoutMs: 5000 });
    await lock.release();
  });

  it('a waiter gets the lock as soon as the holder lets go', async () => {
    const d = lockDir();
    const path = join(d, 'lib/modules/.kabi.lock');
    const h = holder(path, 400);
    await h.ready;
    const t0 = Date.now();
    const lock = await acquireLock(nodeFs, path, { timeoutMs: 10_000 });
    expect(Date.now() - t0).toBeGreaterThan(150);
    await lock.release();
  });

  it('is taken again by the same process without waiting (counted), and passed down to its children', async () => {
    const d = lockDir();
    await withRootLock(d, async () => {
      await withRootLock(d, async () => undefined, { timeoutMs: 500 });
      // A child program (a --check-initramfs-prog calling kabi) shares it...
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(LOCK_MODULE)}).then(async (m) => { const l = await m.acquireLock({}, ${JSON.stringify(join(d, 'lib/modules/.kabi.lock'))}, { timeoutMs: 500 }); await l.release(); console.log('ok'); }).catch((e) => { console.log(e.message); process.exit(3); })`], { encoding: 'utf8' });
      expect(child.stdout.trim(), child.stderr).toBe('ok');
      // ...an unrelated process does not.
      const other = spawnSync('flock', ['-x', '-n', join(d, 'lib/modules/.kabi.lock'), 'true']);
      expect(other.status).toBe(1);
    });
    expect(existsSync(join(d, 'lib/modules/.kabi.lock'))).toBe(false);
  });

  it('a reader (dry run) waits for a writer but creates nothing', async () => {
    const d = lockDir();
    const path = join(d, 'lib/modules/.kabi.lock');
    await withRootLock(d, async () => undefined, { shared: true });
    expect(existsSync(path)).toBe(false);
    const h = holder(path);
    await h.ready;
    const e = await errorOf(acquireLock(nodeFs, path, { shared: true, timeoutMs: 300 }));
    expect(e.code).toBe('LOCKED');
    h.kill();
  });

  it('refuses a lock that is a symlink or not a regular file, at once', async () => {
    const d = lockDir();
    const path = join(d, 'lib/modules/.kabi.lock');
    spawnSync('ln', ['-s', '/etc/passwd', path]);
    expect((await errorOf(acquireLock(nodeFs, path, { timeoutMs: 300 }))).code).toBe('UNSAFE_PATH');
    spawnSync('rm', [path]);
    spawnSync('mkfifo', [path]);
    const t0 = Date.now();
    expect((await errorOf(acquireLock(nodeFs, path, { timeoutMs: 300 }))).code).toBe('UNSAFE_PATH');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('without flock(1), an abstract socket excludes a second holder until released', async () => {
    const d = lockDir();
    const path = join(d, 'lib/modules/.kabi.lock');
    const first = await acquireLock(nodeFs, path, { mechanism: 'socket' });
    // The same process counts; a second acquisition by the socket name itself is refused.
    const { createServer } = await import('node:net');
    const { lstatSync } = await import('node:fs');
    const st = lstatSync(join(d, 'lib/modules'));
    const busy = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true));
      s.listen({ path: `\0kabi-lock:${st.dev}:${st.ino}:.kabi.lock` }, () => s.close(() => resolve(false)));
    });
    expect(busy).toBe(true);
    await first.release();
    const again = await acquireLock(nodeFs, path, { mechanism: 'socket', timeoutMs: 500 });
    await again.release();
  });
});
