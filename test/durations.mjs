// SPDX-License-Identifier: GPL-2.0-or-later
//
// node test/durations.mjs REPORT.json: rewrite test/durations.json, the seconds each test file
// took, from a vitest JSON report (.ci/run keeps the last one at
// ~/.cache/kabi-corpus/vitest-report.json). test/sequencer.ts starts the longest files first, so
// the two workers finish together instead of one running a long file alone at the end; a file
// the table does not know runs after the ones it does.

import fs from 'node:fs';
import path from 'node:path';

const [report] = process.argv.slice(2);
if (!report) {
  console.error('usage: node test/durations.mjs REPORT.json');
  process.exit(2);
}
const root = path.join(import.meta.dirname, '..');
const out = path.join(import.meta.dirname, 'durations.json');
const r = JSON.parse(fs.readFileSync(report, 'utf8'));
const old = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : {};
const table = { ...old };
for (const t of r.testResults ?? []) {
  if (typeof t.startTime !== 'number' || typeof t.endTime !== 'number') continue;
  table[path.relative(root, t.name)] = Math.round((t.endTime - t.startTime) / 100) / 10;
}
// Files that no longer exist leave the table.
for (const f of Object.keys(table)) if (!fs.existsSync(path.join(root, f))) delete table[f];
const sorted = Object.fromEntries(Object.entries(table).sort(([, a], [, b]) => b - a));
fs.writeFileSync(out, `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`${out}: ${Object.keys(sorted).length} files`);
