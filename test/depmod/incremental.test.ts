import { existsSync, mkdtempSync, readlinkSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatDepmodMessage, kmodFlavor, runDepmod, type DepmodChange, type KmodFlavor } from '../../src/depmod/index.js';
import { rng } from '../random.js';
import { both, KVER, mod, MODDIR, outputDiff, Tree, type Run } from './fixture.js';

// An incremental update (only the changed paths looked at, everything else from the cache)
// must give exactly what a full run gives, whatever the sequence of changes. Random
// sequences of weak-updates link and extra/ module additions and removals, seeded; a
// failure names its seed and step. At the end of each sequence kmod's depmod checks the
// full run itself.

const trees: Tree[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const t of trees) t.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const IN_TREE = 12;
const EXTRA = 10;

/** A kernel tree: in-tree modules in a chain of exports, and the extra/ modules that could be added. */
function baseTree(): Tree {
  const t = new Tree();
  trees.push(t);
  const order: string[] = [];
  for (let i = 0; i < IN_TREE; i++) {
    const rel = `kernel/drivers/k${i}.ko`;
    t.write(rel, mod(`k${i}`, { exports: [`k${i}_fn`], needs: i > 0 ? [`k${Math.floor(i / 2)}_fn`] : [], aliases: [`k-alias-${i}`] }));
    order.push(rel);
  }
  t.write('modules.order', order.join('\n') + '\n').write('modules.builtin', '');
  return t;
}

/** extra/ module i: needs in-tree and other extra exports, some override in-tree names. */
function extraModule(i: number, r: () => number): { name: string; bytes: Uint8Array } {
  const name = i % 4 === 0 ? `k${i % IN_TREE}` : `e${i}`;
  // Every fourth needs nothing: coming and going alone, it leaves every other list as it was.
  const needs = i % 4 === 3 ? [] : [`k${Math.floor(r() * IN_TREE)}_fn`];
  if (i > 1 && i % 4 !== 3 && r() < 0.5) needs.push(`e${i - 1}_fn`);
  // Some carry what the per-module text files and their messages are made of.
  const aliases = [`e-alias-${i}`, `pci:v0000${i}d*`];
  if (i % 3 === 1) aliases.push(`devname:dev${i}`, `char-major-10-${i}`);
  if (i % 5 === 2) aliases.push(`devname:nomajor${i}`, `bad[alias${i}`);
  const modinfo: [string, string][] = i % 2 === 0 ? [['softdep', `pre: k${i % IN_TREE}`], ['weakdep', `k${(i + 1) % IN_TREE}`]] : [];
  return { name, bytes: mod(name, { exports: [`e${i}_fn`, ...(r() < 0.3 ? [`k${Math.floor(r() * IN_TREE)}_fn`] : [])], needs, aliases, modinfo }) };
}

const sys = (rel: string) => `/${MODDIR}/${rel}`;

async function fullRun(t: Tree, configPaths: string[], flavor: { kmod?: KmodFlavor } = {}): Promise<Run> {
  const r = await runDepmod({ root: t.root, release: KVER, configRoot: '/', configPaths, cache: false, write: false, ...flavor });
  return { status: r.status, stdout: r.stdout, stderr: r.messages.map(formatDepmodMessage).join(''), outputs: new Map(r.files.map((f) => [f.name, Buffer.from(f.data)])) };
}

