import { KabiError } from '../errors.js';
import { reportError, EXIT_ERROR, type Command } from './command.js';
import type { CliIo } from './io.js';
import { extractColor } from './options.js';
import { suggest } from './suggest.js';
import { kabiVersion } from './version.js';
import { inspectCommand } from './commands/inspect.js';
import { checkCommand } from './commands/check.js';
import { weakModulesCommand } from './commands/weak-modules.js';
import { linkCommand } from './commands/link.js';
import { initramfsCommand } from './commands/initramfs.js';
import { statusCommand } from './commands/status.js';
import { preserveCommand } from './commands/preserve.js';
import { depmodCommand } from './commands/depmod.js';
import { completionCommand } from './commands/completion.js';

/** One file per command (src/cli/commands/), registered here in help order. */
export const commands: Command[] = [checkCommand, linkCommand, statusCommand, initramfsCommand, depmodCommand, preserveCommand, inspectCommand, weakModulesCommand, completionCommand];

export { kabiVersion } from './version.js';

/** What every command shares: the lines of `kabi --help` (and of kabi(1)) after the commands. */
export const CONVENTIONS = `Every command that looks at a system takes --root DIR: the system installed under DIR, as
it sees itself (links followed inside DIR, as in a chroot); without it $KABI_ROOT, else /.
A root that does not exist is an error. Commands that choose kernels take --kernel K
(-k K). --color WHEN (auto, always, never) goes with any command; auto colours a terminal
unless NO_COLOR is set or TERM is dumb. Long work draws a progress line on stderr when
stderr is a terminal. Exit status 2 is an error (bad input or usage) unless the command
says otherwise; the drop-ins (weak-modules, kabi depmod) keep their tools' statuses.`;

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: kabi <command> [options]',
    '',
    'Decide whether built Linux kernel modules load on each installed kernel, and wire them in.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    CONVENTIONS,
    '',
    'Run `kabi <command> --help` for a command’s options (or man kabi-<command>).',
    '',
  ].join('\n');
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  let color;
  try {
    ({ argv, color } = extractColor(argv));
  } catch (e) {
    if (!(e instanceof KabiError)) throw e;
    io.stderr(`kabi: ${e.message}\n`);
    return EXIT_ERROR;
  }
  if (color !== undefined) io = { ...io, color };
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    if (first === 'help' && rest[0] !== undefined) return main([rest[0], '--help'], io);
    io.stdout(help());
    return first === undefined ? EXIT_ERROR : 0;
  }
  if (first === '-V' || first === '--version') {
    io.stdout(`kabi ${kabiVersion()}\n`);
    return 0;
  }
  const cmd = commands.find((c) => c.name === first);
  if (!cmd) {
    const near = first.startsWith('-') ? undefined : suggest(first, commands.map((c) => c.name));
    io.stderr(`kabi: unknown ${first.startsWith('-') ? 'option' : 'command'} '${first}'${near ? ` (did you mean ${near}?)` : ''}\n\n${help()}`);
    return EXIT_ERROR;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof KabiError && e.code === 'USAGE') {
      io.stderr(`kabi ${cmd.name}: ${e.message}\n`);
      return cmd.usageStatus ?? EXIT_ERROR;
    }
    return reportError(e, io, `kabi ${cmd.name}`);
  }
}
