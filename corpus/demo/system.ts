/**
 * The demo system of `npm start` (and of the README's examples, test/api/readme-shell.test.ts):
 * three kernels laid out as RHEL does — OLD, NEW with the same kABI, BROKEN whose printk
 * changed — and a vendor's GPL driver and proprietary blob built for OLD in its extra/acme/.
 */
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureRoot } from '../fixtures/system-root.js';

export const OLD = '5.14.0-362.8.1.el9_3.x86_64';
export const NEW = '5.14.0-427.13.1.el9_4.x86_64';
export const BROKEN = '5.14.0-503.11.1.el9_5.x86_64';

export function demoSystem(prefix = 'kabi-demo-'): { fx: FixtureRoot; driver: string; blob: string } {
  const fx = makeRoot(prefix);
  const vmlinux = (printk: number) => [
    { symbol: 'printk', crc: printk },
    { symbol: 'pci_register_driver', crc: 0x3c2a0b1d, gpl: false },
    { symbol: 'dma_alloc_attrs', crc: 0x7f1e22a4, gpl: true },
  ];
  const rhel = { config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)"' }, dirs: ['extra', 'weak-updates'] };
  addKernel(fx, { release: OLD, symvers: 'boot-gz', vmlinux: vmlinux(0x92997ed8), ...rhel });
  addKernel(fx, { release: NEW, symvers: 'boot-xz', vmlinux: vmlinux(0x92997ed8), ...rhel });
  addKernel(fx, { release: BROKEN, symvers: 'boot-xz', vmlinux: vmlinux(0x0badc0de), ...rhel });

  const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
  const imports = [LAYOUT, { symbol: 'printk', crc: 0x92997ed8 }, { symbol: 'pci_register_driver', crc: 0x3c2a0b1d }, { symbol: 'dma_alloc_attrs', crc: 0x7f1e22a4 }];
  const driver = fx.write(
    `/lib/modules/${OLD}/extra/acme/acme_nic.ko`,
    externalModule(OLD, {
      name: 'acme_nic',
      license: 'GPL',
      modinfo: [['version', '2.3.1'], ['description', 'ACME 10G NIC driver'], ['alias', 'pci:v00001234d00005678sv*sd*bc*sc*i*']],
      versions: imports,
      undefinedSymbols: ['printk', 'pci_register_driver', 'dma_alloc_attrs'],
      exports: [{ symbol: 'acme_nic_register_phy', crc: 0x1b2c3d4e, gpl: true }],
    }),
  );
  const blob = fx.write(
    `/lib/modules/${OLD}/extra/acme/acme_blob.ko`,
    externalModule(OLD, { name: 'acme_blob', license: 'Proprietary', versions: imports, undefinedSymbols: ['printk', 'dma_alloc_attrs'] }),
  );
  return { fx, driver, blob };
}
