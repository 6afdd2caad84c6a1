// SPDX-License-Identifier: GPL-2.0-or-later
//
// Global setup of both vitest projects: every temp dir a test makes (fixture roots, copies
// of the corpus trees, the fault-injection runs: thousands per run) goes under one directory
// of its own, removed when the run ends, so that a test run leaves nothing behind in /tmp
// even where a test does not clean up after itself, or fails half-way. TMPDIR is set before
// the workers start, which is what os.tmpdir() (and mktemp in the tools the tests run) read.
// KABI_KEEP_TEST_TMP=1 keeps the directory, to look at what a failing test left.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'kabi-tests-'));
  process.env.TMPDIR = dir;
  return () => {
    if (process.env.KABI_KEEP_TEST_TMP === '1') {
      process.stderr.write(`kabi tests: temp files kept in ${dir}\n`);
      return;
    }
    rmSync(dir, { recursive: true, force: true });
  };
}
