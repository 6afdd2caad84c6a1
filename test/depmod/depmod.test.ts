import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDepmod } from '../../src/depmod/index.js';
import { both, KVER, mod, outputDiff, Tree } from './fixture.js';

// Whole depmod runs on fixture trees, each compared with kmod's depmod on the same tree:
// files byte for byte, stderr line for line, exit status.

const trees: Tree[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const t of trees) t.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tree = () => {
  const t = new Tree();
  trees.push(t);
  return t;
};

async function agree(t: Tree, kmodArgs: string[] = [], opts: Parameters<typeof both>[2] = {}) {
  const r = await both(t, kmodArgs, opts);
  expect(r.kabi.status).toBe(r.kmod.status);
  expect(outputDiff(r.kmod, r.kabi)).toEqual([]);
  expect(r.kabi.stderr).toBe(r.kmod.stderr);
  expect(r.kabi.stdout).toBe(r.kmod.stdout);
  return r;
}

describe('module order and dependencies', () => {
  it('orders modules outside modules.order as kmod’s hash table does, and dependency lists topologically', async () => {
    const t = tree();
    const order: string[] = [];
    // A chain and a diamond among listed modules, and 60 unlisted ones spread over buckets.
    t.write('kernel/base.ko', mod('base', { exports: ['base_fn', 'base_var'], aliases: ['base-alias'] }));
    t.write('kernel/mid1.ko', mod('mid1', { exports: ['mid1_fn'], needs: ['base_fn'] }));
    t.write('kernel/mid2.ko', mod('mid2', { exports: ['mid2_fn'], needs: ['base_var'] }));
    t.write('kernel/top.ko', mod('top', { needs: ['mid2_fn', 'mid1_fn', 'base_fn'], aliases: ['char-major-10-99', 'devname:topdev'] }));
    order.push('kernel/base.ko', 'kernel/mid1.ko', 'kernel/mid2.ko', 'kernel/top.ko', 'kernel/gone.ko');
    for (let i = 0; i < 60; i++) {
      const needs = i % 3 === 0 ? ['top_fn'] : i % 3 === 1 ? ['mid1_fn', `x${i - 1}_fn`] : [`x${i - 2}_fn`];
      t.write(`extra/sub${i % 4}/x${i}.ko`, mod(`x${i}`, { exports: [`x${i}_fn`], needs: i === 0 ? [] : needs, aliases: [`x-alias-${i}`], modinfo: i % 7 === 0 ? [['softdep', `pre: x${i + 1}`]] : [] }));
    }
    t.write('kernel/top2.ko', mod('top2', { exports: ['top_fn'], needs: ['base_fn'] }));
    t.write('modules.order', order.join('\n') + '\n');
    t.write('modules.builtin', 'kernel/drivers/builtin-one.ko\nkernel/two.ko\n');
    t.write('modules.builtin.modinfo', Buffer.from('builtin_one.alias=pci:v*d1234*\0builtin_one.description=x\0two.alias=two-alias\0two.alias=bad]bracket\0'));
    const r = await agree(t);
    expect(r.kmod.outputs.get('modules.dep')!.toString().split('\n').length).toBeGreaterThan(60);
  });

  it('exports of a later module replace earlier ones, and symbol lookups drop a leading dot', async () => {
    const t = tree()
      .write('kernel/first.ko', mod('first', { exports: ['shared'] }))
      .write('kernel/second.ko', mod('second', { exports: ['shared'] }))
      .write('kernel/user.ko', mod('user', { needs: ['shared', '.second_only'] }))
      .write('kernel/dot.ko', mod('dot', { exports: ['second_only'] }))
      .write('modules.order', 'kernel/second.ko\nkernel/first.ko\nkernel/dot.ko\nkernel/user.ko\n');
    await agree(t);
  });

  it('-e -E, -e -F and -v print what kmod prints', async () => {
    const d = mkdtempSync(join(tmpdir(), 'kabi-depmod-syms-'));
    dirs.push(d);
    const symvers = join(d, 'Module.symvers');
    writeFileSync(
      symvers,
      '0x00000001\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n0x00000002\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000001\tmod_fn\tkernel/m\tEXPORT_SYMBOL\t\nzz\tbadcrc\tvmlinux\tEXPORT_SYMBOL\t\n0x5\tthree_fields\tvmlinux\n0x00000001 spaced vmlinux EXPORT_SYMBOL_GPL\n',
    );
    const map = join(d, 'System.map');
    writeFileSync(map, 'ffffffff81000000 T _text\nffffffff82000000 r __ksymtab_printk\nffffffff82000010 r __ksymtab_spaced\nbroken-line\n');
    const t = tree()
      .write('kernel/m.ko', mod('m', { exports: ['mod_fn'], needs: ['printk', 'spaced', 'three_fields', { name: 'weak_missing', weak: true }, 'missing'], crcs: { printk: 3 } }))
      .write('kernel/n.ko', mod('n', { needs: ['mod_fn', '__this_module', '_GLOBAL_OFFSET_TABLE_', 'TOC.'] }))
      .write('modules.order', 'kernel/m.ko\nkernel/n.ko\n');
    await agree(t, ['-e', '-E', symvers], { errsyms: true, symvers: { path: symvers } });
    await agree(t, ['-e', '-F', map], { errsyms: true, systemMap: { path: map } });
    await agree(t, ['-E', symvers, '-F', map, '-e'], { errsyms: true, symvers: { path: symvers }, systemMap: { path: map } });
    await agree(t, ['-e'], { errsyms: true });
    await agree(t, ['-v'], { verbose: true });
    const missing = await agree(t, ['-E', join(d, 'nope')], { symvers: { path: join(d, 'nope') } });
    expect(missing.kmod.status).toBe(1);
  });

  it('-n writes the text files on stdout and nothing to disk', async () => {
    const t = tree().write('kernel/a.ko', mod('a', { exports: ['a_fn'], aliases: ['a-alias'] })).write('kernel/b.ko', mod('b', { needs: ['a_fn'] }));
    const r = await agree(t, ['-n'], { dryRun: true });
    expect(r.kmod.stdout).toContain('kernel/b.ko: kernel/a.ko');
    expect([...r.kabi.outputs.values()].every((v) => v === undefined)).toBe(true);
  });
});

