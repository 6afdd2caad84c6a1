import { spawn } from 'node:child_process';

export interface RunResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** ENOENT/EACCES when the program could not be started at all. */
  readonly spawnError: string | undefined;
}

export type Runner = (cmd: string, args: readonly string[], opts?: { env?: Record<string, string | undefined>; input?: string }) => Promise<RunResult>;

/** Run a program without a shell (no quoting games with module paths), capturing its output. */
export const runCommand: Runner = (cmd, args, opts = {}) =>
  new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(cmd, [...args], { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ? { ...process.env, ...opts.env } : process.env });
    } catch (e) {
      // An empty or NUL-holding program name throws here instead of failing to start.
      resolve({ status: null, signal: null, stdout, stderr, spawnError: (e as NodeJS.ErrnoException).code ?? String(e) });
      return;
    }
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input ?? '');
    child.on('error', (e: NodeJS.ErrnoException) => resolve({ status: null, signal: null, stdout, stderr, spawnError: e.code ?? e.message }));
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr, spawnError: undefined }));
  });

/** The first executable called `name` on PATH (or the given absolute path if executable). */
export async function which(name: string, path = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): Promise<string | undefined> {
  const { access, constants } = await import('node:fs/promises');
  const cands = name.includes('/') ? [name] : path.split(':').filter(Boolean).map((d) => `${d}/${name}`);
  for (const c of cands) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}
