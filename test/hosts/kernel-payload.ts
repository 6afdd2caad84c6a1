// SPDX-License-Identifier: GPL-2.0-or-later
//
// The files of a kernel package, taken from a corpus kernel tree (real Debian modules,
// modules.order, modules.builtin, config, Module.symvers), laid out the way each distribution
// installs a kernel, into a payload directory that an RPM, .deb or pacman package is built from.
// Only a subset of the tree's modules goes in (seed directories and everything they depend on),
// which keeps packages small while depmod, kabi and the loader checks see a real tree.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { CorpusKernel } from '../real/corpus.js';

/** Module directories (under the tree's kernel/) every kernel package carries, with their dependencies. */
export const SEED_MODULES = ['kernel/drivers/usb/storage', 'kernel/fs/fat', 'kernel/fs/isofs', 'kernel/drivers/net/dummy.ko'];

export type KernelLayout = 'rhel' | 'debian' | 'arch';

function walkModules(dir: string, rel: string, out: Map<string, string>): void {
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = `${rel}/${e.name}`;
    if (e.isDirectory()) walkModules(dir, r, out);
    else if (/\.ko(\.(xz|gz|zst))?$/.test(e.name)) out.set(e.name.replace(/\.ko(\..*)?$/, '').replace(/-/g, '_'), r);
  }
}

/** The tree's module files (relative to its module dir) for the seeds and their dependency closure. */
export function moduleSubset(k: CorpusKernel, seeds: readonly string[] = SEED_MODULES): string[] {
  const byName = new Map<string, string>();
  walkModules(k.moduleDir, 'kernel', byName);
  const picked = new Set<string>();
  const queue: string[] = [];
  for (const seed of seeds) {
    const abs = join(k.moduleDir, seed);
    if (statSync(abs).isDirectory()) {
      const sub = new Map<string, string>();
      walkModules(k.moduleDir, seed, sub);
      queue.push(...sub.values());
    } else queue.push(seed);
  }
  while (queue.length > 0) {
    const rel = queue.pop()!;
    if (picked.has(rel)) continue;
    picked.add(rel);
    const r = spawnSync('modinfo', ['-F', 'depends', join(k.moduleDir, rel)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`modinfo ${rel}: ${r.stderr}`);
    for (const dep of r.stdout.trim().split(',').filter((d) => d !== '')) {
      const path = byName.get(dep.replace(/-/g, '_'));
      if (!path) throw new Error(`${rel} depends on ${dep}, which is not in ${k.krel}'s tree`);
      queue.push(path);
    }
  }
  return [...picked].sort();
}

function place(src: string, dst: string): void {
  mkdirSync(dirname(dst), { recursive: true });
  try {
    linkSync(src, dst); // the corpus is read-only by convention; packages only read it
  } catch {
    copyFileSync(src, dst);
  }
}

export interface KernelPayload {
  release: string;
  /** Directory laid out as the installed system. */
  dir: string;
  /** The module directory inside the system: /lib/modules/K or /usr/lib/modules/K. */
  moduleDir: string;
  /** Files (system paths) the package owns. */
  files: string[];
}

/**
 * A kernel's files as its distribution packages them:
 *  - rhel:   /lib/modules/K/{vmlinuz,System.map,config,symvers.gz,modules.order,modules.builtin*,kernel/…}
 *  - debian: /boot/{vmlinuz,System.map,config}-K, /lib/modules/K/{modules.order,modules.builtin*,kernel/…},
 *            /usr/src/linux-headers-K/Module.symvers (linux-headers' file, shipped along here)
 *  - arch:   /usr/lib/modules/K/{vmlinuz,pkgbase,modules.order,modules.builtin*,kernel/…,build/Module.symvers}
 */
export function kernelPayload(k: CorpusKernel, layout: KernelLayout, dir: string): KernelPayload {
  const K = k.krel;
  const moduleDir = layout === 'arch' ? `/usr/lib/modules/${K}` : `/lib/modules/${K}`;
  const files: string[] = [];
  const put = (src: string, dst: string) => {
    place(src, join(dir, dst));
    files.push(dst);
  };
  const write = (data: Buffer | string, dst: string) => {
    mkdirSync(dirname(join(dir, dst)), { recursive: true });
    writeFileSync(join(dir, dst), data);
    files.push(dst);
  };
  const vmlinuz = join(k.treeRoot, 'boot', `vmlinuz-${K}`);
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
    if (existsSync(join(k.moduleDir, f))) put(join(k.moduleDir, f), `${moduleDir}/${f}`);
  }
  for (const rel of moduleSubset(k)) put(join(k.moduleDir, rel), `${moduleDir}/${rel}`);
  if (layout === 'rhel') {
    put(vmlinuz, `${moduleDir}/vmlinuz`);
    put(k.systemMap, `${moduleDir}/System.map`);
    put(k.config, `${moduleDir}/config`);
    write(gzipSync(readFileSync(k.symvers)), `${moduleDir}/symvers.gz`);
  } else if (layout === 'debian') {
    put(vmlinuz, `/boot/vmlinuz-${K}`);
    put(k.systemMap, `/boot/System.map-${K}`);
    put(k.config, `/boot/config-${K}`);
    put(k.symvers, `/usr/src/linux-headers-${K}/Module.symvers`);
  } else {
    put(vmlinuz, `${moduleDir}/vmlinuz`);
    write('linux\n', `${moduleDir}/pkgbase`);
    put(k.symvers, `${moduleDir}/build/Module.symvers`);
    put(k.config, `${moduleDir}/build/.config`);
  }
  return { release: K, dir, moduleDir, files: files.sort() };
}

/** The files depmod writes into a module directory (kmod 30, bookworm's): a kernel package ghosts them. */
export const DEPMOD_OUTPUTS = [
  'modules.alias',
  'modules.alias.bin',
  'modules.builtin.alias.bin',
  'modules.builtin.bin',
  'modules.dep',
  'modules.dep.bin',
  'modules.devname',
  'modules.softdep',
  'modules.symbols',
  'modules.symbols.bin',
] as const;
