// What the `kabi` bin runs: the top-level help, --version and the dispatch to one command,
// which is loaded only then (registry.ts), so `kabi --help` compiles none of the commands.
import { KabiError } from '../errors.js';
import { reportError, EXIT_ERROR } from './command.js';
import type { CliIo } from './io.js';
import { extractColor } from './options.js';
import { REGISTRY } from './registry.js';
import { suggest } from './suggest.js';
import { kabiVersion } from './version.js';

/** What every command shares: the lines of `kabi --help` (and of kabi(1)) after the commands. */
export const CONVENTIONS = `Every command that looks at a system takes --root DIR: the system installed under DIR, as
it sees itself (links followed inside DIR, as in a chroot); without it $KABI_ROOT, else /.
A root that does not exist is an error. Commands that choose kernels take --kernel K
(-k K). --color WHEN (auto, always, never) goes with any command; auto colours a terminal
unless NO_COLOR is set or TERM is dumb. Long work draws a progress line on stderr when
stderr is a terminal. Exit status 2 is an error (bad input or usage) unless the command
says otherwise; the drop-ins (weak-modules, kabi depmod) keep their tools' statuses.`;

function help(): string {
  const width = Math.max(...REGISTRY.map((c) => c.name.length));
  return [
    'Usage: kabi <command> [options]',
    '',
    'Decide whether built Linux kernel modules load on each installed kernel, and wire them in.',
    '',
    'Commands:',
    ...REGISTRY.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
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
  const entry = REGISTRY.find((c) => c.name === first);
  if (!entry) {
    const near = first.startsWith('-') ? undefined : suggest(first, REGISTRY.map((c) => c.name));
    io.stderr(`kabi: unknown ${first.startsWith('-') ? 'option' : 'command'} '${first}'${near ? ` (did you mean ${near}?)` : ''}\n\n${help()}`);
    return EXIT_ERROR;
  }
  const cmd = await entry.load();
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
