import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/* The built bins run as processes with a time limit, the way package managers run them. */

const REPO = join(import.meta.dirname, '../..');

export interface BinRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time in ms. */
  ms: number;
  /** Peak resident set size in bytes. */
  maxRss: number;
}

export function runBin(bin: 'kabi' | 'weak-modules', args: readonly string[], opts: { timeoutMs?: number; env?: Record<string, string>; input?: string } = {}): BinRun {
  const file = join(REPO, 'dist/bin', `${bin}.js`);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', join(REPO, 'test/reliability/rss-report.mjs'), file, ...args], {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
    killSignal: 'SIGKILL',
    env: { ...process.env, ...(opts.env ?? {}) },
    input: opts.input ?? '',
    maxBuffer: 1 << 26,
  });
  const ms = performance.now() - t0;
  const m = /\nkabi-test-maxrss-kib=(\d+)\n$/.exec(r.stderr);
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: m ? r.stderr.slice(0, m.index) : r.stderr, ms, maxRss: m ? Number(m[1]) * 1024 : Number.NaN };
}
