import type { Command } from './command.js';

/**
 * kabi's commands in help order, each loaded only when it runs: `kabi --help` and
 * `kabi --version` print from this table alone, so the bin's start-up never parses the code
 * behind every command (the build splits each command into its own chunks). The summary lives
 * here, once; each command's object takes it from summaryOf().
 */
export const REGISTRY = [
  { name: 'check', summary: 'decide whether modules load on each installed kernel', load: async () => (await import('./commands/check.js')).checkCommand },
  { name: 'link', summary: 'plan and apply weak-updates links (the modern interface to weak-modules)', load: async () => (await import('./commands/link.js')).linkCommand },
  { name: 'status', summary: 'every out-of-tree module against every installed kernel: built, linked, compatible, stale', load: async () => (await import('./commands/status.js')).statusCommand },
  { name: 'initramfs', summary: 'list, check and update initramfs images (natively or with dracut, initramfs-tools, mkinitcpio)', load: async () => (await import('./commands/initramfs.js')).initramfsCommand },
  { name: 'depmod', summary: 'write modules.dep and the module indexes, as kmod’s depmod does', load: async () => (await import('./commands/depmod.js')).depmodCommand },
  { name: 'preserve', summary: 'keep the running kernel’s module tree usable across a package upgrade (save, restore, prune)', load: async () => (await import('./commands/preserve.js')).preserveCommand },
  { name: 'inspect', summary: 'show a module’s modinfo, modversions, imports, exports and signature (files or names)', load: async () => (await import('./commands/inspect.js')).inspectCommand },
  { name: 'weak-modules', summary: 'drop-in replacement for RHEL’s weak-modules (same options and output)', load: async () => (await import('./commands/weak-modules.js')).weakModulesCommand },
  { name: 'completion', summary: 'print a shell completion script (bash, zsh, fish)', load: async () => (await import('./commands/completion.js')).completionCommand },
] as const satisfies readonly { name: string; summary: string; load: () => Promise<Command> }[];

/** Summaries of the commands `kabi` does not dispatch to (their own bins). */
const OTHER_SUMMARIES = {
  'weak-modules2': 'drop-in replacement for SUSE’s weak-modules2 (KMPs; same options and output)',
} as const;

export type CommandName = (typeof REGISTRY)[number]['name'] | keyof typeof OTHER_SUMMARIES;

export function summaryOf(name: CommandName): string {
  return REGISTRY.find((c) => c.name === name)?.summary ?? OTHER_SUMMARIES[name as keyof typeof OTHER_SUMMARIES];
}
