import { isAbsolute, join, normalize, posix, relative } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';

/**
 * kabi works on a system mounted at `root` (default "/"): an image, a chroot, a test
 * fixture. Paths come in two spellings: the *system* path the installed system uses
 * ("/lib/modules/6.1.0-18-amd64/extra/foo.ko", also what symlink targets say) and the
 * *host* path kabi opens ("<root>/lib/modules/…").
 */
export function hostPath(root: string, systemPath: string): string {
  return join(root, systemPath);
}

/** The system spelling of a host path, or undefined when it lies outside the root. */
export function systemPathOf(root: string, host: string): string | undefined {
  const rel = relative(normalize(root), normalize(host));
  if (rel === '') return '/';
  if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return '/' + rel.split('\\').join('/');
}

/**
 * Follow symlinks as the installed system would, without ever leaving the root: an
 * absolute target is taken relative to the root, as in a chroot — also one that spells the
 * host path under the root (what the bash `weak-modules --basedir` writes): the installed
 * system cannot follow it. Returns the host path of the final non-link, or undefined if a
 * link dangles.
 */
export async function resolveInRoot(fs: KabiFs, root: string, host: string, maxLinks = 40): Promise<string | undefined> {
  const rootN = normalize(root).replace(/\/+$/, '') || '/';
  const sys = systemPathOf(rootN, host);
  if (sys === undefined) throw new KabiError('UNSAFE_PATH', `path lies outside the root ${rootN}`, { file: host });
  let links = 0;
  // Walk component by component so that links in the middle of the path are also confined.
  let done = '/';
  let rest = sys.split('/').filter((c) => c !== '');
  while (rest.length > 0) {
    const comp = rest.shift()!;
    if (comp === '.') continue;
    if (comp === '..') {
      done = posix.dirname(done);
      continue;
    }
    const next = posix.join(done, comp);
    let st;
    try {
      st = await fs.lstat(hostPath(rootN, next));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    if (!st.isSymbolicLink()) {
      done = next;
      continue;
    }
    if (++links > maxLinks) throw new KabiError('UNSAFE_PATH', 'too many levels of symbolic links', { file: hostPath(rootN, next) });
    const target = await fs.readlink(hostPath(rootN, next));
    let targetSys: string;
    if (posix.isAbsolute(target)) {
      targetSys = target;
      done = '/';
    } else {
      targetSys = target;
    }
    // A relative target continues from the link's directory, which `done` still names.
    rest = [...targetSys.split('/').filter((c) => c !== ''), ...rest];
  }
  return hostPath(rootN, done);
}

/** Read a file by its system path, following symlinks inside the root only. */
export async function readSystemFile(fs: KabiFs, root: string, systemPath: string): Promise<Uint8Array> {
  const host = await resolveInRoot(fs, root, hostPath(root, systemPath));
  if (host === undefined) {
    const e = new Error(`ENOENT: no such file (dangling or missing): ${systemPath}`) as NodeJS.ErrnoException;
    e.code = 'ENOENT';
    throw e;
  }
  return fs.readFile(host);
}

/** The host path a system path ends up at inside the root, or undefined if it does not exist. */
export async function realHostPath(fs: KabiFs, root: string, systemPath: string): Promise<string | undefined> {
  return resolveInRoot(fs, root, hostPath(root, systemPath));
}
