// SPDX-License-Identifier: GPL-2.0-or-later
//
// The scenario of the initramfs-inclusion-*.test.ts files: every boot image holds what its
// generator would put there. Real images of a Debian 6.1 kernel, built by Debian's dracut
// (hostonly and not) and initramfs-tools (MODULES=most and dep); for the add, upgrade and
// removal of (a) a module named in the generator's configuration, (b) a new block driver, (c) a
// driver no rule includes and (d) one the configuration excludes, `kabi initramfs update` (the
// built bin, root /, in a namespace where the test's tree and configuration are the system's)
// must leave the image with exactly the module files a fresh generator run makes for the same
// tree (lsinitrd / lsinitramfs), the changed module's bytes equal to the generator's, and must
// have rebuilt the image only when that run's result differs from the image it had.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { cleanupTemps } from '../initramfs/helpers.js';
import { generatorKernels } from './corpus.js';
import { depmodIn, imageModules, inclusionModules, inclusionRoot, inSystem, runInclusionScenario, type InclusionModule, type InclusionRoot } from './initramfs-env.js';

const REPO = join(import.meta.dirname, '../..');
const { K61 } = generatorKernels();

/** A boot image generator as the system runs it, with the configuration the test gives it. */
export interface Generator {
  readonly name: string;
  readonly lister: 'lsinitrd' | 'lsinitramfs';
  readonly modules: readonly [InclusionModule, InclusionModule, InclusionModule, InclusionModule];
  configure(r: InclusionRoot): void;
  /** The image kabi keeps up to date (system path). */
  image(r: InclusionRoot): string;
  /** Build the image as the system would, then a fresh one elsewhere for the oracle. */
  install(r: InclusionRoot): void;
  fresh(r: InclusionRoot, out: string): void;
}

/** Debian's dracut (059), hostonly or not, zstd. */
export const dracut = (hostonly: boolean): Generator => ({
  name: `Debian's dracut, ${hostonly ? 'hostonly' : 'not hostonly'}`,
  lister: 'lsinitrd',
  modules: ['kabi_add', 'kabi_blk', 'kabi_plain', 'kabi_omit'],
  configure(r) {
    writeFileSync(
      join(r.dracutConf, '10-kabi-test.conf'),
      `${hostonly ? 'hostonly="yes"\n' : ''}compress="zstd -1 -q"\nearly_microcode="no"\nadd_drivers+=" kabi_add "\nomit_drivers+=" kabi_omit "\n`,
    );
  },
  image: (r) => `/boot/initramfs-${r.release}.img`,
  install: (r) => void inSystem(r, ['dracut', '-q', '-f', `/boot/initramfs-${r.release}.img`, r.release]),
  fresh: (r, out) => void inSystem(r, ['dracut', '-q', '-f', out, r.release]),
});

/** Debian's initramfs-tools, MODULES=most or dep, zstd. */
export const initramfsTools = (modules: 'most' | 'dep'): Generator => ({
  name: `Debian's initramfs-tools, MODULES=${modules}`,
  lister: 'lsinitramfs',
  modules: ['kabi_add', 'kabi_blk', 'kabi_plain', 'hid-kabiff'],
  configure(r) {
    writeFileSync(join(r.toolsConf, 'initramfs.conf'), `MODULES=${modules}\nBUSYBOX=n\nKEYMAP=n\nCOMPRESS=zstd\nCOMPRESSLEVEL=1\nDEVICE=\nNFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\n`);
    writeFileSync(join(r.toolsConf, 'modules'), 'kabi_add\n');
  },
  image: (r) => `/boot/initrd.img-${r.release}`,
  install: (r) => void inSystem(r, ['update-initramfs', '-c', '-k', r.release]),
  // What update-initramfs -u runs, into another file.
  fresh: (r, out) => void inSystem(r, ['mkinitramfs', '-o', out, r.release]),
});

/**
 * The scenario for one generator. One test file per generator: each takes minutes of generator
 * runs, and separate files let the two workers share them.
 */
export function describeInclusion(g: Generator): void {
  afterAll(cleanupTemps);
  describe(g.name, () => {
    it('for the add, upgrade and removal of each kind of module, kabi leaves the module list a fresh run makes, and rebuilds only when it differs', async () => {
      const r = inclusionRoot(K61);
      g.configure(r);
      depmodIn(r);
      g.install(r);
      const freshImage = join(r.work, 'fresh.img');
      const log = await runInclusionScenario(
        {
          root: r,
          image: join(r.root, g.image(r)),
          freshImage,
          depmod: () => depmodIn(r),
          kabi: (changed) => JSON.parse(inSystem(r, [process.execPath, join(REPO, 'dist/bin/kabi.js'), 'initramfs', 'update', '--json', '--module', changed, r.release]).stdout),
          fresh: () => g.fresh(r, freshImage),
          list: (file) => imageModules(file, g.lister),
        },
        g.modules,
        inclusionModules(K61),
      );
      console.log(`${g.name}:\n${log.join('\n')}`);
    });
  });
}
