import { resolve } from 'node:path';
import { KabiError } from '../../errors.js';
import { parseDuration } from '../../preserve/duration.js';
import { MANIFEST, RESTORED } from '../../preserve/layout.js';
import { readJson, type Manifest, type RestoredRecord } from '../../preserve/manifest.js';
import { pruneSaves } from '../../preserve/prune.js';
import { restoreTree } from '../../preserve/restore.js';
import { runningKernel } from '../../preserve/running.js';
import { listSaves, saveTree } from '../../preserve/save.js';
import { parse, type Command } from '../command.js';
import type { CliIo } from '../io.js';
import { createProgress } from '../progress.js';

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

K is --kernel, else \`uname -r\` when --root is / (the default; or $KABI_ROOT), else $KABI_KERNEL.
For prune, K is the running kernel, which is never touched.

Exit status: 0 on success (also when there is nothing to save or restore), 2 on error.
`;

function rootOf(values: { root?: string | undefined }, io: CliIo): string {
  return resolve(io.cwd, values.root ?? (io.env.KABI_ROOT || '/'));
}

export const preserveCommand: Command = {
  name: 'preserve',
  summary: 'keep the running kernel’s module tree usable across a package upgrade (save, restore, prune)',
  usage,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === undefined) throw new KabiError('USAGE', `no subcommand given\n${usage}`);
    if (sub === '-h' || sub === '--help' || sub === 'help') {
      io.stdout(help);
      return 0;
    }
    const { values, positionals } = parse(
      rest,
      {
        root: { type: 'string' },
        kernel: { type: 'string', short: 'k' },
        'older-than': { type: 'string' },
        'dry-run': { type: 'boolean', short: 'n' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      usage,
    );
    if (values.help) {
      io.stdout(help);
      return 0;
    }
    if (positionals.length > 0) throw new KabiError('USAGE', `unexpected argument '${positionals[0]}'\n${usage}`);
    const root = rootOf(values, io);
    const out = (human: string, json: unknown) => io.stdout(values.json ? JSON.stringify(json, null, 2) + '\n' : human);
    const progress = createProgress(io, `kabi preserve ${sub}`);
    const onProgress = (label: string, done: number, total: number) => progress.update(label, done, total);
    try {
      switch (sub) {
        case 'save': {
          const release = runningKernel(root, values.kernel, io.env);
          const r = await saveTree(release, { root, fs: io.fs, onProgress });
          progress.clear();
          out(r.saved ? `${release}: saved ${r.files} files of ${r.moduleDir} to ${r.savedTo} (${r.method})\n` : `${release}: no module directory; nothing to save\n`, r);
          return 0;
        }
        case 'restore': {
          const release = runningKernel(root, values.kernel, io.env);
          const r = await restoreTree(release, { root, fs: io.fs, onProgress });
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
          const running = runningKernel(root, values.kernel, io.env);
          const olderThanMs = parseDuration(values['older-than'] ?? '4w');
          const r = await pruneSaves({ root, fs: io.fs, running, olderThanMs, dryRun: values['dry-run'] === true });
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
          const saves = [];
          for (const s of await listSaves(io.fs, root)) {
            const m = await readJson<Manifest>(io.fs, `${s.dir}/${MANIFEST}`, 'kabi-preserve').catch(() => undefined);
            const rr = await readJson<RestoredRecord>(io.fs, `${s.dir}/${RESTORED}`, 'kabi-preserve-restored').catch(() => undefined);
            saves.push({ release: s.release, moduleDir: m?.moduleDir ?? null, savedAt: m?.savedAt ?? null, method: m?.method ?? null, restoredAt: rr?.restoredAt ?? null });
          }
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
