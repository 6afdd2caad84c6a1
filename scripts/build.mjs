// Build: tsc emits the library (ESM + .d.ts) into dist/; esbuild bundles each bin into one
// file so `kabi --help` does not resolve dozens of modules at start-up. Native codec
// packages stay external: they are optional and loaded lazily at run time.
import { execFileSync } from 'node:child_process';
import { readdirSync, chmodSync } from 'node:fs';
import { build } from 'esbuild';

// dist/ is not wiped first: outputs are overwritten, and several builds may run at once here.
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });

const REQUIRE_SHIM = "import { createRequire as __kabiCreateRequire } from 'node:module'; const require = __kabiCreateRequire(import.meta.url);";
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  banner: { js: REQUIRE_SHIM },
  external: ['zstd-napi', 'lz4-napi', 'xz-decompress', 'fzstd'],
  logLevel: 'warning',
};

const bins = readdirSync('src/bin').filter((f) => f.endsWith('.ts'));
await build({ ...common, entryPoints: bins.map((f) => `src/bin/${f}`), outdir: 'dist/bin', banner: { js: `#!/usr/bin/env node\n${REQUIRE_SHIM}` } });
for (const f of bins) chmodSync(`dist/bin/${f.replace(/\.ts$/, '.js')}`, 0o755);
// The module-reading worker: the bundled bins start it from beside themselves.
await build({ ...common, entryPoints: ['src/module/read-worker.ts'], outfile: 'dist/bin/read-worker.js' });
// The demo behind `npm start` (it builds its system tree with the test fixtures).
await build({ ...common, entryPoints: ['corpus/demo/demo.ts'], outfile: 'dist/demo/demo.js' });
