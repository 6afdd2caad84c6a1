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
}

export function processIo(): CliIo {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
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
