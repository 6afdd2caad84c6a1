import { fileView, nodeFs, READ_BUDGETS, readRegularFile, type KabiFs } from '../fs.js';
import { withPlainModuleSync } from '../module/read-plain.js';

/**
 * The bytes of a module file: a compressed one, or any file withPlainModuleSync leaves; from
 * a tree held in memory, the file's own bytes (the readers only parse them).
 */
export async function readModuleImage(fs: KabiFs, path: string): Promise<Uint8Array> {
  const view = fileView(fs, path, READ_BUDGETS.module);
  if (view !== undefined) return view;
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

/** withPlainModuleSync (module/read-plain.ts), its time added to readClock. */
export function withPlainModuleTimed<T>(path: string, use: (image: Uint8Array) => T): T | undefined {
  const t = performance.now();
  let timed = false;
  const stop = () => {
    if (!timed) readClock.readMs += performance.now() - t;
    timed = true;
  };
  try {
    return withPlainModuleSync(path, (bytes) => {
      stop();
      return use(bytes);
    });
  } finally {
    stop();
  }
}
