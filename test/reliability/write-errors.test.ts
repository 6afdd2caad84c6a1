// SPDX-License-Identifier: GPL-2.0-or-later
//
// A full file system and a read-only one, at each step of a run.
//
// In this process: every write of the first kernel's link transaction fails in turn, with
// ENOSPC at one and EROFS at the next (and a seeded sample of the other writes): the run reports it (weak-modules
// exits 1, never anything el9 does not), no link that stays is ever missing, and — without any
// recovery, the run has put things right itself — every kernel is wholly as before or wholly
// as after, links and modules.dep together.
//
// For real, inside a private mount namespace (root only): a tmpfs with room for one more
// inode, two, … (every step that makes a file fails once), with a few pages of room, a tmpfs
// made read-only in the middle of a run, and one kernel's directory bind-mounted read-only.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeFs } from '../../src/fs.js';
import { recoverAll } from '../../src/linker/apply.js';
import { faultyFs } from '../linker/faulty-fs.js';
import { B, BINS, C, copyRoot, leftovers, mixedKernels, neverMissing, picture, rng, runInProcess, SCENARIOS, seedFromEnv, template, type KernelPicture, type Scenario } from './harness.js';

/** Besides every write of the first kernel's link transaction, this many other writes (seeded). */
const SAMPLE = 6;

let tpl: string;
const states = new Map<string, { before: Record<string, KernelPicture>; after: Record<string, KernelPicture>; calls: string[] }>();

beforeAll(async () => {
  tpl = await template();
  for (const s of SCENARIOS) {
    const clean = copyRoot(tpl);
    const counting = faultyFs(nodeFs, { failAt: Infinity });
    const r = await runInProcess(s, clean, counting.fs);
    if (r.status !== 0) throw new Error(`${s.name}: ${r.err}`);
    states.set(s.name, { before: picture(tpl), after: picture(clean), calls: counting.calls() });
  }
}, 300_000);

const linkerCall = (c: string) => /kabi-journal|kabi-staging|\/weak-updates(\/|$)/.test(c) && !/modules\.[^/]*kabi-tmp/.test(c);

describe('ENOSPC and EROFS at each write (in this process)', () => {
  const seed = seedFromEnv();
  for (const s of SCENARIOS) {
    it(`${s.name} (seed ${seed})`, async () => {
      const { before, after, calls } = states.get(s.name)!;
      const random = rng(seed ^ s.name.length);
      // The error path is the same code for every kernel (the kill tests go through each one).
      const first = /\/lib\/modules\/\.?([^/]+?)(\.kabi-staging)?\//.exec(calls.find(linkerCall) ?? '')?.[1];
      const ofFirst = (c: string) => linkerCall(c) && first !== undefined && (c.includes(`/${first}/`) || c.includes(`/.${first}.kabi-staging`));
      const others = calls.map((_, i) => i + 1).filter((n) => !ofFirst(calls[n - 1]!));
      const sample = new Set<number>();
      while (sample.size < Math.min(SAMPLE, others.length)) sample.add(others[Math.floor(random() * others.length)]!);
      const points = calls.map((_, i) => i + 1).filter((n) => ofFirst(calls[n - 1]!) || sample.has(n));
      expect(points.length).toBeGreaterThan(SAMPLE);
      for (const [i, n] of points.entries()) {
        const code = i % 2 === 0 ? 'ENOSPC' : 'EROFS';
        const root = copyRoot(tpl);
        const f = faultyFs(nodeFs, { failAt: n, code });
        const r = await runInProcess(s, root, f.fs);
        const where = `${code} at write ${n}/${calls.length} (${f.failedOn().replace(root, '<root>')})`;
        expect(f.tripped(), where).toBe(true);
        expect([0, 1], `${where}: ${r.err}`).toContain(r.status);
        expect(neverMissing(root, before, after), where).toEqual([]);
        // No recovery: the run put every kernel back (or finished it) itself...
        const now = picture(root);
        expect(mixedKernels(now, before, after), where).toEqual([]);
        // ...and its status says which: 0 when every kernel was done (a failure it could get
        // past: a cache of summaries not written, depmod run again, a commit finished forwards),
        // 1 when one was left as it was, named on stderr.
        const leftOld = Object.keys(after).filter((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]) && JSON.stringify(now[k]) === JSON.stringify(before[k]));
        if (r.status === 0) expect(now, where).toEqual(after);
        else for (const k of leftOld) expect(r.err, where).toMatch(new RegExp(`kernel ${k.replace(/[.+]/g, '\\$&')} left as it was`));
        if (r.status === 1) expect(leftOld.length, `${where}: ${r.err}`).toBeGreaterThan(0);
        await recoverAll(root);
        expect(mixedKernels(picture(root), before, after), `${where}, recovered`).toEqual([]);
        expect(leftovers(root), where).toEqual([]);
        rmSync(root, { recursive: true, force: true });
      }
    }, 600_000);
  }
});

