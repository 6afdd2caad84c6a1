/**
 * kabi preserve: keep the running kernel's module tree usable while a package transaction
 * removes or replaces it (an upgrade deletes /usr/lib/modules/<running>, and the next
 * `modprobe` fails until reboot).
 *
 *   saveTree(K, {root, fs})     before the transaction: hard links (copies across file systems)
 *                               into <modules>/.kabi-preserve/K/tree, swapped in atomically
 *   restoreTree(K, {root, fs})  after it: put back what is missing, never overwriting
 *   pruneSaves({root, running, olderThanMs})  at boot: clean restored files out of trees of
 *                               kernels no longer running, drop saves past the retention
 */
export { saveTree, listSaves, recoverPreserveDirectory, type PreserveOptions, type SaveResult } from './save.js';
export { restoreTree, type RestoreResult } from './restore.js';
export { pruneSaves, type PruneOptions, type PruneOutcome } from './prune.js';
export { parseDuration } from './duration.js';
export { runningKernel } from './running.js';
export { PRESERVE_DIR } from './layout.js';
export type { Manifest, RestoredRecord, TreeEntry } from './manifest.js';
