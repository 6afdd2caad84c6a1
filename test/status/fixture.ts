import { mkdirSync, symlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureKernel, type FixtureRoot } from '../../corpus/fixtures/system-root.js';

/*
 * A RHEL-like system where every cell state of `kabi status` occurs. Three kernels: K1 and K2
 * share their ABI, K3 changed printk's CRC and added new_api. dist.conf ranks weak-updates below
 * the kernel's own modules, as RHEL ships it, so an in-tree module shadows a link.
 */

export const K1 = '5.14.0-100.el9.x86_64';
export const K2 = '5.14.0-200.el9.x86_64';
export const K3 = '5.14.0-300.el9.x86_64';
export const STORE = '/opt/kmods';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
const STRUCT = 0x380;
const CONFIG = { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)"' };

function kernel(release: string, extra: Partial<FixtureKernel> = {}): FixtureKernel {
  const v3 = release === K3;
  return {
    release,
    symvers: 'boot-gz',
    vmlinux: [
      { symbol: 'printk', crc: v3 ? 0x99 : 0x11 },
      { symbol: 'kfree', crc: 0x22 },
      ...(release === K1 ? [{ symbol: 'k1_only', crc: 0x44 }] : []),
      ...(v3 ? [{ symbol: 'new_api', crc: 0x33 }] : []),
    ],
    config: CONFIG,
    moduleStructSize: STRUCT,
    ...extra,
  };
}

/** A module built for `release` that needs the given vmlinux symbols (CRCs as K1/K2 export them). */
export function mod(release: string, name: string, needs: Record<string, number>, extra: Parameters<typeof externalModule>[1] | object = {}): Uint8Array {
  return externalModule(release, {
    name,
    versions: [LAYOUT, ...Object.entries(needs).map(([symbol, crc]) => ({ symbol, crc }))],
    undefinedSymbols: Object.keys(needs),
    thisModuleSize: STRUCT,
    license: 'GPL',
    ...extra,
  });
}

export function link(fx: FixtureRoot, sys: string, target: string): void {
  const p = fx.path(sys);
  mkdirSync(dirname(p), { recursive: true });
  symlinkSync(target, p);
}

export const PRINTK = { printk: 0x11 };
export const KFREE = { kfree: 0x22 };

export function everyStateRoot(): FixtureRoot {
  const fx = makeRoot('kabi-status-');
  addKernel(fx, kernel(K1));
  addKernel(fx, kernel(K2, { modules: [{ path: 'kernel/lib/kabi_base', spec: {} }, { path: 'kernel/drivers/misc/shadow', spec: { license: 'GPL' } }] }));
  addKernel(fx, kernel(K3));
  fx.write('/etc/depmod.d/dist.conf', 'search updates extra built-in weak-updates\n');

  // drv: built for K2 (its own tree), linked into K1, cannot load on K3 (printk changed).
  fx.write(`/lib/modules/${K2}/extra/drv/drv.ko`, mod(K2, 'drv', PRINTK));
  link(fx, `/lib/modules/${K1}/weak-updates/drv/drv.ko`, `/lib/modules/${K2}/extra/drv/drv.ko`);

  // net: built for K1; linked into K3; loads on K2 but nothing links it there.
  fx.write(`/lib/modules/${K1}/extra/net.ko`, mod(K1, 'net', KFREE));
  link(fx, `/lib/modules/${K3}/weak-updates/net.ko`, `/lib/modules/${K1}/extra/net.ko`);

  // gone: K3 links to a file that was removed.
  link(fx, `/lib/modules/${K3}/weak-updates/gone.ko`, `/lib/modules/${K1}/extra/gone.ko`);

  // chg: K2's link target was rebuilt and now needs a symbol only K1 exports.
  fx.write(`/lib/modules/${K1}/extra/chg.ko`, mod(K1, 'chg', { ...KFREE, k1_only: 0x44 }));
  link(fx, `/lib/modules/${K2}/weak-updates/chg.ko`, `/lib/modules/${K1}/extra/chg.ko`);

  // shadow: K2 ships an in-tree module of that name, which beats the weak-updates link.
  fx.write(`/lib/modules/${K1}/extra/shadow.ko`, mod(K1, 'shadow', KFREE));
  link(fx, `/lib/modules/${K2}/weak-updates/shadow.ko`, `/lib/modules/${K1}/extra/shadow.ko`);

  // vers: a store with two versions; 2.0 needs new_api (K3 only), 1.0 loads anywhere.
  fx.write(`${STORE}/vers/1.0/vers.ko`, mod(K1, 'vers', KFREE, { modinfo: [['version', '1.0']] }));
  fx.write(`${STORE}/vers/2.0/vers.ko`, mod(K3, 'vers', { ...KFREE, new_api: 0x33 }, { modinfo: [['version', '2.0']] }));

  // fwd: built for the newest kernel; symbols alone would let it load on the older ones.
  fx.write(`/lib/modules/${K3}/extra/fwd.ko`, mod(K3, 'fwd', KFREE));

  // dk: DKMS built it for K1 (installed into updates/dkms) and for K2 (left uninstalled).
  fx.write(`/var/lib/dkms/dk/1.0/${K1}/x86_64/module/dk.ko`, mod(K1, 'dk', KFREE, { modinfo: [['version', '1.0']] }));
  fx.write(`/lib/modules/${K1}/updates/dkms/dk.ko`, mod(K1, 'dk', KFREE, { modinfo: [['version', '1.0']] }));
  fx.write(`/var/lib/dkms/dk/1.0/${K2}/x86_64/module/dk.ko`, mod(K2, 'dk', KFREE, { modinfo: [['version', '1.0']] }));
  symlinkSync(`/usr/src/dk-1.0`, fx.path('/var/lib/dkms/dk/1.0/source'));
  return fx;
}
