// SPDX-License-Identifier: GPL-2.0-or-later
//
// test/durations.json orders the test files (test/sequencer.ts): a file it names must exist, and
// every corpus and host test file (the minutes-long ones) must be in it, or a new long file would
// start last and run alone at the end of CI.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const table = JSON.parse(readFileSync(join(ROOT, 'test/durations.json'), 'utf8')) as Record<string, number>;

function testFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => relative(ROOT, join(ROOT, dir, f)))
    .sort();
}

describe('test/durations.json', () => {
  it('names only files that exist, each with a duration in seconds', () => {
    expect(Object.keys(table).filter((f) => !existsSync(join(ROOT, f)))).toEqual([]);
    expect(Object.entries(table).filter(([, s]) => !(typeof s === 'number' && s >= 0))).toEqual([]);
  });

  it('has every corpus and host test file', () => {
    const long = [...testFiles('test/real'), ...testFiles('test/hosts'), 'test/package-install/install.test.ts'];
    expect(long.filter((f) => !(f in table))).toEqual([]);
  });
});
