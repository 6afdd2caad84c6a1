import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';

/**
 * Everything a command touches outside its arguments. The bins pass the real process;
 * tests pass buffers and a fixture filesystem and run commands in-process.
 */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whole standard input (commands that read module lists call it once). */
  readStdin: () => Promise<string>;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  fs: KabiFs;
  /** stderr is a terminal: progress output and colour are allowed there. */
  isTTY: boolean;
  stdoutIsTTY: boolean;
  /** --color: always, never, or auto (the default; see style.ts). */
  color?: 'auto' | 'always' | 'never';
}

export function processIo(): CliIo {
  // A reader that went away (`kabi link … | head -1`) must not end the run wherever the next
  // write lands: without a listener EPIPE is an uncaught exception. Output to a closed stream
  // is dropped and the run goes on to its end.
  const closed = { stdout: false, stderr: false };
  for (const name of ['stdout', 'stderr'] as const) {
    process[name].on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') throw e;
      closed[name] = true;
    });
  }
  return {
    stdout: (t) => void (closed.stdout || process.stdout.write(t)),
    stderr: (t) => void (closed.stderr || process.stderr.write(t)),
    readStdin: readProcessStdin,
    env: process.env,
    cwd: process.cwd(),
    fs: nodeFs,
    isTTY: process.stderr.isTTY === true,
    stdoutIsTTY: process.stdout.isTTY === true,
  };
}

async function readProcessStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A CliIo that records output, for tests and for the library's own callers. */
export function memoryIo(init: Partial<CliIo> & { stdin?: string } = {}): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const { stdin, ...rest } = init;
  return {
    stdout: (t) => void (out += t),
    stderr: (t) => void (err += t),
    readStdin: async () => stdin ?? '',
    env: {},
    cwd: process.cwd(),
    fs: nodeFs,
    isTTY: false,
    stdoutIsTTY: false,
    ...rest,
    out: () => out,
    err: () => err,
  };
}
