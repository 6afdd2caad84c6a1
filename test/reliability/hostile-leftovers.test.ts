import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { CACHE_DIR, DEPMOD_OUTPUTS, LEGACY_CACHE_FILE } from '../../src/depmod/index.js';
import { expectBounded, leftovers, runBin } from './hostile-helpers.js';

// Issue 11 item 3: kabi's depmod cache kept a removed kernel's module directory alive (no
// package manager's removal path knows the file), and tools then counted a phantom kernel.
// The cache now lives in /var/cache/kabi/depmod/<release> and goes with its kernel; a
// directory that holds no kernel is never an installed kernel.

const A = '5.14.0-100.el9.x86_64';
const B = '5.14.0-200.el9.x86_64';
const roots: FixtureRoot[] = [];
afterAll(() => roots.forEach((fx) => rmSync(fx.root, { recursive: true, force: true })));

function system(): FixtureRoot {
  const fx = makeRoot('kabi-leftovers-');
  roots.push(fx);
  for (const release of [A, B]) addKernel(fx, { release, symvers: 'boot-gz', dirs: ['extra', 'weak-updates'] });
  mkdirSync(fx.path('/var/cache'), { recursive: true });
  fx.write(`/lib/modules/${A}/extra/drv.ko`, externalModule(A, { name: 'drv' }));
  return fx;
}

/** What RPM's erase of a kernel removes: the files it owns and its %ghost depmod outputs. */
function eraseKernel(fx: FixtureRoot, release: string): void {
  const dir = fx.path(`/lib/modules/${release}`);
  for (const f of ['kernel', 'modules.order', 'modules.builtin', 'modules.builtin.modinfo', ...DEPMOD_OUTPUTS]) rmSync(`${dir}/${f}`, { recursive: true, force: true });
  for (const f of readdirSync(fx.path('/boot')).filter((n) => n.includes(release))) rmSync(fx.path(`/boot/${f}`));
}

describe('nothing kabi writes outlives its kernel', () => {
  it('the depmod cache is kept outside the module directory and pruned once its kernel is gone', () => {
    const fx = system();
    for (const release of [A, B]) {
      const r = runBin('kabi', ['depmod', '-b', fx.root, release]);
      expectBounded(r, `depmod ${release}`);
      expect(r.status, r.stderr).toBe(0);
      expect(existsSync(fx.path(`/lib/modules/${release}/${LEGACY_CACHE_FILE}`))).toBe(false);
    }
    expect(readdirSync(fx.path(CACHE_DIR)).sort()).toEqual([A, B]);

    eraseKernel(fx, B);
    // What is left of B's directory is what its removal does not know: the empty weak-updates/ it
    // is given by the kernel scriptlets, which weak-modules --remove-kernel empties.
    const wm = runBin('weak-modules', ['--basedir', fx.root, '--remove-kernel', B, '--no-initramfs']);
    expectBounded(wm, 'weak-modules --remove-kernel');
    rmSync(fx.path(`/lib/modules/${B}/weak-updates`), { recursive: true, force: true });
    rmSync(fx.path(`/lib/modules/${B}/extra`), { recursive: true, force: true });
    rmdirSync(fx.path(`/lib/modules/${B}`));

    // The next run (any kernel) prunes B's cache.
    const r = runBin('kabi', ['depmod', '-b', fx.root, A]);
    expectBounded(r, 'depmod after the removal');
    expect(readdirSync(fx.path(CACHE_DIR))).toEqual([A]);
    expect(leftovers(fx.root)).toEqual([]);
  });

  it('a removed kernel’s directory that still holds other files is not an installed kernel', () => {
    const fx = system();
    runBin('kabi', ['depmod', '-b', fx.root, B]);
    eraseKernel(fx, B);
    // A kmod package built for B is still installed, and an old kabi's cache is there.
    fx.write(`/lib/modules/${B}/extra/other.ko`, externalModule(B, { name: 'other' }));
    writeFileSync(fx.path(`/lib/modules/${B}/${LEGACY_CACHE_FILE}`), 'old');
    const r = runBin('kabi', ['status', '--root', fx.root, '--json']);
    expectBounded(r, 'status');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(A);
    expect(r.stdout).not.toContain(`"${B}"`);
    // A run that writes A's outputs removes A's legacy cache, never B's files.
    writeFileSync(fx.path(`/lib/modules/${A}/${LEGACY_CACHE_FILE}`), 'old');
    expectBounded(runBin('kabi', ['depmod', '-b', fx.root, A]), 'depmod');
    expect(existsSync(fx.path(`/lib/modules/${A}/${LEGACY_CACHE_FILE}`))).toBe(false);
    expect(readdirSync(fx.path(CACHE_DIR))).toEqual([A]);
  });

  it('a root without /var/cache (a package staging tree) gets no cache at all', () => {
    const fx = system();
    rmSync(fx.path('/var'), { recursive: true });
    const r = runBin('kabi', ['depmod', '-b', fx.root, A]);
    expectBounded(r, 'depmod');
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(fx.path('/var'))).toBe(false);
    expect(existsSync(fx.path(`/lib/modules/${A}/modules.dep`))).toBe(true);
  });
});
