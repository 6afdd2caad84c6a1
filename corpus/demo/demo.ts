/**
 * `npm start`: build a small system tree from the project's fixtures — three installed
 * kernels laid out as RHEL does, a vendor driver built for the oldest — and show kabi
 * analysing it, with every command. Everything happens under a temp dir, removed at the end
 * unless --keep is given (it says which); nothing on this machine is touched.
 */
import { rmSync } from 'node:fs';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC } from '../fixtures/system-root.js';
import { main } from '../../src/cli/main.js';
import { processIo } from '../../src/cli/io.js';

const OLD = '5.14.0-362.8.1.el9_3.x86_64';
const NEW = '5.14.0-427.13.1.el9_4.x86_64';
const BROKEN = '5.14.0-503.11.1.el9_5.x86_64';

const fx = makeRoot('kabi-demo-');
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

const io = processIo();
async function show(argv: string[]) {
  io.stdout(`\n$ kabi ${argv.join(' ').replaceAll(fx.root, '$ROOT')}\n`);
  const status = await main(argv, { ...io, stdout: (t) => io.stdout(t.replaceAll(fx.root, '$ROOT')) });
  io.stdout(`(exit status ${status})\n`);
}

const keep = process.argv.includes('--keep');
io.stdout(`A demo system under ROOT=${fx.root}: kernels ${OLD}, ${NEW} and ${BROKEN}\n(whose printk changed), and a vendor driver package built for ${OLD}.\n`);
await show(['inspect', driver]);
await show(['inspect', '--root', fx.root, '-k', OLD, '-F', 'description', 'acme-nic']);
await show(['check', '--root', fx.root, driver, blob]);
await show(['check', '--root', fx.root, '--semantics', 'depmod', driver, blob]);
await show(['status', '--root', fx.root]);
await show(['link', '--root', fx.root, '--add', '--dry-run', '--forward-only', driver, blob]);
await show(['link', '--root', fx.root, '--add', driver]);
await show(['status', '--root', fx.root, '--why', 'acme_nic', '--kernel', BROKEN]);
await show(['depmod', '--root', fx.root, '-n', NEW]);
await show(['initramfs', 'check', '--root', fx.root, NEW]);
await show(['preserve', 'save', '--root', fx.root, '--kernel', OLD]);
await show(['preserve', 'list', '--root', fx.root]);
// The drop-in: the same job, el9's options and output (a dry run: the links are there already).
io.stdout(`\n$ echo ${driver.replaceAll(fx.root, '$ROOT')} | weak-modules --basedir $ROOT --add-modules --dry-run --verbose\n`);
const wm = await main(['weak-modules', '--basedir', fx.root, '--add-modules', '--dry-run', '--verbose'], { ...io, readStdin: async () => `${driver}\n`, stdout: (t) => io.stdout(t.replaceAll(fx.root, '$ROOT')) });
io.stdout(`(exit status ${wm})\n`);
if (keep) io.stdout(`\nThe demo system is kept under ${fx.root} (remove it when done).\n`);
else {
  rmSync(fx.root, { recursive: true, force: true });
  io.stdout(`\nRemoved the demo system ${fx.root} (\`npm start -- --keep\` keeps it to explore).\n`);
}
