import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { KabiError } from '../../src/errors.js';
import { nodeFs, type KabiFs } from '../../src/fs.js';
import { CACHE_DIR, runDepmod } from '../../src/depmod/index.js';
import { KVER, mod, OUTPUTS, Tree } from './fixture.js';

// All of depmod's files are replaced together or not at all: a failing write, link or
// rename anywhere leaves the previous files as they were and no temporary file behind.

const trees: Tree[] = [];
afterAll(() => {
  for (const t of trees) t.destroy();
});

type Op = 'writeFile' | 'rename' | 'link';

/** node:fs/promises with the n-th call of `op` failing (ENOSPC), counting from 1. */
function faultyFs(op: Op, n: number): KabiFs & { calls: () => number } {
  let calls = 0;
  const fail = () => Object.assign(new Error(`${op}: injected failure`), { code: 'ENOSPC' });
  const wrap = (fn: (...a: never[]) => Promise<unknown>) =>
    (async (...args: never[]) => {
      if (++calls === n) throw fail();
      return fn(...args);
    }) as never;
  return { ...nodeFs, [op]: wrap(nodeFs[op] as never), calls: () => calls };
}

function snapshot(t: Tree): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of OUTPUTS) out.set(f, readFileSync(t.path(f)).toString('base64'));
  return out;
}

const leftovers = (t: Tree) => readdirSync(t.path('')).filter((f) => f.includes('.kabi-tmp'));

describe('atomic replacement of the depmod files', () => {
  const setup = async () => {
    const t = new Tree().write('kernel/a.ko', mod('a', { exports: ['a_fn'], aliases: ['a-alias'] })).write('kernel/b.ko', mod('b', { needs: ['a_fn'] })).write('modules.builtin', '');
    trees.push(t);
    const first = await runDepmod({ root: t.root, release: KVER, configRoot: '/' });
    expect(first.status).toBe(0);
    // A change, so that every output file would differ from the first run's.
    t.write('extra/c.ko', mod('c', { exports: ['c_fn'], needs: ['a_fn'], aliases: ['c-alias'] }));
    return t;
  };

  for (const op of ['writeFile', 'link', 'rename'] as Op[]) {
    it(`a failing ${op} at any point changes nothing`, async () => {
      const t = await setup();
      const before = snapshot(t);
      // How many calls a clean run makes.
      const probe = faultyFs(op, Number.MAX_SAFE_INTEGER);
      const clone = t.clone();
      trees.push(clone);
      await runDepmod({ root: clone.root, release: KVER, configRoot: '/', fs: probe, cache: false });
      const total = probe.calls();
      expect(total).toBeGreaterThanOrEqual(op === 'link' ? OUTPUTS.length - 1 : OUTPUTS.length);
      for (let n = 1; n <= total; n++) {
        const fs = faultyFs(op, n);
        let error: unknown;
        try {
          await runDepmod({ root: t.root, release: KVER, configRoot: '/', fs, cache: false });
        } catch (e) {
          error = e;
        }
        expect(error, `${op} #${n}`).toBeInstanceOf(KabiError);
        expect((error as KabiError).code).toBe('IO');
        expect((error as KabiError).file).toBeDefined();
        expect(leftovers(t), `${op} #${n}`).toEqual([]);
        expect(snapshot(t), `${op} #${n}`).toEqual(before);
      }
      // And once nothing fails, the files are replaced.
      await runDepmod({ root: t.root, release: KVER, configRoot: '/', cache: false });
      expect(snapshot(t)).not.toEqual(before);
    });
  }

  it('a cache that cannot be written is dropped; the outputs are still replaced', async () => {
    const t = await setup();
    const before = snapshot(t);
    const fs: KabiFs = {
      ...nodeFs,
      writeFile: (async (path: string, ...rest: never[]) => {
        if (String(path).includes(CACHE_DIR)) throw Object.assign(new Error('injected'), { code: 'ENOSPC' });
        return (nodeFs.writeFile as (...a: unknown[]) => Promise<void>)(path, ...rest);
      }) as never,
    };
    const r = await runDepmod({ root: t.root, release: KVER, configRoot: '/', fs });
    expect(r.status).toBe(0);
    expect(snapshot(t)).not.toEqual(before);
    expect(existsSync(t.cachePath())).toBe(false);
    expect(leftovers(t)).toEqual([]);
  });
});
