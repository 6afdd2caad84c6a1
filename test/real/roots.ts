import { execFileSync } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { CorpusKernel } from './corpus.js';

/**
 * A writable system root for corpus kernels: lib/modules/K is a hard-linked copy of the
 * shared tree (symlinks pointing out of a root would dangle inside it, as they would in a
 * chroot), so tests can add extra/ or weak-updates/ and run depmod there. Module.symvers is
 * where Debian's headers package puts it, config and System.map in /boot. Tests must only add
 * files, never rewrite the hard-linked ones.
 */
export function rootWithKernels(kernels: readonly CorpusKernel[], prefix = 'kabi-real-'): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  // A system's /var/cache, where kabi keeps its depmod cache.
  mkdirSync(join(root, 'var/cache'), { recursive: true });
  for (const k of kernels) addCorpusKernel(root, k);
  return root;
}

export function addCorpusKernel(root: string, k: CorpusKernel): void {
  mkdirSync(join(root, 'lib/modules'), { recursive: true });
  execFileSync('cp', ['-al', k.moduleDir, join(root, 'lib/modules', k.krel)]);
  mkdirSync(join(root, 'boot'), { recursive: true });
  linkSync(k.config, join(root, 'boot', `config-${k.krel}`));
  linkSync(k.systemMap, join(root, 'boot', `System.map-${k.krel}`));
  const headers = join(root, 'usr/src', `linux-headers-${k.krel}`);
  mkdirSync(headers, { recursive: true });
  linkSync(k.symvers, join(headers, 'Module.symvers'));
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
