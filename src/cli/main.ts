import type { Command } from './command.js';
import { REGISTRY } from './registry.js';

export { CONVENTIONS, main } from './dispatch.js';
export { kabiVersion } from './version.js';

/** Every command of `kabi`, loaded, in help order (registry.ts): for man pages, completion and tests. */
export const commands: Command[] = await Promise.all(REGISTRY.map((c) => c.load()));
