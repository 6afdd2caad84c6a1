// SPDX-License-Identifier: GPL-2.0-or-later
//
// kill -9 at the writes of weak-modules --add-modules, --remove-modules, --add-kernel and kabi
// link --add, run as the built bins: a preloaded hook (kill-at.mjs) counts the process's
// writes and kills it at the chosen one. Every write of the linker's own transaction is a
// kill point (the root's lock, the journal, each staged link and each rename of a link, the
// commit); of depmod's output writes a seeded sample is (they repeat one protocol per file,
// tested write by write in test/depmod). After each kill: no link that exists before and after
// the run is missing and weak-updates/ is there (what a reader may see at that instant); once
// recovered (what the next run does first, under the lock), every kernel is wholly as before
// or wholly as after, its links and modules.dep together, with nothing left behind; a rerun
// reaches the result of the uninterrupted run.

import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { recoverAll } from '../../src/linker/apply.js';
import { copyRoot, leftovers, pool, mixedKernels, neverMissing, picture, rng, runBin, SCENARIOS, seedFromEnv, template, type KernelPicture } from './harness.js';

const HOOK = ['--import', join(process.cwd(), 'test/reliability/kill-at.mjs')];
/** depmod output writes killed at, per run (seeded). */
const DEPMOD_SAMPLE = 8;
/** One kill point in this many (and the last) is followed by a full rerun; the others by recovery only. */
const RERUN_EVERY = 5;

let tpl: string;
beforeAll(async () => {
  tpl = await template();
}, 120_000);

/** The writes of the linker's transaction (as opposed to depmod's outputs and cache), by the path each touches. */
const linkerWrite = (line: string) => /kabi-journal|kabi-staging|\/weak-updates(\/|$)|\.kabi\.lock|^(writeSync|ftruncateSync) fd/.test(line) && !/modules\.[^/]*kabi-tmp/.test(line);

describe('kill -9 at every write of the link transaction (and a seeded sample of depmod\'s)', () => {
  const seed = seedFromEnv();
  for (const s of SCENARIOS.filter((x) => x.name !== 'weak-modules --remove-kernel')) {
    it(`${s.name} (seed ${seed})`, async () => {
      const before = picture(tpl);
      const clean = copyRoot(tpl);
      const traceFile = join(clean, '..', `${process.pid}-${Date.now()}.trace`);
      const c = await runBin(s.bin, s.args(clean), { stdin: s.stdin(clean), env: { KABI_KILL_COUNT_FILE: traceFile }, nodeArgs: HOOK });
      expect(c.status, c.stderr).toBe(0);
      const after = picture(clean);
      expect(after).not.toEqual(before);
      expect(leftovers(clean)).toEqual([]);
      const trace = readFileSync(traceFile, 'utf8').trim().split('\n');
      const random = rng(seed + s.name.length);
      const others = trace.map((_, i) => i + 1).filter((n) => !linkerWrite(trace[n - 1]!));
      const sample = new Set<number>();
      while (sample.size < Math.min(DEPMOD_SAMPLE, others.length)) sample.add(others[Math.floor(random() * others.length)]!);
      const points = trace.map((_, i) => i + 1).filter((n) => linkerWrite(trace[n - 1]!) || sample.has(n));
      expect(points.filter((n) => /kabi-journal/.test(trace[n - 1]!)).length).toBeGreaterThan(0);

      let killed = 0;
      // Two at a time: each point works on its own copy of the template.
      await pool(points, 2, async (n, i) => {
        const where = `write ${n}/${trace.length} (${trace[n - 1]!.replace(clean, '<root>')})`;
        const root = copyRoot(tpl);
        const r = await runBin(s.bin, s.args(root), { stdin: s.stdin(root), env: { KABI_KILL_AT: String(n) }, nodeArgs: HOOK });
        if (r.signal === 'SIGKILL') killed++;
        else expect(r.status, `${where}: ${r.stderr}`).toBe(0);
        // What a reader sees right after the kill.
        expect(neverMissing(root, before, after), where).toEqual([]);
        // What the next run sees once it holds the lock and has recovered.
        await recoverAll(root);
        const now: Record<string, KernelPicture> = picture(root);
        expect(mixedKernels(now, before, after), where).toEqual([]);
        expect(leftovers(root), where).toEqual([]);
        if (i % RERUN_EVERY === 0 || i === points.length - 1) {
          const again = await runBin(s.bin, s.args(root), { stdin: s.stdin(root) });
          expect(again.status, `${where}, rerun: ${again.stderr}`).toBe(0);
          expect(picture(root), `${where}, rerun`).toEqual(after);
          expect(leftovers(root), `${where}, rerun`).toEqual([]);
        }
        rmSync(root, { recursive: true, force: true });
      });
      expect(killed).toBeGreaterThan(points.length / 2);
      console.log(`${s.name}: ${points.length} kill points of ${trace.length} writes, ${killed} killed`);
    }, 600_000);
  }
});
