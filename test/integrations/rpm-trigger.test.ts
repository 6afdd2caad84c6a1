import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { weakLinks } from '../linker/helpers.js';
import { INTEGRATIONS, installedBins, runSh } from './host.js';
import { twoKernelRoot } from './kernels.js';

/*
 * kabi-rpm-trigger as kabi.spec's transaction file triggers run it: `un` before the transaction
 * with the files to be erased on stdin, `in` after it with the files installed, `postun` after it
 * with nothing. (test/hosts/rpm.test.ts runs it under a real rpm.)
 */

const OLD = '5.14.0-70.el9.x86_64';
const NEW = '5.14.0-80.el9.x86_64';
const roots: FixtureRoot[] = [];
const temps: string[] = [];
afterAll(() => {
  for (const fx of roots) rmSync(fx.root, { recursive: true, force: true });
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** /usr/libexec/kabi as kabi.spec installs it. */
function trigger(): string {
  const d = mkdtempSync(join(tmpdir(), 'kabi-libexec-'));
  temps.push(d);
  symlinkSync(join(installedBins(), 'weak-modules'), join(d, 'weak-modules'));
  for (const f of ['kabi-rpm-trigger', 'kabi-defer-initramfs']) copyFileSync(join(INTEGRATIONS, 'rpm', f), join(d, f));
  return join(d, 'kabi-rpm-trigger');
}

describe('kabi-rpm-trigger', () => {
  it('in links the out-of-tree modules installed; un + postun unlink the erased ones; nothing is left in /run', () => {
    const { fx, drv } = twoKernelRoot({ symvers: 'boot-gz' }, OLD, NEW);
    roots.push(fx);
    const prog = trigger();
    const files = `${drv}\n/lib/modules/${OLD}/kernel/fs/other.ko\n/lib/modules/${OLD}/modules.order\n`;
    const inRun = runSh([prog, 'in'], { KABI_ROOT: fx.root }, files);
    expect(inRun, inRun.stderr).toMatchObject({ status: 0 });
    expect(Object.keys(weakLinks(fx.root, NEW))).toEqual(['drv/drv.ko']);

    expect(runSh([prog, 'un'], { KABI_ROOT: fx.root }, `${drv}\n`)).toMatchObject({ status: 0 });
    expect(Object.keys(weakLinks(fx.root, NEW))).toEqual(['drv/drv.ko']); // still there before the erase
    rmSync(fx.path(drv));
    const post = runSh([prog, 'postun'], { KABI_ROOT: fx.root });
    expect(post, post.stderr).toMatchObject({ status: 0 });
    expect(weakLinks(fx.root, NEW)).toEqual({});
    expect(existsSync(fx.path('/run/kabi'))).toBe(false);
  });

  it('never fails the transaction: a corrupt module is a warning, the status 0', () => {
    const { fx } = twoKernelRoot({ symvers: 'boot-gz' }, OLD, NEW);
    roots.push(fx);
    const bad = `/lib/modules/${OLD}/extra/bad/bad.ko`;
    mkdirSync(fx.path(`/lib/modules/${OLD}/extra/bad`), { recursive: true });
    writeFileSync(fx.path(bad), Buffer.from('\x7fELF garbage'));
    const r = runSh([trigger(), 'in'], { KABI_ROOT: fx.root }, `${bad}\n`);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/bad\.ko/);
  });
});
