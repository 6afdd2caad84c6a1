import { recordOptionTables, type Command } from './command.js';
import { memoryIo } from './io.js';
import type { Completion, OptionTable } from './options.js';

/**
 * Each command as the man pages and the completion scripts describe it: its option tables are
 * the ones it hands to parse() when asked for --help (see recordOptionTables), and its help
 * text is what it prints then. Nothing is written down twice.
 */
export interface CommandModel {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  /** What `kabi NAME --help` prints. */
  readonly help: string;
  /** The options of the command itself (of each subcommand, for commands that have them). */
  readonly options: OptionTable;
  /** What its operands are: module files, kernels… (or the words it takes) */
  readonly operand: Operand;
  readonly subcommands: readonly SubcommandModel[];
}

export interface SubcommandModel {
  readonly name: string;
  readonly summary: string;
  readonly options: OptionTable;
  readonly operand: Operand;
}

/** What completes an operand: a kind of thing, or the words allowed. */
export type Operand = Completion | readonly string[];

/**
 * What the operands of each command (or "command subcommand") are, for completion. A command
 * missing here completes files; test/cli/conventions.test.ts checks the list is whole.
 */
export const OPERANDS: Readonly<Record<string, Operand>> = {
  check: 'file',
  link: 'file',
  status: 'none',
  'initramfs ls': 'file',
  'initramfs check': 'kernel',
  'initramfs update': 'kernel',
  'initramfs regenerate': 'kernel',
  'initramfs flush': 'none',
  depmod: 'kernel',
  'preserve save': 'none',
  'preserve restore': 'none',
  'preserve prune': 'none',
  'preserve list': 'none',
  inspect: 'module',
  'weak-modules': 'kernel',
  completion: ['bash', 'zsh', 'fish'],
};

/** Subcommands of a command, as its usage lines spell them: "kabi initramfs ls …", "kabi preserve save …". */
export function subcommandsOf(cmd: Pick<Command, 'name' | 'usage'>): string[] {
  const out: string[] = [];
  for (const m of cmd.usage.matchAll(new RegExp(`kabi ${cmd.name} ([a-z][a-z-]*)(?=\\s|$)`, 'gm'))) if (!out.includes(m[1]!)) out.push(m[1]!);
  return out;
}

async function helpOf(cmd: Command, argv: string[]): Promise<{ text: string; table: OptionTable }> {
  const io = memoryIo();
  const { tables } = await recordOptionTables(() => cmd.run(argv, io));
  return { text: io.out(), table: tables.at(-1) ?? cmd.options ?? {} };
}

/** A subcommand's one-line summary: its entry in the command's help ("ls   List an image's…"). */
function subSummary(help: string, sub: string): string {
  const m = new RegExp(`^${sub}\\s{2,}(\\S.*)$`, 'm').exec(help);
  return (m?.[1] ?? '').replace(/[.:;,(]\s*$/, '').split(/(?<=[a-z])\. /)[0]!;
}

export async function describeCommands(commands: readonly Command[]): Promise<CommandModel[]> {
  const out: CommandModel[] = [];
  for (const cmd of commands) {
    const top = await helpOf(cmd, ['--help']);
    const subs: SubcommandModel[] = [];
    for (const sub of subcommandsOf(cmd)) {
      const h = await helpOf(cmd, [sub, '--help']);
      subs.push({ name: sub, summary: subSummary(top.text, sub), options: h.table, operand: OPERANDS[`${cmd.name} ${sub}`] ?? 'file' });
    }
    out.push({ name: cmd.name, summary: cmd.summary, usage: cmd.usage, help: top.text, options: top.table, operand: OPERANDS[cmd.name] ?? 'file', subcommands: subs });
  }
  return out;
}
