import { parseArgs, type ParseArgsConfig } from 'node:util';
import { KabiError } from '../errors.js';
import type { CliIo } from './io.js';

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  /** Returns the exit status. */
  run(argv: string[], io: CliIo): Promise<number>;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with kabi's usage errors (exit 2 via KabiError USAGE). */
export function parse<O extends Options>(argv: string[], options: O, usage: string): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new KabiError('USAGE', `${(e as Error).message}\n${usage}`);
  }
}

/** Exit status for errors: 2 for bad input or usage, as documented for every kabi command. */
export const EXIT_ERROR = 2;

export function reportError(e: unknown, io: CliIo, prog = 'kabi'): number {
  if (e instanceof KabiError) {
    io.stderr(`${prog}: ${e.message}\n`);
    return EXIT_ERROR;
  }
  if (typeof (e as NodeJS.ErrnoException | null)?.code === 'string' && (e as NodeJS.ErrnoException).syscall !== undefined) {
    // A system call failed (EACCES, ENOSPC, EIO…): its message names the path.
    io.stderr(`${prog}: ${(e as Error).message}\n`);
    return EXIT_ERROR;
  }
  // A bug, or a limit of the runtime kabi did not foresee: one line, as for any other
  // error; the stack only when asked for (KABI_DEBUG=1), never in a scriptlet's log.
  const debug = process.env['KABI_DEBUG'] !== undefined && process.env['KABI_DEBUG'] !== '' && process.env['KABI_DEBUG'] !== '0';
  const text = debug ? ((e as Error)?.stack ?? String(e)) : ((e as Error)?.message ?? String(e)).split('\n')[0];
  io.stderr(`${prog}: internal error: ${text}${debug ? '' : ' (KABI_DEBUG=1 shows where)'}\n`);
  return 70;
}
