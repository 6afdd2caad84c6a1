/**
 * `npm start`: build a small system tree from the project's fixtures — three installed
 * kernels laid out as RHEL does, a vendor driver built for the oldest — and show kabi
 * analysing it, with every command. Everything happens under a temp dir, removed at the end
 * unless --keep is given (it says which); nothing on this machine is touched.
 */
import { rmSync } from 'node:fs';
import { main } from '../../src/cli/main.js';
import { processIo } from '../../src/cli/io.js';
import { BROKEN, demoSystem, NEW, OLD } from './system.js';

const { fx, driver, blob } = demoSystem();

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
