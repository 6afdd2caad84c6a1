import { addKernel, makeRoot, type FixtureKernel, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { KFREE, mod } from '../status/fixture.js';

/**
 * A root with an older kernel OLD whose extra/ holds drv, and a kernel NEW just installed by its
 * package (no links yet). A space in the root's name checks that every script quotes its paths.
 */
export function twoKernelRoot(layout: Partial<FixtureKernel>, OLD: string, NEW: string): { fx: FixtureRoot; drv: string } {
  const fx = makeRoot('kabi integ root ');
  for (const release of [OLD, NEW]) {
    addKernel(fx, { release, vmlinux: [{ symbol: 'kfree', crc: 0x22 }], moduleStructSize: 0x380, config: { CONFIG_CC_VERSION_TEXT: '"gcc 12"' }, ...layout });
  }
  const base = layout.usrMerged ? '/usr/lib/modules' : '/lib/modules';
  const drv = `${base}/${OLD}/extra/drv/drv.ko`;
  fx.write(drv, mod(OLD, 'drv', KFREE));
  return { fx, drv };
}
