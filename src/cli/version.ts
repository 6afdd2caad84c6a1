import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * kabi's version, as `kabi --version` and `kabi depmod -V` print it: the one package.json
 * holds, read when first asked. package.json is found by walking up from this file, which is
 * dist/bin/kabi.js in the package, dist/src/cli/version.js or src/cli/version.ts in a
 * checkout: one number, never a second copy to forget.
 */
export function kabiVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'kabi' && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // not here (or not readable): look further up
    }
    const up = dirname(dir);
    if (up === dir) return (cached = 'unknown (package.json not found)');
    dir = up;
  }
}
