// SPDX-License-Identifier: GPL-2.0-or-later
//
// kmod as the oracle of the kernel's own release: kmod 30 on this machine (bookworm) for
// bookworm's kernels, kmod 34 in the trixie chroot (corpus/debian/toolchains.mjs) for trixie's
// and 7.x. Many runs go through one process (a shell loop), so a chroot costs one start.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { TOOLCHAINS, toolchainRun, type Toolchain } from '../../corpus/debian/toolchains.mjs';
import type { CorpusKernel } from './corpus.js';

/** The kmod that would run on the kernel's own release. */
export function kmodOf(k: CorpusKernel): { tool: Toolchain; version: 30 | 34 } {
  return k.suite === 'bookworm' ? { tool: TOOLCHAINS.host, version: 30 } : { tool: TOOLCHAINS.trixie, version: 34 };
}

export interface KmodRun {
  status: number;
  stdout: string;
  /** With `work` (the host directory) in place of where the runs saw it. */
  stderr: string;
}

/**
 * Run kmod commands with `tool`, in one process. Every path in `runs` lies under `work` (a host
 * directory); argv gets it as `at(hostPath)`. Outputs are returned with host paths.
 */
export async function kmodRuns(tool: Toolchain, work: string, runs: readonly ((at: (hostPath: string) => string) => string[])[]): Promise<KmodRun[]> {
  const out = join(work, '.kmod-out');
  mkdirSync(out, { recursive: true });
  // The script goes in a file: one argument may not exceed 128 KiB.
  const inside = tool.name === 'host' ? work : '/mnt/kabi/work';
  const at = (p: string) => join(inside, relative(work, p));
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = runs.map((argv, i) => {
    const o = join(inside, '.kmod-out', String(i));
    return `${argv(at).map(q).join(' ')} >${q(`${o}.out`)} 2>${q(`${o}.err`)}; echo $? >${q(`${o}.rc`)}`;
  });
  writeFileSync(join(out, 'script'), `${lines.join('\n')}\n`);
  const r = await toolchainRun(tool, (d) => ['sh', join(d.work!, '.kmod-out', 'script')], { dirs: { work }, env: { LC_ALL: 'C' }, timeoutMs: 1_800_000 });
  if (r.status !== 0) throw new Error(`kmod runs (${tool.name}) failed: ${r.stderr}`);
  return runs.map((_, i) => {
    const read = (ext: string) => readFileSync(join(out, `${i}.${ext}`), 'latin1');
    return { status: Number(read('rc').trim()), stdout: read('out').split(inside).join(work), stderr: read('err').split(inside).join(work) };
  });
}
