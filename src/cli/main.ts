import { KabiError } from '../errors.js';
import { reportError, EXIT_ERROR, type Command } from './command.js';
import type { CliIo } from './io.js';
import { inspectCommand } from './commands/inspect.js';
import { checkCommand } from './commands/check.js';
import { weakModulesCommand } from './commands/weak-modules.js';
import { linkCommand } from './commands/link.js';
import { initramfsCommand } from './commands/initramfs.js';
import { statusCommand } from './commands/status.js';
import { preserveCommand } from './commands/preserve.js';
import { depmodCommand } from './commands/depmod.js';

/** One file per command (src/cli/commands/), registered here in help order. */
export const commands: Command[] = [checkCommand, linkCommand, statusCommand, initramfsCommand, depmodCommand, preserveCommand, inspectCommand, weakModulesCommand];

export const VERSION = '0.1.0';

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
    'Run `kabi <command> --help` for a command’s options. Every command that looks at a',
    'system takes --root DIR (default /).',
    '',
  ].join('\n');
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    io.stdout(help());
    return first === undefined ? EXIT_ERROR : 0;
  }
  if (first === '-V' || first === '--version') {
    io.stdout(`kabi ${VERSION}\n`);
    return 0;
  }
  const cmd = commands.find((c) => c.name === first);
  if (!cmd) {
    io.stderr(`kabi: unknown command '${first}'\n\n${help()}`);
    return EXIT_ERROR;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof KabiError && e.code === 'USAGE') {
      io.stderr(`kabi ${cmd.name}: ${e.message}\n`);
      return EXIT_ERROR;
    }
    return reportError(e, io, `kabi ${cmd.name}`);
  }
}
