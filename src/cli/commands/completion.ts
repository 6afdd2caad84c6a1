import { KabiError } from '../../errors.js';
import { parse, type Command } from '../command.js';
import { completionScript } from '../completion.js';
import { HELP_OPTION } from '../options.js';
import { summaryOf } from '../summaries.js';

const usage = 'Usage: kabi completion bash|zsh|fish';

const help = `${usage}

Prints a completion script for the shell: kabi's commands and subcommands, every option of
each, the values options take (their choices, directories, files, the kernels installed
under --root, else $KABI_ROOT, else /) and the operands (module files, kernels).

  bash   source <(kabi completion bash), or save it as
         /usr/share/bash-completion/completions/kabi
  zsh    save it as _kabi in a directory of $fpath (before compinit runs), or
         source <(kabi completion zsh) after compinit
  fish   kabi completion fish > ~/.config/fish/completions/kabi.fish

Exit status: 0, or 2 for a shell kabi does not know.
`;

const SHELLS = ['bash', 'zsh', 'fish'] as const;

export const completionCommand: Command = {
  name: 'completion',
  summary: summaryOf('completion'),
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { help: HELP_OPTION }, usage);
    if (values.help) {
      io.stdout(help);
      return 0;
    }
    const shell = positionals[0];
    if (positionals.length !== 1 || !(SHELLS as readonly string[]).includes(shell!)) {
      throw new KabiError('USAGE', `${shell === undefined ? 'no shell given' : positionals.length > 1 ? `one shell only, not ${positionals.length}` : `no completion for '${shell}'`}: bash, zsh or fish\n${usage}`);
    }
    // Loaded here: the command list imports this file.
    const [{ commands }, { describeCommands }] = await Promise.all([import('../main.js'), import('../describe.js')]);
    io.stdout(completionScript(shell as (typeof SHELLS)[number], await describeCommands(commands)));
    return 0;
  },
};
