// SPDX-License-Identifier: GPL-2.0-or-later
//
// The checks after every package-manager step of a host test, in one place: the host tool
// exited 0 and reported no failed scriptlet or hook, kabi ran (where it should) and no kabi
// process took longer than NODE_LIMIT_S, links are where kabi check says, depmod files are
// kmod's. A test asserts `expect(afterStep(...)).toEqual([])`, so a failure lists everything
// that went wrong at once.

import type { HostRoot, NodeRun, RunResult } from './host-root.js';
import { depmodProblems, linkProblems, slowRuns, type Semantics } from './oracle.js';

export interface StepOptions {
  /** Lines of the host tool's output that mean a failed scriptlet or hook (rpmScriptletFailures…). */
  failures?: (r: RunResult) => string[];
  /** kabi must have run in this step (a hook or trigger that should fire did). */
  kabiRuns?: boolean;
  /** The rule the links are judged by (default depmod: weak-modules'). */
  semantics?: Semantics;
}

export interface StepReport {
  problems: string[];
  runs: NodeRun[];
}

export function afterStep(root: HostRoot, what: string, r: RunResult, opts: StepOptions = {}): StepReport {
  const problems: string[] = [];
  const out = `${r.stdout}\n${r.stderr}`.trim();
  if (r.status !== 0 || r.timedOut) problems.push(`${what}: exited ${r.timedOut ? 'by timeout' : (r.signal ?? r.status)}\n${out}`);
  const failed = opts.failures?.(r) ?? [];
  for (const line of failed) problems.push(`${what}: ${line}`);
  if (failed.length > 0 && r.status === 0) problems.push(`${what}: its output:\n${out}`);
  const runs = root.nodeRuns();
  if (opts.kabiRuns && runs.length === 0) problems.push(`${what}: kabi never ran`);
  problems.push(...slowRuns(runs).map((s) => `${what}: slow or killed: ${s}`));
  problems.push(...linkProblems(root, opts.semantics).map((p) => `${what}: ${p}`));
  problems.push(...depmodProblems(root).map((p) => `${what}: ${p}`));
  // depmodProblems ran depmod (not node) in the root: nothing more to read from the node log.
  return { problems, runs };
}
