import { existsSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, makeRoot, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { memoryIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { statusCommand } from '../../src/cli/commands/status.js';
import { weakLinks } from '../linker/helpers.js';
import { KFREE, mod } from './fixture.js';

/*
 * The DKMS "module forgotten with its last kernel" problem, as kabi's linker lives it: kernels
 * come and go, modules stay where their packages put them, and links follow.
 */

const A = '5.14.0-100.el9.x86_64';
const B = '5.14.0-200.el9.x86_64';
const C = '5.14.0-300.el9.x86_64';
const roots: FixtureRoot[] = [];
afterAll(() => {
  for (const fx of roots) rmSync(fx.root, { recursive: true, force: true });
});

function kernel(fx: FixtureRoot, release: string) {
  addKernel(fx, { release, symvers: 'boot-gz', vmlinux: [{ symbol: 'kfree', crc: 0x22 }], moduleStructSize: 0x380, config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11.4.1"' } });
}

async function kabi(argv: string[]) {
  const io = memoryIo();
  const code = await main(argv, io);
  if (code !== 0) throw new Error(`kabi ${argv.join(' ')} → ${code}: ${io.err()}`);
  return io.out();
}

async function states(fx: FixtureRoot, store: string): Promise<Record<string, Record<string, string>>> {
  const io = memoryIo();
  await statusCommand.run(['--root', fx.root, '--store', store, '--json'], io);
  const j = JSON.parse(io.out()) as { modules: { name: string; cells: { kernel: string; state: string }[] }[] };
  return Object.fromEntries(j.modules.map((m) => [m.name, Object.fromEntries(m.cells.map((c) => [c.kernel, c.state]))]));
}

const STORE = '/opt/kmods';
const NO_POST = ['--no-depmod', '--no-initramfs'];

/** A and B installed; drv in A's extra/, up in A's updates/, st in a store; all linked into B. */
function lifecycleRoot() {
  const fx = makeRoot('kabi-lifecycle-');
  roots.push(fx);
  kernel(fx, A);
  kernel(fx, B);
  const drv = fx.write(`/lib/modules/${A}/extra/drv/drv.ko`, mod(A, 'drv', KFREE));
  const up = fx.write(`/lib/modules/${A}/updates/up.ko`, mod(A, 'up', KFREE));
  const st = fx.write(`${STORE}/st/1.0/st.ko`, mod(A, 'st', KFREE, { modinfo: [['version', '1.0']] }));
  return { fx, drv, up, st };
}

describe('lifecycle without data loss', () => {
  it('removing a kernel unlinks its modules, never the modules behind the links or a store', async () => {
    const { fx, drv, up, st } = lifecycleRoot();
    await kabi(['link', '--root', fx.root, '--add', ...NO_POST, drv, up, st]);
    expect(Object.keys(weakLinks(fx.root, B)).sort()).toEqual(['drv/drv.ko', 'opt/kmods/st/1.0/st.ko', 'up.ko']);
    const bytes = [drv, up, st].map((p) => readFileSync(p));
    await kabi(['link', '--root', fx.root, '--remove-kernel', B]);
    expect(weakLinks(fx.root, B)).toEqual({});
    expect([drv, up, st].map((p) => readFileSync(p))).toEqual(bytes);
    // Emptied, weak-updates/ goes with the kernel (no package owns it outside RHEL).
    expect(existsSync(fx.path(`/lib/modules/${B}/weak-updates`))).toBe(false);
  });

  it('the kernel a module was built for can go: the links of the others stay and status still sees them', async () => {
    const { fx, drv, up, st } = lifecycleRoot();
    await kabi(['link', '--root', fx.root, '--add', ...NO_POST, drv, up, st]);
    await kabi(['link', '--root', fx.root, '--remove-kernel', A]);
    // The kernel package removes its own files; the kmod packages' modules stay where they are.
    rmSync(fx.path(`/lib/modules/${A}/kernel`), { recursive: true });
    for (const f of [`/boot/symvers-${A}.gz`, `/boot/System.map-${A}`, `/boot/config-${A}`]) rmSync(fx.path(f));
    expect(Object.keys(weakLinks(fx.root, B)).sort()).toEqual(['drv/drv.ko', 'opt/kmods/st/1.0/st.ko', 'up.ko']);
    const s = await states(fx, STORE);
    expect([s.drv![B], s.up![B], s.st![B]]).toEqual(['weak-linked', 'weak-linked', 'weak-linked']);
  });

  it('--remove of a version that is still installed keeps its links (RPM upgrade order)', async () => {
    const { fx, drv, st } = lifecycleRoot();
    await kabi(['link', '--root', fx.root, '--add', ...NO_POST, drv, st]);
    await kabi(['link', '--root', fx.root, '--remove', ...NO_POST, drv, st]);
    expect(Object.keys(weakLinks(fx.root, B)).sort()).toEqual(['drv/drv.ko', 'opt/kmods/st/1.0/st.ko']);
    rmSync(st);
    await kabi(['link', '--root', fx.root, '--remove', ...NO_POST, st]);
    expect(Object.keys(weakLinks(fx.root, B))).toEqual(['drv/drv.ko']);
  });

  it('weak-modules --add-kernel, like the original, relinks only the extra/ modules of other kernels', async () => {
    const { fx, drv } = lifecycleRoot();
    kernel(fx, C);
    await kabi(['weak-modules', '--basedir', fx.root, '--add-kernel', C, '--no-initramfs']);
    expect(weakLinks(fx.root, C)).toEqual({ 'drv/drv.ko': drv.slice(fx.root.length) });
  });

  // kabi link looks further: updates/ (DKMS on Debian/Ubuntu/Arch, SUSE KMPs) and store
  // modules that other kernels link are not forgotten by a new kernel.
  it('a later --add-kernel relinks everything compatible: updates/ and store modules too', async () => {
    const { fx, drv, up, st } = lifecycleRoot();
    await kabi(['link', '--root', fx.root, '--add', ...NO_POST, drv, up, st]);
    kernel(fx, C);
    await kabi(['link', '--root', fx.root, '--add-kernel', C, ...NO_POST]);
    expect(Object.keys(weakLinks(fx.root, C)).sort()).toEqual(['drv/drv.ko', 'opt/kmods/st/1.0/st.ko', 'up.ko']);
  });

  // Linker gap (reported to the lead): --remove-kernel rebuilds weak-updates empty, so a regular
  // module file someone put in weak-updates/ (not a link kabi made) is deleted with the links.
  it('removing a kernel keeps module files that are not links in its weak-updates/', async () => {
    const { fx } = lifecycleRoot();
    const vendor = fx.write(`/lib/modules/${B}/weak-updates/vendor/vendor.ko`, mod(B, 'vendor', KFREE));
    await kabi(['link', '--root', fx.root, '--remove-kernel', B]);
    expect(existsSync(vendor)).toBe(true);
  });
});
