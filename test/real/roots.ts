import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { CorpusKernel } from './corpus.js';

/**
 * A writable system root for corpus kernels, laid out as the kernel's own release installs it:
 * lib/modules/K (bookworm), or usr/lib/modules/K with lib -> usr/lib (trixie's merged /usr);
 * config and System.map in /boot, or inside the module directory (7.x, no /boot files). The
 * module directory is a hard-linked copy of the shared tree (symlinks pointing out of a root
 * would dangle inside it, as they would in a chroot), so tests can add extra/ or weak-updates/
 * and run depmod there. Module.symvers is where Debian's headers package puts it. Tests must
 * only add files, never rewrite the hard-linked ones.
 */
export function rootWithKernels(kernels: readonly CorpusKernel[], prefix = 'kabi-real-'): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  // A system's /var/cache, where kabi keeps its depmod cache.
  mkdirSync(join(root, 'var/cache'), { recursive: true });
  for (const k of kernels) addCorpusKernel(root, k);
  return root;
}

/**
 * Add kernel k to root. With `only` (paths relative to its module directory), the module
 * directory holds just those modules, with the files beside them that depmod reads
 * (modules.order, modules.builtin*; 7.x's System.map and config).
 */
export function addCorpusKernel(root: string, k: CorpusKernel, only?: Iterable<string>): void {
  const modules = k.mergedUsr ? 'usr/lib/modules' : 'lib/modules';
  if (k.mergedUsr && !existsSync(join(root, 'lib'))) {
    mkdirSync(join(root, 'usr/lib'), { recursive: true });
    symlinkSync('usr/lib', join(root, 'lib'));
  }
  mkdirSync(join(root, modules), { recursive: true });
  const dir = join(root, modules, k.krel);
  if (only === undefined) execFileSync('cp', ['-al', k.moduleDir, dir]);
  else {
    mkdirSync(dir);
    const beside = ['modules.order', 'modules.builtin', 'modules.builtin.modinfo', ...(k.layout === 'split' ? ['System.map', 'config'] : [])];
    for (const rel of [...beside.filter((f) => existsSync(join(k.moduleDir, f))), ...only]) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      linkSync(join(k.moduleDir, rel), join(dir, rel));
    }
  }
  if (k.layout === 'image') {
    mkdirSync(join(root, 'boot'), { recursive: true });
    linkSync(k.config, join(root, 'boot', `config-${k.krel}`));
    linkSync(k.systemMap, join(root, 'boot', `System.map-${k.krel}`));
  }
  const headers = join(root, 'usr/src', `linux-headers-${k.krel}`);
  mkdirSync(headers, { recursive: true });
  linkSync(k.symvers, join(headers, 'Module.symvers'));
  // 7.x's headers package also links the module directory to them.
  if (k.layout === 'split') symlinkSync(`../../../src/linux-headers-${k.krel}`, join(root, modules, k.krel, 'build'));
}

/** Copy modules into <root>/lib/modules/K/<sub>/ and return their paths there. */
export function placeModules(root: string, krel: string, sub: string, files: readonly string[]): string[] {
  const dir = join(root, 'lib/modules', krel, sub);
  mkdirSync(dir, { recursive: true });
  return files.map((f) => {
    const dst = join(dir, basename(f));
    copyFileSync(f, dst);
    return dst;
  });
}
