import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { picture } from '../preserve/picture.js';
import { weakLinks } from '../linker/helpers.js';
import { integrationFile, parseIni, runSh } from './host.js';
import { twoKernelRoot } from './kernels.js';

const OLD = '6.9.1-arch1-1';
const NEW = '6.9.2-arch1-1';
const roots: FixtureRoot[] = [];
afterAll(() => {
  for (const fx of roots) rmSync(fx.root, { recursive: true, force: true });
});

interface Hook {
  triggers: Map<string, string[]>;
  action: Map<string, string[]>;
  exec: string;
}

function hook(name: string): Hook {
  const ini = parseIni(integrationFile(`pacman/${name}`));
  const triggers = ini.get('Trigger');
  const action = ini.get('Action');
  if (!triggers || !action) throw new Error(`${name}: no [Trigger] or [Action]`);
  const exec = action.get('Exec');
  expect(exec, `${name} has one Exec`).toHaveLength(1);
  return { triggers, action, exec: exec![0]! };
}

/** As libalpm runs an Exec line (split into words, no shell of its own: ours starts one), with targets on stdin. */
function runHook(h: Hook, env: Record<string, string>, targets: string[] = []) {
  const needsTargets = h.action.has('NeedsTargets');
  return runSh(['-c', h.exec], env, needsTargets ? targets.map((t) => t + '\n').join('') : '');
}

/** What pacman does to the running kernel's package on upgrade: its files go, unowned ones stay. */
function pacmanUpgrade(fx: FixtureRoot, keep: readonly string[]): void {
  const dir = fx.path(`/usr/lib/modules/${OLD}`);
  const walk = (rel: string) => {
    for (const n of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${n.name}` : n.name;
      if (n.isDirectory()) {
        walk(r);
        if (readdirSync(join(dir, r)).length === 0) rmSync(join(dir, r), { recursive: true });
      } else if (!keep.includes(r)) rmSync(join(dir, r));
    }
  };
  walk('');
}

describe('pacman hooks', () => {
  it('all trigger on kernel images and run in the order the transaction needs', () => {
    const names = ['10-kabi-preserve-save.hook', '60-kabi-remove-kernel.hook', '80-kabi-add-kernel.hook', '90-kabi-preserve-restore.hook'];
    for (const n of names) {
      const h = hook(n);
      expect(h.triggers.get('Type')).toEqual(['Path']);
      expect(h.triggers.get('Target')).toEqual(['usr/lib/modules/*/vmlinuz']);
    }
    expect(hook(names[0]!).action.get('When')).toEqual(['PreTransaction']);
    expect(hook(names[1]!).action.get('When')).toEqual(['PreTransaction']);
    expect(hook(names[2]!).action.get('When')).toEqual(['PostTransaction']);
    expect(hook(names[3]!).action.get('When')).toEqual(['PostTransaction']);
    // Linking happens after dkms-install (70) and before mkinitcpio packs the image (90).
    expect(names[2]! > '70-dkms-install.hook' && names[2]! < '90-mkinitcpio-install.hook').toBe(true);
  });

  it('preserve: the running kernel’s modules survive the upgrade that deletes them', () => {
    const { fx } = twoKernelRoot({ usrMerged: true, symvers: 'arch-build', compression: 'zst' }, OLD, NEW);
    roots.push(fx);
    fx.write(`/usr/lib/modules/${OLD}/modules.alias`, 'generated\n');
    const dir = fx.path(`/usr/lib/modules/${OLD}`);
    const before = picture(dir);
    const env = { KABI_ROOT: fx.root, KABI_KERNEL: OLD };
    const save = runHook(hook('10-kabi-preserve-save.hook'), env);
    expect(save, save.stderr).toMatchObject({ status: 0 });
    pacmanUpgrade(fx, ['modules.alias']);
    addKernel(fx, { release: '6.9.3-arch1-1', usrMerged: true, symvers: 'none' });
    const restore = runHook(hook('90-kabi-preserve-restore.hook'), env);
    expect(restore, restore.stderr).toMatchObject({ status: 0 });
    expect(picture(dir)).toEqual(before);
  });

  it('add-kernel links into the kernels pacman installed; remove-kernel drops their links', () => {
    const { fx, drv } = twoKernelRoot({ usrMerged: true, symvers: 'arch-build' }, OLD, NEW);
    roots.push(fx);
    const env = { KABI_ROOT: fx.root };
    const add = runHook(hook('80-kabi-add-kernel.hook'), env, [`usr/lib/modules/${NEW}/vmlinuz`]);
    expect(add, add.stderr).toMatchObject({ status: 0 });
    // On a merged-/usr system the module is the same file under /lib/modules and /usr/lib/modules.
    expect(weakLinks(fx.root, NEW)).toEqual({ 'drv/drv.ko': drv.replace(/^\/usr\/lib\//, '/lib/') });
    expect(weakLinks(fx.root, OLD)).toEqual({});
    const rm = runHook(hook('60-kabi-remove-kernel.hook'), env, [`usr/lib/modules/${NEW}/vmlinuz`]);
    expect(rm, rm.stderr).toMatchObject({ status: 0 });
    expect(weakLinks(fx.root, NEW)).toEqual({});
  });
});
