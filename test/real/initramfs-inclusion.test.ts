// SPDX-License-Identifier: GPL-2.0-or-later
//
// Every boot image holds what its generator would put there. Real images of a Debian 6.1
// kernel, built by Debian's dracut (hostonly and not) and initramfs-tools (MODULES=most and
// dep); for the add, upgrade and removal of (a) a module named in the generator's
// configuration, (b) a new block driver, (c) a driver no rule includes and (d) one the
// configuration excludes, `kabi initramfs update` (the built bin, root /, in a namespace
// where the test's tree and configuration are the system's) must leave the image with
// exactly the module files a fresh generator run makes for the same tree (lsinitrd /
// lsinitramfs), the changed module's bytes equal to the generator's, and must have rebuilt
// the image only when that run's result differs from the image it had.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readImageFile } from '../../src/initramfs/image.js';
import { ImageTree } from '../../src/initramfs/image-tree.js';
import { moduleContents } from '../../src/initramfs/module-compare.js';
import { nodeFs } from '../../src/fs.js';
import { cleanupTemps } from '../initramfs/helpers.js';
import { generatorKernels } from './corpus.js';
import { depmodIn, imageModules, inclusionModules, inclusionRoot, installModule, inSystem, removeModule, type InclusionModule, type InclusionRoot } from './initramfs-env.js';

afterAll(cleanupTemps);

const REPO = join(import.meta.dirname, '../..');
const { K61 } = generatorKernels();

interface Generator {
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

const dracut = (hostonly: boolean): Generator => ({
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

const initramfsTools = (modules: 'most' | 'dep'): Generator => ({
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

const GENERATORS = [dracut(false), dracut(true), initramfsTools('most'), initramfsTools('dep')];

async function moduleBytes(file: string, path: string): Promise<Uint8Array | undefined> {
  const tree = new ImageTree(await readImageFile(nodeFs, file));
  const data = tree.readFile(path);
  return data === undefined ? undefined : moduleContents(data, path);
}

describe.each(GENERATORS)('$name', (g) => {
  it('for the add, upgrade and removal of each kind of module, kabi leaves the module list a fresh run makes, and rebuilds only when it differs', async () => {
    const r = inclusionRoot(K61);
    const built = inclusionModules(K61);
    g.configure(r);
    depmodIn(r);
    g.install(r);
    const image = join(r.root, g.image(r));
    const freshFile = join(r.work, 'fresh.img');
    const log: string[] = [];
    for (const m of g.modules) {
      for (const op of ['add', 'upgrade', 'remove'] as const) {
        const t0 = performance.now();
        const changed = op === 'remove' ? removeModule(r, m) : installModule(r, m, built[op === 'add' ? 1 : 2][m]);
        depmodIn(r);
        const before = imageModules(image, g.lister);
        const run = inSystem(r, [process.execPath, join(REPO, 'dist/bin/kabi.js'), 'initramfs', 'update', '--json', '--module', changed, r.release]);
        const result = JSON.parse(run.stdout) as { action: string; reasons: string[] };
        const after = imageModules(image, g.lister);
        g.fresh(r, freshFile);
        const fresh = imageModules(freshFile, g.lister);
        const inImage = (list: string[]) => list.some((p) => p.endsWith(`/${m}.ko`) || p.endsWith(`/${m}.ko.xz`));
        const expectRebuild = JSON.stringify(fresh) !== JSON.stringify(before) || (op === 'upgrade' && inImage(fresh));
        log.push(`${m} ${op}: ${result.action}${result.reasons.length ? ` (${result.reasons.join('; ')})` : ''} [${Math.round(performance.now() - t0)} ms]`);
        expect(after, `${m} ${op}: kabi's image vs a fresh run\n${log.join('\n')}`).toEqual(fresh);
        expect(result.action !== 'none', `${m} ${op}: rebuilt only when the fresh run differs\n${log.join('\n')}`).toBe(expectRebuild);
        if (op !== 'remove' && inImage(fresh)) {
          const path = fresh.find((p) => p.endsWith(`/${m}.ko`) || p.endsWith(`/${m}.ko.xz`))!;
          const ours = await moduleBytes(image, path);
          const theirs = await moduleBytes(freshFile, path);
          expect(ours !== undefined && theirs !== undefined && Buffer.from(ours).equals(Buffer.from(theirs)), `${m} ${op}: the module's bytes are the generator's`).toBe(true);
        }
      }
    }
    console.log(`${g.name}:\n${log.join('\n')}`);
  });
});
