// SPDX-License-Identifier: GPL-2.0-or-later
//
// The corpus's out-of-tree modules as "sets": modules built together and installed together
// (the test modules built for one kernel; one DKMS package's build for one kernel). Every pair
// (module, built for, kernel) of the verdict tests is a module of a set placed on a kernel.

import { loadCorpus, TEST_MODULES, type CorpusKernel } from './corpus.js';

export interface SetModule {
  /** The kernel's name for it (underscores), e.g. ddcci_backlight. */
  readonly name: string;
  /** .ko, or compressed as dkms made it (.ko.xz). */
  readonly file: string;
}

export interface ModuleSet {
  readonly id: string;
  readonly builtFor: string;
  /** "test", or the DKMS package and its Debian version. */
  readonly what: string;
  readonly modules: readonly SetModule[];
}

export const normalizeName = (n: string): string => n.replace(/-/g, '_');

/** The sets built for kernel b: its test modules, then each successful DKMS build. */
export function setsOf(b: CorpusKernel): ModuleSet[] {
  const corpus = loadCorpus();
  const sets: ModuleSet[] = [
    { id: `${b.krel} test`, builtFor: b.krel, what: 'test', modules: TEST_MODULES.map((n) => ({ name: n, file: corpus.builtModule(b, n) })) },
  ];
  for (const d of b.dkms ?? []) {
    if (d.status !== 'built') continue;
    const what = `${d.source} ${d.version}`;
    sets.push({ id: `${b.krel} ${what}`, builtFor: b.krel, what, modules: Object.entries(d.modules).map(([n, file]) => ({ name: normalizeName(n), file })) });
  }
  return sets;
}

/** Every set built for every corpus kernel. */
export function allSets(): ModuleSet[] {
  return loadCorpus().kernels({ arch: 'amd64', built: true }).flatMap(setsOf);
}