describe('incremental depmod equals a full run', () => {
  const configs: [string, string, KmodFlavor?][] = [
    ['default configuration', ''],
    ['RHEL search order', 'search updates extra built-in weak-updates\n'],
    ['SUSE search order', 'search updates extra weak-updates built-in\n'],
    // Pre-order indexes and modules.weakdep: only compared with kabi's own full run.
    ['kmod 34', 'search updates extra built-in weak-updates\n', kmodFlavor(34)],
  ];
  for (const [what, text, kmod] of configs) {
    const flavor = kmod ? { kmod } : {};
    for (const seed of [1, 2, 3]) {
      it(`${what}, seed ${seed}`, async () => {
        let configPaths: string[] = [];
        if (text) {
          const d = mkdtempSync(join(tmpdir(), 'kabi-depmod-conf-'));
          dirs.push(d);
          writeFileSync(join(d, 'x.conf'), text);
          configPaths = [join(d, 'x.conf')];
        }
        const r = rng(seed * 7919 + text.length);
        const t = baseTree();
        const extras = Array.from({ length: EXTRA }, (_, i) => extraModule(i, r));
        const first = await runDepmod({ root: t.root, release: KVER, configRoot: '/', configPaths, ...flavor });
        expect(first.status).toBe(0);
        // A second full run takes its unchanged outputs as they are; the state must still describe them.
        const again = await runDepmod({ root: t.root, release: KVER, configRoot: '/', configPaths, ...flavor });
        expect(again.files.filter((f) => f.reused).length).toBeGreaterThan(0);
        const steps = 25;
        // After a failed run (a dependency cycle) the outputs lag behind the tree: the next
        // run must not trust its cache for listings, and falls back to a full one.
        let previousFailed = false;
        for (let step = 0; step < steps; step++) {
          const where = `seed ${seed}, step ${step}`;
          const changes: DepmodChange[] = [];
          const links = existsSync(t.path('weak-updates')) ? readdirSync(t.path('weak-updates')) : [];
          const present = existsSync(t.path('extra')) ? readdirSync(t.path('extra')) : [];
          const pick = Math.floor(r() * 4);
          if (pick === 0 || pick === 1) {
            // Add a link to an extra module (or to an in-tree one, which then ties with it).
            const toExtra = present.length > 0 && r() < 0.8;
            const target = toExtra ? `../extra/${present[Math.floor(r() * present.length)]}` : `../kernel/drivers/k${Math.floor(r() * IN_TREE)}.ko`;
            const name = `${toExtra ? target.slice('../extra/'.length, -3) : target.slice('../kernel/drivers/'.length, -3)}${r() < 0.3 ? '-dup' : ''}.ko`;
            if (!links.includes(name)) {
              t.link(`weak-updates/${name}`, target);
              changes.push({ kind: 'added', path: sys(`weak-updates/${name}`) });
            }
          } else if (pick === 2 && links.length > 0) {
            const name = links[Math.floor(r() * links.length)]!;
            t.remove(`weak-updates/${name}`);
            changes.push({ kind: 'removed', path: sys(`weak-updates/${name}`) });
          } else {
            const i = Math.floor(r() * EXTRA);
            const file = `extra/${extras[i]!.name}-${i}.ko`;
            if (existsSync(t.path(file))) {
              t.remove(file);
              changes.push({ kind: 'removed', path: sys(file) });
              // Links to it now dangle: they changed too.
              for (const l of links) if (readlinkSync(t.path(`weak-updates/${l}`)) === `../${file}`) changes.push({ kind: 'changed', path: sys(`weak-updates/${l}`) });
            } else {
              t.write(file, extras[i]!.bytes);
              changes.push({ kind: 'added', path: sys(file) });
            }
          }
          const inc = await runDepmod({ root: t.root, release: KVER, configRoot: '/', configPaths, changes, ...flavor });
          expect(inc.stats.incremental, where).toBe(!previousFailed);
          // The outputs were patched, not rendered anew, unless the tree has a cycle (left to the full path).
          if (inc.status === 0) expect(inc.stats.patched, where).toBe(!previousFailed);
          if (!previousFailed) expect(inc.stats.parsed, where).toBeLessThanOrEqual(changes.length);
          previousFailed = inc.status !== 0;
          const incRun: Run = { status: inc.status, stdout: inc.stdout, stderr: inc.messages.map(formatDepmodMessage).join(''), outputs: new Map(inc.files.map((f) => [f.name, Buffer.from(f.data)])) };
          const full = await fullRun(t, configPaths, flavor);

          expect(incRun.status, where).toBe(full.status);
          expect(outputDiff(full, incRun), where).toEqual([]);
          expect(incRun.stderr, where).toBe(full.stderr);
        }
        // The full run itself is what kmod writes.
        if (kmod) return;
        const oracle = await both(t, configPaths.flatMap((c) => ['-C', c]), { configPaths });
        expect(outputDiff(oracle.kmod, oracle.kabi), `seed ${seed}`).toEqual([]);
        expect(oracle.kabi.stderr).toBe(oracle.kmod.stderr);
      });
    }
  }
});

describe('an incremental update does not trust what it cannot vouch for', () => {
  it('an unreported addition or removal is seen through the directory’s identity', async () => {
    const t = baseTree();
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    t.write('extra/silent.ko', mod('silent', { exports: ['silent_fn'], aliases: ['silent'] }));
    t.write('extra/told.ko', mod('told', { needs: ['silent_fn'] }));
    const inc = await runDepmod({ root: t.root, release: KVER, configRoot: '/', changes: [{ kind: 'added', path: sys('extra/told.ko') }] });
    const full = await fullRun(t, []);
    expect(inc.stats.incremental).toBe(true);
    expect(outputDiff(full, { status: 0, stdout: '', stderr: '', outputs: new Map(inc.files.map((f) => [f.name, Buffer.from(f.data)])) })).toEqual([]);
    expect(inc.files.find((f) => f.name === 'modules.dep')!.data.toString()).toContain('extra/told.ko: extra/silent.ko');
  });

  it('outputs rewritten by someone else (kmod’s depmod) make the next run a full one', async () => {
    const t = baseTree();
    await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    t.write('kernel/drivers/k3.ko', mod('k3', { exports: ['k3_fn', 'new_fn'] })); // changed in place, not reported
    const { kmod } = await both(t);
    expect(kmod.status).toBe(0);
    for (const [name, data] of kmod.outputs) if (data) writeFileSync(t.path(name), data);
    t.write('extra/user.ko', mod('user', { needs: ['new_fn'] }));
    const inc = await runDepmod({ root: t.root, release: KVER, configRoot: '/', changes: [{ kind: 'added', path: sys('extra/user.ko') }] });
    expect(inc.stats.incremental).toBe(false);
    expect(inc.files.find((f) => f.name === 'modules.dep')!.data.toString()).toContain('extra/user.ko: kernel/drivers/k3.ko');
  });
});
