// Under --basedir / --root, links are judged as the installed system sees them: a target that
// spells a host path (what the bash weak-modules writes with --basedir) dangles there, so kabi
// status calls it stale and kabi's depmod does not list it — as kmod's depmod run in the
// installed system does not; a module named by a path that leads out of the root is looked
// for inside it, as a chroot would.

import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC } from '../../corpus/fixtures/system-root.js';
import { memoryIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { kmodDepmodInRoot, weakLinks, wm } from './helpers.js';

const A = '5.14.0-100.el9.x86_64';
const B = '5.14.0-200.el9.x86_64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
const PRINTK = { symbol: 'printk', crc: 0x11 };

function root() {
  const fx = makeRoot('kabi-installed-');
  for (const r of [A, B]) addKernel(fx, { release: r, symvers: 'boot-gz', vmlinux: [PRINTK], config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11"' }, dirs: ['extra', 'weak-updates'] });
  const m = fx.write(`/lib/modules/${A}/extra/drv.ko`, externalModule(A, { name: 'drv', versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'] }));
  return { fx, m };
}

async function kabi(argv: string[]) {
  const io = memoryIo();
  const status = await main(argv, io);
  return { status, out: io.out(), err: io.err() };
}

describe('links as the installed system sees them', () => {
  it('a link whose target spells the host path is stale in kabi status and absent from kabi depmod, as in kmod inside the system', async () => {
    const { fx, m } = root();
    // What the bash weak-modules --basedir leaves: the host path in the target.
    symlinkSync(m, fx.path(`/lib/modules/${B}/weak-updates/drv.ko`));
    const st = await kabi(['status', '--root', fx.root, '--json']);
    const cell = (JSON.parse(st.out) as { modules: { name: string; cells: { kernel: string; state: string }[] }[] }).modules.find((x) => x.name === 'drv')!.cells.find((c) => c.kernel === B)!;
    expect(cell.state).toBe('stale');
    // kabi depmod --root reads the system as it sees itself (depmod -b reads as kmod -b does: test/depmod).
    expect((await kabi(['depmod', '--root', fx.root, B])).status).toBe(0);
    const dep = readFileSync(fx.path(`/lib/modules/${B}/modules.dep`), 'utf8');
    expect(dep).not.toContain('drv.ko');
    // kmod's depmod as the installed system runs it agrees.
    const copy = kmodDepmodInRoot(fx.root, B);
    expect(readFileSync(join(copy, 'lib/modules', B, 'modules.dep'), 'utf8')).toBe(dep);

    // weak-modules --add-modules re-points it at the path the system knows, and then it counts.
    expect((await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${m}\n`)).status).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({ 'drv.ko': `/lib/modules/${A}/extra/drv.ko` });
    expect(readFileSync(fx.path(`/lib/modules/${B}/modules.dep`), 'utf8')).toContain('weak-updates/drv.ko:');
    const after = JSON.parse((await kabi(['status', '--root', fx.root, '--json'])).out) as { modules: { name: string; cells: { kernel: string; state: string }[] }[] };
    expect(after.modules.find((x) => x.name === 'drv')!.cells.find((c) => c.kernel === B)!.state).toBe('weak-linked');
  });

  it('weak-modules --remove-modules still matches a link the bash tool wrote with the host path', async () => {
    const { fx, m } = root();
    symlinkSync(m, fx.path(`/lib/modules/${B}/weak-updates/drv.ko`));
    writeFileSync(m, ''); // the package is gone…
    const { rmSync } = await import('node:fs');
    rmSync(m);
    expect((await wm(['--basedir', fx.root, '--remove-modules', '--no-initramfs'], `${m}\n`)).status).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({});
  });

  it('kabi link --add of a module whose symlink leads out of the root, or that is missing, is an error (status 2), nothing changed', async () => {
    const { fx } = root();
    const outside = join(fx.root, '..', `kabi-outside-${process.pid}.ko`);
    writeFileSync(outside, externalModule(A, { name: 'out', versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'] }));
    mkdirSync(fx.path(`/lib/modules/${A}/extra/o`));
    const link = fx.path(`/lib/modules/${A}/extra/o/out.ko`);
    symlinkSync(outside, link);
    const r = await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', link]);
    expect(r.status).toBe(2);
    expect(r.err).toContain(`kabi link: ${link}: no such module file under ${fx.root}; nothing was changed`);
    expect(weakLinks(fx.root, B)).toEqual({});
    const missing = await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', fx.path(`/lib/modules/${A}/extra/none.ko`)]);
    expect(missing.status).toBe(2);
    expect(missing.err).toMatch(/none\.ko: no such module file/);
    const corrupt = fx.write(`/lib/modules/${A}/extra/bad.ko`, 'garbage');
    const bad = await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', corrupt]);
    expect(bad.status).toBe(2);
    expect(bad.err).toContain(`kabi link: ${corrupt}: `);
  });

  it('a module path outside the root is the installed system\'s path: found (and judged) inside the root', async () => {
    const { fx } = root();
    fx.write('/opt/vendor/drv2.ko', externalModule(A, { name: 'drv2', versions: [LAYOUT, PRINTK], undefinedSymbols: ['printk'] }));
    // Given as the system spells it (not under the root on this host).
    const r = await kabi(['link', '--root', fx.root, '--add', '--no-initramfs', '/opt/vendor/drv2.ko']);
    expect(r.status, r.err).toBe(0);
    expect(weakLinks(fx.root, B)).toEqual({ 'opt/vendor/drv2.ko': '/opt/vendor/drv2.ko' });
  });
});

describe('what kabi did not make', () => {
  it('a regular file where a link would go is left alone: that kernel is left as it was (status 1), the others are done', async () => {
    const { fx, m } = root();
    addKernel(fx, { release: '5.14.0-300.el9.x86_64', symvers: 'boot-gz', vmlinux: [PRINTK], config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11"' }, dirs: ['weak-updates'] });
    const file = fx.path(`/lib/modules/${B}/weak-updates/drv.ko`);
    writeFileSync(file, 'an admin\'s own copy');
    const r = await wm(['--basedir', fx.root, '--add-modules', '--no-initramfs'], `${m}\n`);
    expect(r.status).toBe(1);
    expect(r.err).toContain(`weak-modules: kernel ${B} left as it was: ${file}: is a file, not a link kabi made (refusing to replace it)`);
    expect(readFileSync(file, 'utf8')).toBe('an admin\'s own copy');
    expect(weakLinks(fx.root, '5.14.0-300.el9.x86_64')).toEqual({ 'drv.ko': `/lib/modules/${A}/extra/drv.ko` });
  });
});
