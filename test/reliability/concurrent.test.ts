// SPDX-License-Identifier: GPL-2.0-or-later
//
// Overlapping drop-in runs on one root (scriptlets of two transactions, a DKMS build beside
// an rpm run): four weak-modules processes started together, fifty rounds. Their changes
// commute (three add different modules, one removes a module whose file is gone), so the
// result of every round must be the result of running them one after the other; no run may
// lose links another made, or that were there before. And the interleaving that lost every
// earlier link: a run held still right after it wrote its journal while another one starts.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { A, B, copyRoot, leftovers, picture, rng, runBin, seedFromEnv, template, type KernelPicture } from './harness.js';

const ROUNDS = 50;
const HOOK = ['--import', join(process.cwd(), 'test/reliability/kill-at.mjs')];

let tpl: string;
let serial: Record<string, KernelPicture>;

const RUNS = [
  { args: ['--add-modules'], modules: [`/lib/modules/${A}/extra/alpha/alpha.ko`] },
  { args: ['--add-modules'], modules: [`/lib/modules/${A}/extra/beta/beta.ko`] },
  { args: ['--add-modules'], modules: [`/lib/modules/${B}/extra/dup/dup.ko`] },
  { args: ['--remove-modules'], modules: [`/lib/modules/${A}/extra/gone/gone.ko`] },
];

const run = (root: string, i: number, extra: { env?: Record<string, string>; nodeArgs?: string[] } = {}) =>
  runBin('weak-modules', ['--basedir', root, ...RUNS[i]!.args, '--no-initramfs'], { stdin: RUNS[i]!.modules.map((m) => join(root, m)).join('\n') + '\n', timeoutMs: 120_000, ...extra });

beforeAll(async () => {
  tpl = await template({ small: true });
  const one = copyRoot(tpl);
  for (let i = 0; i < RUNS.length; i++) {
    const r = await run(one, i);
    if (r.status !== 0) throw new Error(r.stderr);
  }
  serial = picture(one);
}, 300_000);

describe('overlapping runs on one root', () => {
  it(`4 concurrent weak-modules × ${ROUNDS} rounds end as the serial run does, every round`, async () => {
    const seed = seedFromEnv();
    const random = rng(seed);
    const before = picture(tpl);
    // Links there before any of the runs stay (but the removed module's, and dup's, which is re-pointed).
    for (const [k, p] of Object.entries(before)) {
      for (const [link, target] of Object.entries(p.links)) if (!/gone|dup/.test(link)) expect(serial[k]!.links[link], `${k} ${link}`).toBe(target);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const root = copyRoot(tpl);
      // Started together, in a seeded order with seeded small delays.
      const order = [0, 1, 2, 3].sort(() => random() - 0.5);
      const results = await Promise.all(order.map(async (i) => {
        await new Promise((r) => setTimeout(r, Math.floor(random() * 30)));
        return run(root, i);
      }));
      for (const r of results) expect(r.status, `round ${round} (seed ${seed}): ${r.stderr}`).toBe(0);
      expect(picture(root), `round ${round} (seed ${seed}), order ${order}`).toEqual(serial);
      expect(leftovers(root), `round ${round}`).toEqual([]);
      rmSync(root, { recursive: true, force: true });
    }
  }, 900_000);

  it('a run held still right after writing its journal makes the next one wait, and both are kept', async () => {
    const root = copyRoot(tpl);
    // Where the first run writes its journal: found by listing its writes in a run on a copy.
    const probe = copyRoot(tpl);
    const traceFile = join(probe, '..', `trace-${process.pid}`);
    await run(probe, 2, { env: { KABI_KILL_COUNT_FILE: traceFile }, nodeArgs: HOOK });
    const trace = readFileSync(traceFile, 'utf8').trim().split('\n');
    const journalWritten = trace.findIndex((l) => /^rename .*\.weak-updates\.kabi-journal\.tmp$/.test(l)) + 1;
    expect(journalWritten).toBeGreaterThan(0);
    const pauseFile = join(root, '..', `paused-${process.pid}`);
    // The write after the journal's rename: the journal is in place, no link changed yet.
    const first = run(root, 2, { env: { KABI_PAUSE_AT: String(journalWritten + 1), KABI_PAUSE_MS: '1500', KABI_PAUSE_FILE: pauseFile }, nodeArgs: HOOK });
    for (let t = 0; t < 600 && !existsSync(pauseFile); t++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(pauseFile)).toBe(true);
    const second = await run(root, 0);
    const firstDone = await first;
    expect(firstDone.status, firstDone.stderr).toBe(0);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/waiting for another run to finish/);
    const now = picture(root);
    // Everything both made, and everything there before (the gone module's links are not removed by these two).
    for (const k of Object.keys(now)) {
      for (const [link, target] of Object.entries(picture(tpl)[k]!.links)) if (link !== 'dup/dup.ko') expect(now[k]!.links[link], `${k} ${link}`).toBe(target);
    }
    expect(now[B]!.links['alpha/alpha.ko']).toBe(`/lib/modules/${A}/extra/alpha/alpha.ko`);
    expect(now[A]!.links['dup/dup.ko']).toBe(`/lib/modules/${B}/extra/dup/dup.ko`);
    expect(leftovers(root)).toEqual([]);
  }, 120_000);
});
