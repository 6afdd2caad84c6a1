import type { Command } from './command.js';
import { SUMMARIES } from './summaries.js';

/**
 * kabi's commands in help order, each loaded only when it runs: `kabi --help` and
 * `kabi --version` print from this table alone, so the bin's start-up never compiles the code
 * behind every command (the build splits the kabi bin into chunks along these imports).
 */
export const REGISTRY: readonly { name: string; summary: string; load: () => Promise<Command> }[] = [
  { name: 'check', summary: SUMMARIES.check, load: async () => (await import('./commands/check.js')).checkCommand },
  { name: 'link', summary: SUMMARIES.link, load: async () => (await import('./commands/link.js')).linkCommand },
  { name: 'status', summary: SUMMARIES.status, load: async () => (await import('./commands/status.js')).statusCommand },
  { name: 'initramfs', summary: SUMMARIES.initramfs, load: async () => (await import('./commands/initramfs.js')).initramfsCommand },
  { name: 'depmod', summary: SUMMARIES.depmod, load: async () => (await import('./commands/depmod.js')).depmodCommand },
  { name: 'preserve', summary: SUMMARIES.preserve, load: async () => (await import('./commands/preserve.js')).preserveCommand },
  { name: 'inspect', summary: SUMMARIES.inspect, load: async () => (await import('./commands/inspect.js')).inspectCommand },
  { name: 'weak-modules', summary: SUMMARIES['weak-modules'], load: async () => (await import('./commands/weak-modules.js')).weakModulesCommand },
  { name: 'completion', summary: SUMMARIES.completion, load: async () => (await import('./commands/completion.js')).completionCommand },
];