/** The scenario's run, as a shell line, rooted at $M (the tmpfs). */
function runLine(s: Scenario, mnt: string, hook = false): string {
  const stdinFile = `${mnt}.stdin`;
  writeFileSync(stdinFile, s.stdin(mnt));
  const args = s.args(mnt).map((a) => `'${a}'`).join(' ');
  return `"$NODE" ${hook ? `--import '${join(process.cwd(), 'test/reliability/kill-at.mjs')}' ` : ''}'${join(process.cwd(), BINS[s.bin])}' ${args} < '${stdinFile}' 2>"$LOG"; echo $? > "$OUT.status"`;
}

/** Copy the template into the tmpfs. */
const FILL = `cp -a "$TEMPLATE/." "$M/"`;

describe('a real full or read-only file system (tmpfs in a private mount namespace)', () => {
  const s = SCENARIOS.find((x) => x.name === 'weak-modules --add-modules')!;
  // depmod lists modules in directory order, which is the file system's: the run's result on
  // a tmpfs is the reference here.
  let tmpfsAfter: Record<string, KernelPicture>;
  beforeAll(() => {
    const mnt = freshMountPoint();
    const m = inNamespaceAt(mnt, `${FILL}\n${runLine(s, mnt)}`);
    if (m.status !== 0) throw new Error(m.stderr);
    tmpfsAfter = picture(m.out);
  }, 120_000);

  it('one inode short, two short, …: every step that makes a file fails once, and the run leaves every kernel old or new', () => {
    const { before } = states.get(s.name)!;
    const after = tmpfsAfter;
    let succeeded = 0;
    for (let k = 0; k <= 40 && succeeded < 2; k++) {
      const mnt = freshMountPoint();
      // The run is prepared against a fixed mount point: the namespace mounts the tmpfs there.
      const m = inNamespaceAt(mnt, `${FILL}\nused=$(df --output=iused "$M" | tail -1)\nmount -o remount,nr_inodes=$((used + ${k})) tmpfs "$M"\n${runLine(s, mnt)}`);
      const where = `${k} free inodes: ${m.stderr}`;
      if (m.status === 0) succeeded++;
      else expect(m.status, where).toBe(1);
      expect(neverMissing(m.out, before, after), where).toEqual([]);
      expect(mixedKernels(picture(m.out), before, after), where).toEqual([]);
      if (m.status === 0) expect(picture(m.out), where).toEqual(after);
      expect(leftovers(m.out), where).toEqual([]);
    }
    expect(succeeded).toBeGreaterThan(0);
  }, 600_000);

  it('a few pages short: the data that does not fit fails the kernel it belongs to, which stays as it was', () => {
    const { before } = states.get(s.name)!;
    const after = tmpfsAfter;
    for (const pages of [0, 2, 8, 32]) {
      const mnt = freshMountPoint();
      const m = inNamespaceAt(mnt, `${FILL}\nused=$(df --output=used -B4096 "$M" | tail -1)\nmount -o remount,size=$(( (used + ${pages}) * 4096 )) tmpfs "$M"\n${runLine(s, mnt)}`);
      const where = `${pages} free pages: ${m.stderr}`;
      expect([0, 1], where).toContain(m.status);
      expect(neverMissing(m.out, before, after), where).toEqual([]);
      expect(mixedKernels(picture(m.out), before, after), where).toEqual([]);
    }
  }, 600_000);

  it('the file system turning read-only in the middle of a run: the next run finds every kernel old or new', async () => {
    const { before, calls } = states.get(s.name)!;
    const after = tmpfsAfter;
    const random = rng(seedFromEnv());
    const journals = calls.map((c, i) => (/kabi-journal\.tmp$/.test(c) && /^rename/.test(c) ? i + 1 : 0)).filter(Boolean);
    const picks = [...journals.slice(0, 2).map((n) => n + 1), ...Array.from({ length: 3 }, () => 1 + Math.floor(random() * calls.length))];
    for (const n of picks) {
      const mnt = freshMountPoint();
      const pause = `${mnt}.paused`;
      // The run stops at write n (counted by the same hook as the kill tests); the file system
      // is remounted read-only under it; it goes on and fails; then it is writable again.
      const m = inNamespaceAt(
        mnt,
        `${FILL}\nexport KABI_PAUSE_AT=${n} KABI_PAUSE_MS=1500 KABI_PAUSE_FILE='${pause}'\n( ${runLine(s, mnt, true)} ) &\nfor i in $(seq 100); do [ -e '${pause}' ] && break; sleep 0.05; done\nmount -o remount,ro "$M"\nwait\nmount -o remount,rw "$M"`,
      );
      const where = `read-only from write ~${n}: ${m.stderr}`;
      expect([0, 1], where).toContain(m.status);
      expect(neverMissing(m.out, before, after), where).toEqual([]);
      await recoverAll(m.out);
      expect(mixedKernels(picture(m.out), before, after), where).toEqual([]);
      expect(leftovers(m.out), where).toEqual([]);
    }
  }, 600_000);

  it('one kernel\'s directory read-only: that kernel is left as it was, the others are done, the run exits 1', () => {
    const { before } = states.get(s.name)!;
    const after = tmpfsAfter;
    const mnt = freshMountPoint();
    const m = inNamespaceAt(mnt, `${FILL}\nmount --bind "$M/lib/modules/${C}" "$M/lib/modules/${C}" && mount -o remount,bind,ro "$M/lib/modules/${C}"\n${runLine(s, mnt)}`);
    expect(m.status, m.stderr).toBe(1);
    expect(m.stderr).toMatch(new RegExp(`kernel ${C} left as it was`));
    const now = picture(m.out);
    expect(now[C]).toEqual(before[C]);
    expect(now[B]).toEqual(after[B]);
    expect(leftovers(m.out)).toEqual([]);
  }, 120_000);
});

const freshMountPoint = () => mkdtempSync(join(tmpdir(), 'kabi-ns-'));

/**
 * Run `script` (bash) in a private mount namespace, with a tmpfs mounted on `mnt` as $M (a
 * directory named beforehand, so the run's paths can name it); returns the run's status (the
 * script writes it to $OUT.status), its stderr and the tmpfs's content copied out to a
 * directory of its own.
 */
function inNamespaceAt(mnt: string, script: string) {  const out = mkdtempSync(join(tmpdir(), 'kabi-ns-out-'));
  const log = `${out}.log`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'bash', '-c', `set -u\nmount -t tmpfs -o size=64m tmpfs "$M" || exit 97\n${script}\ncp -a "$M/." "$OUT/"`], {
    env: { ...process.env, M: mnt, OUT: out, LOG: log, NODE: process.execPath, TEMPLATE: tpl },
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status === 97 || r.error) throw new Error(`cannot mount a tmpfs in a mount namespace (root needed): ${r.stderr} ${r.error ?? ''}`);
  const status = existsSync(`${out}.status`) ? Number(readFileSync(`${out}.status`, 'utf8')) : -1;
  return { out, status, stderr: existsSync(log) ? readFileSync(log, 'utf8') : r.stderr };
}
