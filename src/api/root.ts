import { KabiError } from '../errors.js';
import { isDirectory, nodeFs, type KabiFs } from '../fs.js';

/**
 * The root every high-level call works on, checked first: a root that does not exist (a
 * typo, an unmounted image) is ROOT_NOT_FOUND, never an empty answer, and a dry run fails
 * the same way as the real one.
 */
export async function requireRoot(root: string | undefined, fs: KabiFs = nodeFs): Promise<string> {
  const r = root ?? '/';
  if (r !== '/' && !(await isDirectory(fs, r))) throw new KabiError('ROOT_NOT_FOUND', 'the system root does not exist or is not a directory', { file: r });
  return r;
}
