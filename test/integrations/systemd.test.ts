import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, makeRoot, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { PRESERVE_DIR } from '../../src/preserve/layout.js';
import { saveTree } from '../../src/preserve/save.js';
import { integrationFile, parseIni, runSh } from './host.js';

const roots: FixtureRoot[] = [];
afterAll(() => {
  for (const fx of roots) rmSync(fx.root, { recursive: true, force: true });
});
const DAY = 86_400_000;

describe('kabi-preserve-prune.service', () => {
  it('ExecStart prunes the saves of kernels not running and older than four weeks', async () => {
    const unit = parseIni(integrationFile('systemd/kabi-preserve-prune.service'));
    expect(unit.get('Service')?.get('Type')).toEqual(['oneshot']);
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
    const exec = unit.get('Service')?.get('ExecStart');
    expect(exec).toHaveLength(1);

    const fx = makeRoot('kabi-unit-');
    roots.push(fx);
    const [A, B, C] = ['6.9.1-arch1-1', '6.9.2-arch1-1', '6.9.3-arch1-1'];
    for (const r of [A, B, C]) addKernel(fx, { release: r, usrMerged: true, symvers: 'none' });
    await saveTree(A, { root: fx.root, now: new Date(Date.now() - 40 * DAY) });
    await saveTree(B, { root: fx.root, now: new Date(Date.now() - 3 * DAY) });
    await saveTree(C, { root: fx.root, now: new Date(Date.now() - 40 * DAY) });
    // systemd runs ExecStart without a shell; sh -c does the same word splitting for this line.
    const r = runSh(['-c', exec![0]!], { KABI_ROOT: fx.root, KABI_KERNEL: C });
    expect(r, r.stderr).toMatchObject({ status: 0 });
    expect(readdirSync(fx.path(`/usr/lib/modules/${PRESERVE_DIR}`)).filter((n) => !n.startsWith('.')).sort()).toEqual([B, C]);
    // Its start condition names the directory kabi keeps the saves in.
    expect(unit.get('Unit')?.get('ConditionPathIsDirectory')).toContain(`|/usr/lib/modules/${PRESERVE_DIR}`);
  });
});

describe('tmpfiles.d/kabi-preserve.conf', () => {
  it('creates the directory kabi preserve uses, with no age (the running kernel’s save must not age out)', async () => {
    const lines = integrationFile('tmpfiles/kabi-preserve.conf')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'))
      .map((l) => l.trim().split(/\s+/));
    const d = lines.find((l) => l[0] === 'd');
    expect(d?.slice(1)).toEqual([`/usr/lib/modules/${PRESERVE_DIR}`, '0755', 'root', 'root', '-']);
    expect(lines.find((l) => l[0] === 'x')?.[1]).toBe(d?.[1]);
    for (const l of lines) expect(l[5] ?? '-').toBe('-');

    // Applied as systemd-tmpfiles --root would, then used by a save.
    const fx = makeRoot('kabi-tmpfiles-');
    roots.push(fx);
    addKernel(fx, { release: '6.9.1-arch1-1', usrMerged: true, symvers: 'none' });
    mkdirSync(fx.path(d![1]!), { mode: Number.parseInt(d![2]!, 8) });
    const s = await saveTree('6.9.1-arch1-1', { root: fx.root });
    expect(s.savedTo).toBe(`${d![1]}/6.9.1-arch1-1`);
    expect(existsSync(fx.path(`${d![1]}/6.9.1-arch1-1/manifest.json`))).toBe(true);
    expect(statSync(fx.path(d![1]!)).mode & 0o777).toBe(0o755);
  });
});
