import { mkdirSync, symlinkSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDepmodConfig } from '../../src/depmod/config.js';
import { nodeFs } from '../../src/fs.js';
import { scanModuleFiles, SCAN_LIMITS } from '../../src/kernel/module-tree.js';
import { chainTree, expectSameAsFull, sys, update } from '../depmod/cache-faults.js';
import { KVER, mod, MODDIR, Tree } from '../depmod/fixture.js';

// Issue 12 item 7: directory symlink loops (`extra/loop -> .` twice) made the scan
// exponential; kmod's depmod hangs on them too. A link back to a directory the walk is
// inside is skipped with a message, in the full scan and in an incremental run alike.

const trees: Tree[] = [];
afterAll(() => trees.forEach((t) => t.destroy()));
const config = parseDepmodConfig([], KVER);

async function scan(t: Tree) {
  const messages: string[] = [];
  const files = await scanModuleFiles(nodeFs, t.root, `/${MODDIR}`, config, { onMessage: (m) => messages.push(m) });
  return { paths: files.map((f) => f.path.slice(MODDIR.length + 2)).sort(), messages };
}

describe('directory loops in a scan', () => {
  it('links to the directory itself, to one above and to the module directory are each skipped once', async () => {
    const t = chainTree(trees);
    t.write('extra/a.ko', mod('a'));
    t.link('extra/loop', '.').link('extra/loop2', '.').link('extra/up', '..').link('extra/top', `/${MODDIR}`);
    const { paths, messages } = await scan(t);
    expect(paths.filter((p) => p.startsWith('extra/'))).toEqual(['extra/a.ko']);
    expect(messages.sort()).toEqual(['loop', 'loop2', 'top', 'up'].map((n) => `not scanning /${MODDIR}/extra/${n}: a symbolic link loop (it leads back to a directory above it)`).sort());
  });

  it('two directories linking to each other: each is scanned once through the other', async () => {
    const t = chainTree(trees);
    t.write('extra/a/x.ko', mod('x')).write('extra/b/y.ko', mod('y'));
    t.link('extra/a/to-b', '../b').link('extra/b/to-a', '../a');
    const { paths, messages } = await scan(t);
    expect(paths.filter((p) => p.startsWith('extra/'))).toEqual(['extra/a/to-b/y.ko', 'extra/a/x.ko', 'extra/b/to-a/x.ko', 'extra/b/y.ko']);
    expect(messages).toHaveLength(2);
  });

  it('a directory reached twice without a loop is scanned both times, as depmod does', async () => {
    const t = chainTree(trees);
    t.write('extra/shared/s.ko', mod('s'));
    t.link('updates/one', '../extra/shared').link('updates/two', '/' + MODDIR + '/extra/shared');
    const { paths, messages } = await scan(t);
    expect(paths.filter((p) => p.includes('s.ko'))).toEqual(['extra/shared/s.ko', 'updates/one/s.ko', 'updates/two/s.ko']);
    expect(messages).toEqual([]);
  });

  it('links fanning out over and over stop at the scan limit with a typed error', async () => {
    const t = chainTree(trees);
    for (let level = 0; level < 8; level++) {
      mkdirSync(t.path(`extra/fan/l${level}`), { recursive: true });
      for (let i = 0; i < 5; i++) symlinkSync(`../l${level + 1}`, t.path(`extra/fan/l${level}/n${i}`));
    }
    mkdirSync(t.path('extra/fan/l8'));
    await expect(scan(t)).rejects.toMatchObject({ code: 'LIMIT', file: `/${MODDIR}`, detail: expect.stringContaining(`${SCAN_LIMITS.directories} directories`) });
  });

  it('an incremental depmod run over a tree with loops gives what a full run gives', async () => {
    const t = chainTree(trees);
    t.write('extra/a/x.ko', mod('x', { exports: ['x_fn'] }));
    t.link('extra/a/loop', '.').link('extra/a/up', '..').link('extra/b', 'a');
    await update(t, undefined);
    t.write('extra/a/y.ko', mod('y', { needs: ['x_fn'] }));
    const { run, r } = await update(t, [{ kind: 'added', path: sys('extra/a/y.ko') }]);
    expect(r.stats.incremental).toBe(true);
    await expectSameAsFull(t, run);
    expect(run.stderr).toMatch(/extra\/a\/loop: a symbolic link loop/);
    // A link that now closes a loop, its directory otherwise unchanged.
    t.remove('extra/b').link('extra/b', '.');
    const again = await update(t, []);
    await expectSameAsFull(t, again.run);
  });
});
