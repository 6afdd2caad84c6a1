// `kabi --help`, `kabi --version` and `kabi <command> --help` should not compile the code of
// every command (the start-up goal of issue 16 lives in bench/startup.bench.mjs; this is its
// structure, checked without a clock): the bin's entry statically imports only the dispatch,
// and each command's code is reached through a dynamic import (src/cli/registry.ts,
// scripts/build.mjs's split bundle).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = new URL('../../dist/bin/', import.meta.url).pathname;

/** The files a module loads before its first line runs: its static imports, transitively. */
function staticGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const walk = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    const text = readFileSync(join(BIN, f), 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s[^;]*?\bfrom\s*"\.\/([^"]+)"|^import\s*"\.\/([^"]+)"/gms)) walk((m[1] ?? m[2])!);
  };
  walk(entry);
  return seen;
}
const size = (files: Iterable<string>) => [...files].reduce((n, f) => n + statSync(join(BIN, f)).size, 0);

describe('the kabi bin at start-up', () => {
  it('loads the dispatch only: a small part of the bins’ code, none of any command', () => {
    const all = readdirSync(BIN).filter((f) => f.endsWith('.js') && f !== 'read-worker.js');
    const graph = staticGraph('kabi.js');
    expect(size(graph)).toBeLessThan(size(all) / 10);
    const text = [...graph].map((f) => readFileSync(join(BIN, f), 'utf8')).join('\n');
    // Each command's usage text is in its own code; none is loaded for `kabi --help`.
    for (const usage of ['Usage: kabi check', 'Usage: kabi link', 'Usage: kabi status', 'Usage: kabi depmod', 'Usage: weak-modules']) expect(text).not.toContain(usage);
    // The help's summaries are (registry.ts), and every command is one dynamic import away.
    expect(text).toContain('decide whether modules load on each installed kernel');
    expect((text.match(/\bimport\("\.\/[^"]+"\)/g) ?? []).length).toBeGreaterThanOrEqual(9);
  });
});
