import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { depmodCommand } from '../../src/cli/commands/depmod.js';
import { memoryIo } from '../../src/cli/io.js';
import { KVER, mod, OUTPUTS, Tree } from './fixture.js';

// `kabi depmod` takes depmod's options and prints what depmod prints: the same stdout,
// stderr and exit status as /usr/sbin/depmod with the same arguments, run from the same
// directory (relative paths included).

const trees: Tree[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const t of trees) t.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function cli(args: string[], cwd: string) {
  const io = memoryIo({ cwd });
  const status = await depmodCommand.run(args, io);
  return { status, stdout: io.out(), stderr: io.err() };
}

function kmod(args: string[], cwd: string) {
  const r = spawnSync('depmod', args, { cwd, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('kabi depmod (the command)', () => {
  const setup = () => {
    const t = new Tree()
      .write('kernel/a.ko', mod('a', { exports: ['a_fn'], aliases: ['a-alias', 'a-alias'], needs: ['printk'] }))
      .write('kernel/b.ko', mod('b', { needs: ['a_fn', 'gone_fn'] }))
      .write('modules.order', 'kernel/a.ko\nkernel/b.ko\n')
      .write('modules.builtin', '');
    trees.push(t);
    const d = mkdtempSync(join(tmpdir(), 'kabi-depmod-cli-'));
    dirs.push(d);
    writeFileSync(join(d, 'Module.symvers'), '0x00000002\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n');
    writeFileSync(join(d, 'System.map'), '0 r __ksymtab_printk\n');
    return { t, d };
  };

  it.each([
    [['-n']],
    [['-n', '-e', '-E', 'SYMVERS']],
    [['-a', '-n', '-e', '-F', 'MAP']],
    [['-n', '-v']],
    [['-n', '-e']],
    [['-n', '-E', 'MISSING']],
    // depmod's -w (an alias listed twice), -P with a prefix no symbol has, -A with -n (nothing at all).
    [['-w']],
    [['-n', '-P', 'X', '-e', '-E', 'SYMVERS']],
    [['-A', '-n']],
    [['-P', 'XY']],
  ])('%j prints what depmod prints', async (args) => {
    const { t, d } = setup();
    // Relative -b and -E, from the directory above the tree, as a packager would type them.
    const cwd = dirname(t.root);
    const rel = t.root.slice(cwd.length + 1);
    const full = ['-b', rel, ...args.map((a) => (a === 'SYMVERS' ? join(d, 'Module.symvers') : a === 'MAP' ? join(d, 'System.map') : a === 'MISSING' ? join(d, 'nope') : a)), KVER];
    const k = kmod(full, cwd);
    const ours = await cli(full, cwd);
    expect(ours).toEqual(k);
    if (args[0] === '-w') expect(ours.stderr).toContain('duplicate module alias');
  });

  it('writes the files depmod writes, and refuses what depmod refuses', async () => {
    const { t } = setup();
    const cwd = dirname(t.root);
    const k = kmod(['-b', t.root, KVER], cwd);
    const kmodFiles = t.outputs();
    for (const f of OUTPUTS) rmSync(t.path(f), { force: true });
    const ours = await cli(['-b', t.root, KVER], cwd);
    expect(ours.status).toBe(k.status);
    expect(ours.stderr).toBe(k.stderr);
    expect(t.outputs()).toEqual(kmodFiles);

    expect(await cli(['-b', t.root, 'not-a-version'], cwd)).toEqual(kmod(['-b', t.root, 'not-a-version'], cwd));
    const help = await cli(['--help'], cwd);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('-E SYMVERS');
  });
});
