import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDepmod } from '../../src/depmod/index.js';
import { KVER, kmodDepmod, mod, OUTPUTS, Tree } from '../depmod/fixture.js';
import { expectBounded, runBin, snapshot } from './hostile-helpers.js';

// Issue 14: a link in the module tree whose target is absolute names a path of the host to
// kmod's `depmod -b ROOT` (the kernel follows it there) and a path inside ROOT to the system
// installed there. kabi does each where it belongs: `kabi depmod -b` as kmod does, byte for
// byte; --root/--basedir (weak-modules, kabi link, the library's default) as the installed
// system sees it. Either way nothing outside the root is written.

const cleanup: string[] = [];
afterAll(() => {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

/** A tree whose weak-updates/foo.ko links to an absolute path that exists both on the host and inside the root, as different modules. */
function twoWorlds() {
  const outside = mkdtempSync(join(tmpdir(), 'kabi-outside-'));
  const t = new Tree();
  cleanup.push(outside, t.root);
  const target = join(outside, 'foo.ko');
  writeFileSync(target, mod('foo', { exports: ['host_side'], aliases: ['host:foo'] }));
  t.write('extra/base.ko', mod('base', { exports: ['root_base'] }));
  // The same absolute path inside the root: a different module, needing base.
  const inRoot = join(t.root, target);
  mkdirSync(join(inRoot, '..'), { recursive: true });
  writeFileSync(inRoot, mod('foo', { exports: ['root_side'], needs: ['root_base'], aliases: ['root:foo'] }));
  t.link('weak-updates/foo.ko', target);
  writeFileSync(t.path('modules.order'), 'extra/base.ko\n');
  return { t, outside, target, inRoot };
}

describe('an absolute link target in the module tree', () => {
  it('kabi depmod -b follows it on the host, byte for byte as kmod’s depmod -b', () => {
    const { t, outside } = twoWorlds();
    const before = snapshot(outside);
    const kmod = kmodDepmod(t);
    expect(kmod.status).toBe(0);
    const expected = kmod.outputs;
    for (const f of OUTPUTS) rmSync(t.path(f), { force: true });
    const r = runBin('kabi', ['depmod', '-b', t.root, KVER]);
    expectBounded(r, 'kabi depmod -b');
    expect(r.status, r.stderr).toBe(0);
    const got = t.outputs();
    for (const f of OUTPUTS) expect(got.get(f)?.equals(expected.get(f)!), f).toBe(true);
    expect(readFileSync(t.path('modules.symbols'), 'latin1')).toMatch(/host_side/);
    expect(snapshot(outside)).toEqual(before);
  });

  it('as the installed system sees it (the library default, --root/--basedir), it is followed inside the root', async () => {
    const { t, outside, target } = twoWorlds();
    const before = snapshot(outside);
    const r = await runDepmod({ root: t.root, release: KVER, configRoot: '/', externalRoot: '/' });
    expect(r.status).toBe(0);
    const ours = t.outputs();
    expect(readFileSync(t.path('modules.symbols'), 'latin1')).toMatch(/root_side/);
    expect(readFileSync(t.path('modules.dep'), 'latin1')).toContain('weak-updates/foo.ko: extra/base.ko');
    // The oracle: kmod's depmod -b on the same tree with the link made relative, so that the
    // host's kernel follows it to the same file inside the root, as a chroot would.
    const oracle = t.clone();
    cleanup.push(oracle.root);
    rmSync(oracle.path('weak-updates/foo.ko'));
    symlinkSync(relative(oracle.path('weak-updates'), join(oracle.root, target)), oracle.path('weak-updates/foo.ko'));
    for (const f of OUTPUTS) rmSync(oracle.path(f), { force: true });
    const kmod = kmodDepmod(oracle);
    expect(kmod.status).toBe(0);
    for (const f of OUTPUTS) expect(ours.get(f)?.equals(kmod.outputs.get(f)!), f).toBe(true);
    expect(snapshot(outside)).toEqual(before);
  });
});
