import { KabiError } from '../errors.js';
import type { CliIo } from './io.js';
import { parseOptions, type OptionTable, type ParseConfig, type ParsedValues } from './options.js';

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  /** Exit status of a usage error: 2 for kabi's commands; 1 where kabi imitates a tool whose status it is (depmod). */
  readonly usageStatus?: number;
  /**
   * The options of a command that does not parse with parse() (the drop-ins, which keep
   * GNU getopt's rules), for its man page and completion. Others' tables are read from parse().
   */
  readonly options?: OptionTable;
  /** Returns the exit status. */
  run(argv: string[], io: CliIo): Promise<number>;
}

/** An option table (see options.ts); parseArgs-style entries are tables too. */
export type Options = OptionTable;

/** The tables a command hands to parse() while it runs, for whoever listens (man pages, completion). */
type Recorder = (table: OptionTable) => void;
let recorder: Recorder | undefined;

/**
 * Run `fn` (a command asked for --help) and collect every option table it parses with: the
 * tables the command really uses are the ones its man page and completion describe.
 */
export async function recordOptionTables<T>(fn: () => Promise<T>): Promise<{ result: T; tables: OptionTable[] }> {
  const tables: OptionTable[] = [];
  const previous = recorder;
  recorder = (t) => tables.push(t);
  try {
    return { result: await fn(), tables };
  } finally {
    recorder = previous;
  }
}

/**
 * Parse a command's arguments against its option table. A mistake is a KabiError (USAGE)
 * that says what is wrong (with the nearest option when there is one) followed by the usage.
 */
export function parse<const O extends Options>(argv: string[], options: O, usage: string, config: ParseConfig = {}): { values: ParsedValues<O>; positionals: string[] } {
  recorder?.(options);
  try {
    return parseOptions(argv, options, config);
  } catch (e) {
    if (e instanceof KabiError) throw new KabiError('USAGE', `${e.detail}\n${usage}`);
    throw e;
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
