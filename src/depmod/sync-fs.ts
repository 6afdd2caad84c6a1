import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';

/**
 * node:fs/promises' reading calls made synchronously, for code that takes a KabiFs (the
 * depmod.d reader, symlink resolution). A depmod run makes its small reads one after the
 * other anyway; each through the thread pool costs a round trip, and on a busy machine an
 * occasional wait of milliseconds for a worker thread.
 */
const syncReadFs: KabiFs = {
  ...nodeFs,
  readFile: (async (path: string, opts?: BufferEncoding | { encoding?: BufferEncoding | null }) => readFileSync(path, opts as never)) as KabiFs['readFile'],
  stat: (async (path: string, opts?: { bigint?: boolean }) => statSync(path, opts)) as KabiFs['stat'],
  lstat: (async (path: string, opts?: { bigint?: boolean }) => lstatSync(path, opts)) as KabiFs['lstat'],
  readlink: (async (path: string) => readlinkSync(path)) as KabiFs['readlink'],
  readdir: (async (path: string, opts?: object) => readdirSync(path, opts as never)) as KabiFs['readdir'],
};

/** The filesystem to read through: node:fs's synchronous calls in place of its promises. */
export function readingFs(fs: KabiFs): KabiFs {
  return fs === nodeFs ? syncReadFs : fs;
}
