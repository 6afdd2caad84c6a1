// SPDX-License-Identifier: GPL-2.0-or-later
//
// Longest test files first. Vitest orders a first run (a clean checkout, as in CI) by file size,
// and the longest files here are short ones that drive dracut or kmod for many minutes: run
// last, one of them kept one worker busy for twenty minutes while the other had nothing left.
// test/durations.json holds the seconds each file took in a CI run (test/durations.mjs writes
// it from the JSON report); files it does not know follow, in vitest's own order (larger first
// on a first run).

import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const ROOT = join(import.meta.dirname, '..');
const DURATIONS = JSON.parse(readFileSync(join(import.meta.dirname, 'durations.json'), 'utf8')) as Record<string, number>;

/** Vitest's sequencer with the files of each project ordered by their recorded duration, longest first. */
export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const rank = new Map(base.map((f, i) => [f, i]));
    const seconds = (f: TestSpecification) => DURATIONS[relative(ROOT, f.moduleId)] ?? -1;
    return [...base].sort((a, b) => {
      const group = a.project.config.sequence.groupOrder - b.project.config.sequence.groupOrder;
      if (group !== 0) return group;
      if (a.project.name !== b.project.name) return a.project.name < b.project.name ? -1 : 1;
      return seconds(b) - seconds(a) || rank.get(a)! - rank.get(b)!;
    });
  }
}
