import { posix } from 'node:path';

/**
 * Where weak-modules puts the link for `module` in kernel `release`: the part of the
 * module's path after `/lib/modules/<its kernel>/<first directory>/` (so extra/foo/bar.ko
 * becomes weak-updates/foo/bar.ko, whatever the first directory was), or the whole path
 * for a module stored outside any module tree.
 *
 * `basedir` is the prefix module paths carry (weak-modules --basedir, or the root).
 */
export function weakLinkPath(module: string, moduleRelease: string | undefined, release: string, basedir = ''): string {
  const base = basedir.replace(/\/+$/, '');
  let sub: string | undefined;
  if (moduleRelease !== undefined) {
    for (const prefix of [`${base}/lib/modules/${moduleRelease}/`, `${base}/usr/lib/modules/${moduleRelease}/`]) {
      if (module.startsWith(prefix)) {
        const rest = module.slice(prefix.length);
        const slash = rest.indexOf('/');
        if (slash > 0 && slash < rest.length - 1) sub = rest.slice(slash + 1);
        break;
      }
    }
  }
  sub ??= module.replace(/^\/+/, '');
  return posix.join('/lib/modules', release, 'weak-updates', sub);
}

/**
 * The kernel a module belongs to: the first word of its vermagic, or, for a file that no
 * longer exists, the path component after /lib/modules/.
 */
export function moduleReleaseFromPath(module: string): string | undefined {
  const m = /\/lib\/modules\/([^/]+)\//.exec(module);
  return m?.[1];
}

/** weak-modules never links a module into the kernel whose tree holds it. */
export function isInKernelTree(module: string, release: string, basedir = ''): boolean {
  const base = basedir.replace(/\/+$/, '');
  return module.startsWith(`${base}/lib/modules/${release}/`) || module.startsWith(`${base}/usr/lib/modules/${release}/`);
}
