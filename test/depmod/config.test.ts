import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDepmodConfig } from '../../src/depmod/config.js';
import { both, mod, outputDiff, Tree } from './fixture.js';

// Which file wins for a module name, and what depmod says about its configuration, decided
// by kmod's depmod -C on the same tree: kabi must agree file for file and message for message.

const made: string[] = [];
const trees: Tree[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
  for (const t of trees) t.destroy();
});

/** A depmod.d file outside the tree (the same path for both runs, so messages match). */
function conf(text: string, name = 'test.conf'): string {
  const dir = mkdtempSync(join(tmpdir(), 'kabi-depmod-conf-'));
  made.push(dir);
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function tree(): Tree {
  const t = new Tree();
  trees.push(t);
  return t;
}

/** Both depmods with -C; their outputs and messages must be the same. */
async function agree(t: Tree, config: string | string[] | undefined): Promise<string> {
  const paths = config === undefined ? [] : Array.isArray(config) ? config : [config];
  const { kmod, kabi } = await both(
    t,
    paths.flatMap((c) => ['-C', c]),
    paths.length ? { configPaths: paths } : {},
  );
  expect(kmod.status).toBe(0);
  expect(kabi.status).toBe(kmod.status);
  expect(outputDiff(kmod, kabi)).toEqual([]);
  expect(kabi.stderr).toBe(kmod.stderr);
  return kmod.outputs.get('modules.dep')!.toString('latin1');
}

describe('depmod.d search, override, external, exclude (against kmod -C)', () => {
  const dupTree = () =>
    tree()
      .write('kernel/drivers/x.ko', mod('x', { aliases: ['kernel-x'] }))
      .write('updates/x.ko', mod('x', { aliases: ['updates-x'] }))
      .write('extra/x.ko', mod('x', { aliases: ['extra-x'] }))
      .write('weak-updates/y.ko', mod('y'))
      .write('kernel/y.ko', mod('y'))
      .write('modules.order', 'kernel/drivers/x.ko\nkernel/y.ko\n')
      .write('modules.builtin', '');

  it.each([
    ['search updates extra built-in\n'],
    ['search extra built-in updates\n'],
    ['search built-in\n'],
    ['search weak-updates built-in extra\n'],
    ['search extra\nsearch updates\n'],
    ['# only a comment\n'],
  ])('%j picks the same files', async (text) => {
    const dep = await agree(dupTree(), conf(text));
    expect(dep.split('\n').filter((l) => l !== '')).toHaveLength(2);
  });

  it('with no configuration updates/ wins and equally ranked files keep the first one scanned', async () => {
    await agree(dupTree(), []);
  });

  it('a search entry matches a whole directory name only, spelled exactly', async () => {
    const t = tree()
      .write('kernel/a/dummy.ko', mod('dummy'))
      .write('updates2/dummy.ko', mod('dummy'))
      .write('xupdates/dummy2.ko', mod('dummy2'))
      .write('kernel/dummy2.ko', mod('dummy2'))
      .write('modules.builtin', '');
    for (const text of ['search updates built-in\n', 'search xupdate built-in\n', 'search xupdates/ built-in\n', 'search xupdates built-in\n', 'search /updates2 built-in\n']) {
      await agree(t, conf(text));
    }
  });

  it('two files under the same search directory: the later scanned wins (kmod’s else-if)', async () => {
    const t = tree().write('updates/a/x.ko', mod('x', { aliases: ['a'] })).write('updates/b/x.ko', mod('x', { aliases: ['b'] })).write('kernel/x.ko', mod('x'));
    await agree(t, conf('search updates built-in\n'));
    await agree(t, conf('search built-in updates\n'));
  });

  it('override takes a module from a subdirectory; the last matching line is tried first', async () => {
    const t = tree().write('kernel/x.ko', mod('x')).write('extra/x.ko', mod('x')).write('vendor/x.ko', mod('x')).write('extra/sub/x.ko', mod('x')).write('kernel/foo-bar.ko', mod('foo_bar')).write('extra/foo-bar.ko', mod('foo_bar'));
    await agree(t, conf('override x * extra\n'));
    await agree(t, conf('override x * extra\noverride x * vendor\n'));
    await agree(t, conf('override x 6\\.1\\..* vendor\noverride x ^5 extra\n'));
    await agree(t, conf('override x * extra/sub\n'));
    // Overrides compare the file's own spelling: foo-bar, not foo_bar.
    await agree(t, conf('override foo_bar * extra\n'));
    await agree(t, conf('override foo-bar * extra\n'));
  });

  it('external directories are scanned last configured first and ranked by where `external` stands', async () => {
    const ext1 = mkdtempSync(join(tmpdir(), 'kabi-depmod-ext1-'));
    const ext2 = mkdtempSync(join(tmpdir(), 'kabi-depmod-ext2-'));
    made.push(ext1, ext2);
    writeFileSync(join(ext1, 'x.ko'), mod('x', { aliases: ['ext1'] }));
    writeFileSync(join(ext2, 'x.ko'), mod('x', { aliases: ['ext2'] }));
    writeFileSync(join(ext2, 'only2.ko'), mod('only2', { exports: ['only2_fn'] }));
    const t = tree().write('kernel/x.ko', mod('x')).write('kernel/user.ko', mod('user', { needs: ['only2_fn'] }));
    for (const search of ['search external built-in', 'search built-in external', 'search external', 'search built-in', '']) {
      await agree(t, conf(`${search}\nexternal * ${ext1}\nexternal * ${ext2}\n`));
      await agree(t, conf(`${search}\nexternal * ${ext2}\nexternal * ${ext1}\n`));
    }
    // A kernel-version pattern that does not match, and a missing directory (reported, skipped).
    await agree(t, conf(`search external built-in\nexternal ^5\\. ${ext1}\nexternal * ${ext2}/missing\n`));
  });

  it('exclude skips directories and files by exact name at any depth', async () => {
    const t = tree().write('kernel/a/x.ko', mod('x')).write('extra/x.ko', mod('x')).write('kernel/skip/y.ko', mod('y')).write('kernel/z.ko', mod('z')).write('kernel/sub/z2.ko', mod('z2'));
    for (const text of ['exclude skip\n', 'exclude extra skip\n', 'exclude z.ko\n', 'exclude kernel/\n', 'exclude sub\nexclude a\n']) await agree(t, conf(text));
  });

  it('bad lines are reported with the line number of their last physical line and skipped', async () => {
    const t = tree().write('kernel/x.ko', mod('x')).write('updates/x.ko', mod('x'));
    await agree(t, conf('search \\\n  built-in \\\n updates\nfoo bar\n  # indented is not a comment\noverride x\nexternal *\ninclude /etc/elsewhere\nmake_map_files\nsearch updates # trailing words are search entries\n'));
  });

  it('-C takes directories (only *.conf, sorted, the first of a name wins) and files', async () => {
    const d1 = mkdtempSync(join(tmpdir(), 'kabi-depmod-c1-'));
    const d2 = mkdtempSync(join(tmpdir(), 'kabi-depmod-c2-'));
    made.push(d1, d2);
    writeFileSync(join(d1, 'b.conf'), 'search built-in\n');
    writeFileSync(join(d2, 'b.conf'), 'search updates\n');
    writeFileSync(join(d2, 'a.conf'), 'bogus line\n');
    writeFileSync(join(d2, 'c.notconf'), 'search updates\n');
    writeFileSync(join(d2, '.hidden.conf'), 'search updates\n');
    mkdirSync(join(d1, 'z.conf'));
    const t = tree().write('kernel/x.ko', mod('x')).write('updates/x.ko', mod('x'));
    await agree(t, [d1, d2]);
    await agree(t, [d2, d1]);
    await agree(t, [join(d2, 'b.conf'), d1]);
  });
});

describe('parseDepmodConfig', () => {
  it('keeps paths as written and matches kernel versions as unanchored extended regexes', () => {
    const c = parseDepmodConfig([{ file: 'f', text: 'search updates/ built-in external\noverride m 6\\.1 extra\noverride n ^5 extra\nexternal (6|7)\\. /opt/mods\nexclude a b\n' }], '6.1.0-9-amd64');
    expect(c.search).toEqual([{ kind: 'dir', path: 'updates/' }, { kind: 'built-in' }, { kind: 'external' }]);
    expect(c.overrides).toEqual([{ modname: 'm', subdir: 'extra' }]);
    expect(c.externals).toEqual(['/opt/mods']);
    expect(c.excludes).toEqual(['a', 'b']);
    expect(c.messages).toEqual([]);
  });
});
