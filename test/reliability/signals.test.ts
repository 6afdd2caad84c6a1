// SPDX-License-Identifier: GPL-2.0-or-later
//
// Signals and a reader that goes away, with the built bins: SIGTERM in the middle of one
// kernel's transaction ends the run after that kernel (done) and before the next ones (not
// started), status 143; `kabi link … | head -1` (EPIPE on every later write) runs to the end.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { A, B, BINS, C, copyRoot, E, leftovers, picture, runBin, SCENARIOS, template, type KernelPicture } from './harness.js';

const HOOK = ['--import', join(process.cwd(), 'test/reliability/kill-at.mjs')];
let tpl: string;
let before: Record<string, KernelPicture>;
const after = new Map<string, Record<string, KernelPicture>>();

beforeAll(async () => {
  tpl = await template();
  before = picture(tpl);
  for (const s of SCENARIOS) {
    const clean = copyRoot(tpl);
    const r = await runBin(s.bin, s.args(clean), { stdin: s.stdin(clean) });
    if (r.status !== 0) throw new Error(r.stderr);
    after.set(s.name, picture(clean));
  }
}, 300_000);

describe('signals and closed pipes', () => {
  it('SIGTERM inside a kernel\'s transaction: that kernel is completed, the next ones are not started, status 143', async () => {
    const s = SCENARIOS.find((x) => x.name === 'weak-modules --add-modules')!;
    const probe = copyRoot(tpl);
    const traceFile = join(probe, '..', `signal-trace-${process.pid}`);
    await runBin(s.bin, s.args(probe), { stdin: s.stdin(probe), env: { KABI_KILL_COUNT_FILE: traceFile }, nodeArgs: HOOK });
    const trace = readFileSync(traceFile, 'utf8').trim().split('\n');
    // A's transaction (its dup link) is the first; stop right after its journal is written.
    const at = trace.findIndex((l) => /^rename .*\.weak-updates\.kabi-journal\.tmp$/.test(l)) + 2;
    expect(trace[at - 2]).toContain(`/${A}/`);
    const root = copyRoot(tpl);
    const pauseFile = join(root, '..', `signal-paused-${process.pid}`);
    const child = spawn(process.execPath, [...HOOK, BINS[s.bin], ...s.args(root)], {
      env: { ...process.env, KABI_PAUSE_AT: String(at), KABI_PAUSE_MS: '1500', KABI_PAUSE_FILE: pauseFile },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    child.stdin.end(s.stdin(root));
    for (let i = 0; i < 600 && !existsSync(pauseFile); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(pauseFile)).toBe(true);
    child.kill('SIGTERM');
    const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    expect(status, stderr).toBe(143);
    expect(stderr).toMatch(new RegExp(`interrupted: kernels ${B}, ${C}, .*${E} were not changed`));
    const now = picture(root);
    const done = after.get(s.name)!;
    expect(now[A]).toEqual(done[A]);
    for (const k of [B, C, E]) expect(now[k], k).toEqual(before[k]);
    expect(leftovers(root)).toEqual([]);
  }, 120_000);

  it('`kabi link … | head -1`: the closed pipe does not stop the run, which completes and leaves nothing behind', () => {
    const s = SCENARIOS.find((x) => x.name === 'kabi link --add')!;
    const root = copyRoot(tpl);
    const args = s.args(root).map((a) => `'${a}'`).join(' ');
    const r = spawnSync('bash', ['-c', `'${process.execPath}' '${join(process.cwd(), BINS.kabi)}' ${args} 2>"$ERR" | head -1; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8', env: { ...process.env, ERR: `${root}.err` }, timeout: 120_000 });
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBe(2); // head's one line, then kabi's status
    const stderr = readFileSync(`${root}.err`, 'utf8');
    expect(lines[1], stderr).toBe('0');
    expect(stderr).not.toMatch(/EPIPE|internal error/);
    expect(picture(root)).toEqual(after.get(s.name));
    expect(leftovers(root)).toEqual([]);
  }, 120_000);
});
