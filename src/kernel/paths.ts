import { isAbsolute, join, normalize, posix, relative } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs, ReadBudget } from '../fs.js';
import { isNotFound, READ_BUDGETS, readRegularFile } from '../fs.js';

/**
 * kabi works on a system mounted at `root` (default "/"): an image, a chroot, a test
 * fixture. Paths come in two spellings: the *system* path the installed system uses
 * ("/lib/modules/6.1.0-18-amd64/extra/foo.ko", also what symlink targets say) and the
 * *host* path kabi opens ("<root>/lib/modules/…").
 *
 * hostPath() only spells: a symlink on the way (lib/modules/K -> /usr/lib/modules/K) is
 * followed by the host's kernel, which takes an absolute target from the host's "/", out of
 * the root. Whatever is read or written goes through confinedPath() or resolveInRoot(),
 * which follow every link inside the root as a chroot would.
 */
export function hostPath(root: string, systemPath: string): string {
  // "/.." is "/" in a chroot: a system path never climbs out of the root by its spelling.
  return join(root, posix.normalize('/' + systemPath));
}

/** The system spelling of a host path, or undefined when it lies outside the root. */
export function systemPathOf(root: string, host: string): string | undefined {
  const rel = relative(normalize(root), normalize(host));
  if (rel === '') return '/';
  if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return '/' + rel.split('\\').join('/');
}

const MAX_LINKS = 40;

interface WalkOptions {
  /** Follow a link in the last component (false: the link itself, to replace or remove it). */
  readonly followLast: boolean;
  /** A missing component: the walk fails (undefined), or keeps the rest of the path as spelled. */
  readonly keepMissing: boolean;
  readonly maxLinks: number;
  /** System path of a directory already resolved, that `sys` (then relative) is taken from. */
  readonly from?: string;
}

/**
 * Walk a system path component by component under the root, each symlink's target taken
 * inside the root (an absolute one from the root, `..` never above it), so that links in
 * the middle of the path are confined too — as in a chroot. A target that spells the host
 * path under the root (what the bash `weak-modules --basedir` writes) is taken from the root
 * too: the installed system cannot follow it, so neither does kabi.
 */
async function walkInRoot(fs: KabiFs, rootN: string, sys: string, opts: WalkOptions): Promise<string | undefined> {
  let links = 0;
  let done = opts.from ?? '/';
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
      if (!isNotFound(e)) throw e;
      if (!opts.keepMissing) return undefined;
      return hostPath(rootN, posix.join(next, ...rest));
    }
    if (!st.isSymbolicLink() || (rest.length === 0 && !opts.followLast)) {
      done = next;
      continue;
    }
    if (++links > opts.maxLinks) throw new KabiError('UNSAFE_PATH', 'too many levels of symbolic links', { file: hostPath(rootN, next) });
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

function normalRoot(root: string): string {
  return normalize(root).replace(/\/+$/, '') || '/';
}

/**
 * Follow symlinks as the installed system would, without ever leaving the root: an
 * absolute target is taken relative to the root, as in a chroot. Returns the host path of
 * the final non-link, or undefined if a link dangles or a component is missing.
 */
export async function resolveInRoot(fs: KabiFs, root: string, host: string, maxLinks = MAX_LINKS): Promise<string | undefined> {
  const rootN = normalRoot(root);
  const sys = systemPathOf(rootN, host);
  if (sys === undefined) throw new KabiError('UNSAFE_PATH', `path lies outside the root ${rootN}`, { file: host });
  return walkInRoot(fs, rootN, sys, { followLast: true, keepMissing: false, maxLinks });
}

/**
 * resolveInRoot() of the entry `name` of a directory whose host path is already resolved
 * (no link in it): only the entry's own link, and what its target names, are walked, which
 * for a scan of thousands of directories is the difference between a few system calls per
 * link and one per component of the whole path.
 */
export async function resolveEntryInRoot(fs: KabiFs, root: string, dirHost: string, name: string, maxLinks = MAX_LINKS): Promise<string | undefined> {
  const rootN = normalRoot(root);
  const from = systemPathOf(rootN, dirHost);
  if (from === undefined) throw new KabiError('UNSAFE_PATH', `path lies outside the root ${rootN}`, { file: dirHost });
  return walkInRoot(fs, rootN, name, { followLast: true, keepMissing: false, maxLinks, from });
}

/**
 * The host path to read or write a system path at: every link on the way followed inside
 * the root (as resolveInRoot), the part from the first missing component on kept as spelled
 * (so that it can be created). With `followLast: false` a link in the last component is
 * left as it is, for callers that replace or remove the entry itself.
 */
export async function confinedPath(fs: KabiFs, root: string, systemPath: string, opts: { followLast?: boolean } = {}): Promise<string> {
  const host = await walkInRoot(fs, normalRoot(root), posix.normalize('/' + systemPath), { followLast: opts.followLast ?? true, keepMissing: true, maxLinks: MAX_LINKS });
  return host!;
}

/**
 * Read a file by its system path, following symlinks inside the root only: a regular file
 * within `budget` (NOT_A_FILE, LIMIT otherwise; see fs.ts).
 */
export async function readSystemFile(fs: KabiFs, root: string, systemPath: string, budget: ReadBudget = READ_BUDGETS.text): Promise<Uint8Array> {
  const host = await resolveInRoot(fs, root, hostPath(root, systemPath));
  if (host === undefined) {
    const e = new Error(`ENOENT: no such file (dangling or missing): ${systemPath}`) as NodeJS.ErrnoException;
    e.code = 'ENOENT';
    throw e;
  }
  return readRegularFile(fs, host, budget);
}

/** The host path a system path ends up at inside the root, or undefined if it does not exist. */
export async function realHostPath(fs: KabiFs, root: string, systemPath: string): Promise<string | undefined> {
  return resolveInRoot(fs, root, hostPath(root, systemPath));
}
