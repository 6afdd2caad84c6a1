import { preserve } from '../../api/preserve.js';
import { KabiError } from '../../errors.js';
import { runningKernel } from '../../preserve/running.js';
import { parse, type Command } from '../command.js';
import { DRY_RUN_OPTION, HELP_OPTION, JSON_OPTION, ROOT_OPTION, systemRoot } from '../options.js';
import { createProgress } from '../progress.js';
import { summaryOf } from '../summaries.js';

const usage = `Usage: kabi preserve save    [--root DIR] [--kernel K] [--json]
       kabi preserve restore [--root DIR] [--kernel K] [--json]
       kabi preserve prune   [--root DIR] [--kernel K] [--older-than 4w] [--dry-run] [--json]
       kabi preserve list    [--root DIR] [--json]`;

const help = `${usage}

Keeps the running kernel's modules loadable while a package upgrade removes its module
directory (pacman, and any package manager that replaces the running kernel's package).

save     before the transaction: keep a copy of K's module directory in
         <modules>/.kabi-preserve/K/ (hard links where the file system allows, copies
         otherwise), replacing the previous save of K atomically
restore  after the transaction: put back every file, link and directory of the save that is
         missing from K's module directory; nothing that exists is overwritten
prune    at boot: for each saved kernel that is not running, take back out of its module
         directory what restore put there (only what is still exactly as restored), and
         remove saves last used longer ago than --older-than (default 4w; 0 for all)
list     the saves, with when they were made and restored

K is --kernel, else \`uname -r\` when the root is / (--root, else $KABI_ROOT, else /), else
$KABI_KERNEL.
For prune, K is the running kernel, which is never touched.

Exit status: 0 on success (also when there is nothing to save or restore), 2 on error.
`;

const options = {
  root: ROOT_OPTION,
  kernel: { type: 'string', short: 'k', arg: 'K', complete: 'kernel', help: 'the kernel to save or restore, or the running one not to prune (default: uname -r on /, else $KABI_KERNEL)' },
  'older-than': { type: 'string', arg: 'AGE', complete: 'none', help: 'prune saves last used longer ago than AGE (4w, 10d, 12h…; default 4w; 0 for all)' },
  'dry-run': DRY_RUN_OPTION,
  json: JSON_OPTION,
  help: HELP_OPTION,
} as const;

export const preserveCommand: Command = {
  name: 'preserve',
  summary: summaryOf('preserve'),
  usage,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === undefined) throw new KabiError('USAGE', `no subcommand given\n${usage}`);
    if (sub === '-h' || sub === '--help' || sub === 'help') {
      io.stdout(help);
      return 0;
    }
    const { values, positionals } = parse(rest, options, usage);
    if (values.help) {
      io.stdout(help);
      return 0;
    }
    if (positionals.length > 0) throw new KabiError('USAGE', `unexpected argument '${positionals[0]}'\n${usage}`);
    const root = await systemRoot(io, values.root);
    const kernel = () => runningKernel(root, values.kernel, io.env);
    const out = (human: string, json: unknown) => io.stdout(values.json ? JSON.stringify(json, null, 2) + '\n' : human);
    const progress = createProgress(io, `kabi preserve ${sub}`);
    const onProgress = (label: string, done: number, total: number) => progress.update(label, done, total);
    try {
      switch (sub) {
        case 'save': {
          const release = kernel();
          const r = await preserve.save({ root, fs: io.fs, kernel: release, onProgress });
          progress.clear();
          out(r.saved ? `${release}: saved ${r.files} files of ${r.moduleDir} to ${r.savedTo} (${r.method})\n` : `${release}: no module directory; nothing to save\n`, r);
          return 0;
        }
        case 'restore': {
          const release = kernel();
          const r = await preserve.restore({ root, fs: io.fs, kernel: release, onProgress });
          progress.clear();
          let text: string;
          if (!r.found) text = `${release}: no save; nothing to restore\n`;
          else if (r.restored.length === 0) text = `${release}: ${r.moduleDir} is complete; nothing restored\n`;
          else text = `${release}: restored ${r.restored.length} entries into ${r.moduleDir} (${r.kept} already there were kept)\n`;
          if (r.merged) {
            text += `${release}: warning: ${r.differing.length} files differ from the save (a package put them back); ` + `modules.dep may not list the restored modules: run depmod ${release}\n`;
          }
          for (const b of r.blocked) text += `${release}: warning: not restored: ${b} is not a directory any more\n`;
          for (const c of r.changedSinceSave) text += `${release}: warning: ${c} changed after it was saved\n`;
          out(text, r);
          return 0;
        }
        case 'prune': {
          const r = await preserve.prune({ root, fs: io.fs, kernel: kernel(), olderThan: values['older-than'] ?? '4w', dryRun: values['dry-run'] === true });
          const would = values['dry-run'] ? 'would ' : '';
          let text = r.length === 0 ? 'no saved module trees\n' : '';
          for (const o of r) {
            const what = o.action === 'running' ? 'running; kept' : o.action === 'kept' ? `kept (last used ${o.lastUsed})` : `${would}remove the save (last used ${o.lastUsed ?? 'unknown'})`;
            text += `${o.release}: ${what}${o.cleaned.length ? `; ${would}take ${o.cleaned.length} restored entries out of its module directory` : ''}\n`;
          }
          out(text, r);
          return 0;
        }
        case 'list': {
          const saves = await preserve.list({ root, fs: io.fs });
          let text = saves.length === 0 ? 'no saved module trees\n' : '';
          for (const s of saves) text += `${s.release}: saved ${s.savedAt ?? '(incomplete)'} from ${s.moduleDir ?? '?'}${s.restoredAt ? `, restored ${s.restoredAt}` : ''}\n`;
          out(text, saves);
          return 0;
        }
        default:
          throw new KabiError('USAGE', `unknown subcommand '${sub}'\n${usage}`);
      }
    } finally {
      progress.clear();
    }
  },
};
