/**
 * Each command's one-line summary, for `kabi --help`, man pages and completion: here, apart from
 * the command modules, so the help prints without loading them (registry.ts) and a drop-in bin
 * that imports one command does not bundle the others through the registry's loaders.
 */
export const SUMMARIES = {
  check: 'decide whether modules load on each installed kernel',
  link: 'plan and apply weak-updates links (the modern interface to weak-modules)',
  status: 'every out-of-tree module against every installed kernel: built, linked, compatible, stale',
  initramfs: 'list, check and update initramfs images (natively or with dracut, initramfs-tools, mkinitcpio)',
  depmod: 'write modules.dep and the module indexes, as kmod’s depmod does',
  preserve: 'keep the running kernel’s module tree usable across a package upgrade (save, restore, prune)',
  inspect: 'show a module’s modinfo, modversions, imports, exports and signature (files or names)',
  'weak-modules': 'drop-in replacement for RHEL’s weak-modules (same options and output)',
  completion: 'print a shell completion script (bash, zsh, fish)',
  'weak-modules2': 'drop-in replacement for SUSE’s weak-modules2 (KMPs; same options and output)',
} as const;

export type CommandName = keyof typeof SUMMARIES;

export function summaryOf(name: CommandName): string {
  return SUMMARIES[name];
}
