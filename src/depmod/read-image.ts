import { nodeFs, READ_BUDGETS, readRegularFile, type KabiFs } from '../fs.js';
import { withModulePartsSync as withPartsSync } from '../module/read-parts.js';

/**
 * The bytes of a module file, whole: a compressed one, or any file not read in parts
 * (withModulePartsSync).
 */
export async function readModuleImage(fs: KabiFs, path: string): Promise<Uint8Array> {
  const t = performance.now();
  try {
    return await readRegularFile(fs, path, READ_BUDGETS.module);
  } finally {
    if (fs === nodeFs) readClock.readMs += performance.now() - t;
  }
}

/**
 * Where this thread's time reading module files went (milliseconds, added up since it
 * started): reading bytes, and decompressing them (module-summary.ts). A batch reader
 * reports the difference over its batch, for a run's stats.
 */
export const readClock = { readMs: 0, decompressMs: 0 };

/**
 * The parts of a plain ELF module that depmod (and every other parser here) looks at, handed
 * to `use` in a reused buffer (module/read-parts.ts); the time is added to readClock.
 */
export function withModulePartsSync<T>(path: string, use: (image: Uint8Array) => T): T | undefined {
  const t = performance.now();
  let timed = false;
  const stop = () => {
    if (!timed) readClock.readMs += performance.now() - t;
    timed = true;
  };
  try {
    return withPartsSync(path, (bytes) => {
      stop();
      return use(bytes);
    });
  } finally {
    stop();
  }
}