describe('what depmod does with bad input', () => {
  it('unreadable, truncated, empty and non-ELF modules, dangling links and a directory named .ko', async () => {
    const good = mod('good', { exports: ['good_fn'] });
    const t = tree()
      .write('kernel/good.ko', good)
      .write('extra/trunc.ko', good.subarray(0, 3000))
      .write('extra/junk.ko', 'garbage\n')
      .write('extra/empty.ko', '')
      .write('extra/header-only.ko', good.subarray(0, 64))
      .link('extra/dangle.ko', 'nowhere.ko')
      .link('weak-updates/loop.ko', 'loop.ko')
      .write('extra/dir.ko/inner.ko', mod('inner', { needs: ['good_fn'] }))
      .write('extra/notes.txt', 'not a module')
      .write('extra/old.ko.gz', 'ignored by a kmod built without zlib')
      .write('modules.order', 'kernel/good.ko\nextra/trunc.ko\n');
    await agree(t);
  });

  it('a modules.order whose last line has no newline, and no modules.builtin(.modinfo) at all', async () => {
    const t = tree().write('kernel/a.ko', mod('a')).write('kernel/b.ko', mod('b')).write('modules.order', 'kernel/b.ko\nkernel/a.ko');
    await agree(t);
    t.remove('modules.order');
    await agree(t);
  });

  it('odd modules.builtin lines and modules.builtin.modinfo records', async () => {
    const t = tree()
      .write('kernel/a.ko', mod('a'))
      .write('modules.builtin', 'kernel/x/first.ko\n\n/abs/second.ko\n3rd.ko\nkernel/dashed-name.ko\nkernel/no-extension\nlast.ko')
      .write(
        'modules.builtin.modinfo',
        Buffer.from('m1.alias=a-b[x-y]c\0m1.noequals\0m1.alias=swallowed\0.alias=noname\0m2.alias=\0m2.alias=unterminated]\0m3.file=x\0m4.alias=tail-without-nul'),
      );
    await agree(t);
  });

  it('a devname alias without a device number is reported; the first number-bearing alias wins', async () => {
    const t = tree()
      .write('kernel/a.ko', mod('a', { aliases: ['devname:lonely'] }))
      .write('kernel/b.ko', mod('b', { aliases: ['block-major-8-*', 'char-major-10-x', 'devname:bdev', 'block-major-9-1', 'char-major-1-2'] }))
      .write('kernel/c.ko', mod('c', { aliases: ['char-major- 4-+5', 'devname:cdev'] }));
    await agree(t);
  });

  it('dependency cycles: reported like kmod, exit 1, nothing written', async () => {
    const t = tree()
      .write('kernel/a.ko', mod('a', { exports: ['sa'], needs: ['sb'] }))
      .write('kernel/b.ko', mod('b', { exports: ['sb'], needs: ['sc'] }))
      .write('kernel/c.ko', mod('c', { exports: ['sc'], needs: ['sa'] }))
      .write('kernel/d.ko', mod('d', { needs: ['sa'] }))
      .write('kernel/e.ko', mod('e', { exports: ['se'], needs: ['sf'] }))
      .write('kernel/f.ko', mod('f', { exports: ['sf'], needs: ['se'] }))
      .write('kernel/self.ko', mod('self', { exports: ['s_self'], needs: ['s_self'] }))
      .write('modules.order', 'kernel/a.ko\nkernel/b.ko\nkernel/c.ko\nkernel/d.ko\nkernel/e.ko\nkernel/f.ko\nkernel/self.ko\n');
    const r = await agree(t);
    expect(r.kmod.status).toBe(1);
    expect(r.kmod.stderr).toContain('Cycle detected: a -> b -> c -> a');
    expect([...r.kabi.outputs.values()].every((v) => v === undefined)).toBe(true);
  });

  it('a branch hanging off a cycle (where kmod 30’s reporter runs away) still ends with status 1', async () => {
    // kmod itself is not run here: on this graph its cycle report never terminates.
    const t = tree()
      .write('kernel/a.ko', mod('a', { exports: ['sa'], needs: ['sb'] }))
      .write('kernel/b.ko', mod('b', { exports: ['sb'], needs: ['sa', 'sx'] }))
      .write('kernel/x.ko', mod('x', { exports: ['sx'], needs: ['sz'] }))
      .write('kernel/z.ko', mod('z', { exports: ['sz'] }))
      .write('kernel/c.ko', mod('c', { exports: ['sc'], needs: ['sb', 'sd'] }))
      .write('kernel/d.ko', mod('d', { exports: ['sd'], needs: ['sc'] }))
      .write('modules.order', 'kernel/x.ko\nkernel/z.ko\nkernel/a.ko\nkernel/b.ko\nkernel/c.ko\nkernel/d.ko\n');
    const r = await runDepmod({ root: t.root, release: KVER, configRoot: '/', cache: false });
    expect(r.status).toBe(1);
    const text = r.messages.map((m) => m.text).join('');
    expect(text).toContain('Cycle detected: a -> b -> a');
    expect(text).toMatch(/Found \d+ modules in dependency cycles!/);
    expect(readdirSync(t.path('')).filter((f) => f.startsWith('modules.') && f !== 'modules.order')).toEqual([]);
  });

  it('a missing module directory is fatal, as in depmod', async () => {
    const t = tree();
    rmSync(t.path(''), { recursive: true });
    await agree(t);
  });
});
