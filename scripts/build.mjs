// Build (also `npm prepare`, so `npm pack` and git installs build a clean checkout):
// - tsc emits every source (ESM + .d.ts) into dist/src and dist/native-bindings: the tests and
//   benches import those files, and the package ships only their .d.ts;
// - esbuild bundles the library, the drop-in bins and the module-reading worker into one file
//   each (resolving ~80 modules costs `import('kabi')` about 40 ms more than loading one file),
//   and the kabi bin into an entry with chunks, so `kabi --help` compiles only the dispatch. The optional codec packages stay external: they
//   are loaded lazily at run time.
// - dist/lib/index.cjs lets `require('kabi')` load the same ES module where Node can;
// - dist/man/*.1 are written from the commands' option tables (src/cli/man.ts).
// Every output is written beside its final name and renamed into place, and a file a previous
// build left behind (a deleted or renamed source) is removed, so what `npm pack` takes from
// dist/ is exactly this build. Several builds may run at once here (tests run the bins while a
// test packs the package): a reader never sees a half-written file.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';
import ts from 'typescript';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
process.chdir(root);
const written = new Set();
const TMP = `.kabi-build-${process.pid}.tmp`;

function writeAtomic(file, data, mode) {
  const abs = resolve(root, file);
  mkdirSync(dirname(abs), { recursive: true });
  const tmp = abs + TMP;
  writeFileSync(tmp, data, mode === undefined ? undefined : { mode });
  renameSync(tmp, abs);
  written.add(abs);
}

// 1. tsc, through its API so its outputs are written atomically too.
function emitTypescript(configPath) {
  const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => fail([d]) });
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options, projectReferences: config.projectReferences });
  const result = program.emit(undefined, (file, text) => writeAtomic(file, text));
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics];
  if (diagnostics.length > 0) fail(diagnostics);
}
function fail(diagnostics) {
  const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  process.exit(1);
}
emitTypescript('tsconfig.build.json');

// 2. esbuild bundles.
const REQUIRE_SHIM = "import { createRequire as __kabiCreateRequire } from 'node:module'; const require = __kabiCreateRequire(import.meta.url);";
async function bundle(entry, outfile, { bin = false } = {}) {
  const r = await build({
    entryPoints: [entry],
    outfile,
    write: false,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    banner: { js: bin ? `#!/usr/bin/env node\n${REQUIRE_SHIM}` : REQUIRE_SHIM },
    external: ['zstd-napi', 'lz4-napi', 'xz-decompress', 'fzstd'],
    logLevel: 'warning',
  });
  for (const f of r.outputFiles) writeAtomic(f.path, f.contents, bin ? 0o755 : 0o644);
}

// kabi is split into chunks (dist/bin/chunk-*.js, beside it so the worker and package.json are
// found from any of them): `kabi --help` loads its entry and the few chunks the dispatch needs,
// and a command's code is compiled only when that command runs (src/cli/registry.ts).
async function splitBin(entries) {
  const r = await build({
    entryPoints: entries,
    outdir: 'dist/bin',
    write: false,
    bundle: true,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    platform: 'node',
    target: 'node20',
    format: 'esm',
    banner: { js: '#!/usr/bin/env node' },
    external: ['zstd-napi', 'lz4-napi', 'xz-decompress', 'fzstd'],
    logLevel: 'warning',
  });
  const bins = new Set(Object.keys(entries).map((name) => resolve(root, 'dist/bin', `${name}.js`)));
  for (const f of r.outputFiles) {
    // `require` only in a file whose bundled CommonJS asks for it (esbuild's __require):
    // createRequire in each of the chunks `kabi --help` loads would cost more than the rest.
    const text = f.text.replace('#!/usr/bin/env node\n', '');
    const out = `#!/usr/bin/env node\n${/\b__require\b/.test(text) ? `${REQUIRE_SHIM}\n` : ''}${text}`;
    writeAtomic(f.path, out, bins.has(f.path) ? 0o755 : 0o644);
  }
}

const bins = readdirSync('src/bin').filter((f) => f.endsWith('.ts'));
await Promise.all([
  splitBin({ kabi: 'src/bin/kabi.ts' }),
  // The drop-ins run one command each, from package scriptlets: one file loads fastest there.
  ...bins.filter((f) => f !== 'kabi.ts').map((f) => bundle(`src/bin/${f}`, `dist/bin/${f.replace(/\.ts$/, '.js')}`, { bin: true })),
  // The worker is started from beside whichever bundle reads modules: the bins and the library.
  bundle('src/module/read-worker.ts', 'dist/bin/read-worker.js'),
  bundle('src/index.ts', 'dist/lib/index.js'),
  bundle('src/module/read-worker.ts', 'dist/lib/read-worker.js'),
  // The demo behind `npm start` (it builds its system tree with the test fixtures; not packed).
  bundle('corpus/demo/demo.ts', 'dist/demo/demo.js'),
]);
writeAtomic('dist/lib/index.cjs', readFileSync('src/cjs/index.cjs'));

// 3. Man pages, from the commands' own option tables and help texts (src/cli/man.ts), into
//    dist/man/ (shipped; package.json "directories.man").
{
  const { commands, CONVENTIONS, kabiVersion } = await import('../dist/src/cli/main.js');
  const { describeCommands } = await import('../dist/src/cli/describe.js');
  const { manPages } = await import('../dist/src/cli/man.js');
  for (const page of manPages(await describeCommands(commands), CONVENTIONS, kabiVersion())) writeAtomic(`dist/man/${page.file}`, page.text);
}

// 4. Remove what an earlier build wrote and this one did not (another build's temporary files
//    are left alone).
for (const dir of ['dist/src', 'dist/native-bindings', 'dist/bin', 'dist/lib', 'dist/demo', 'dist/man']) prune(resolve(root, dir));

function prune(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      prune(p);
      try {
        rmdirSync(p); // only if empty
      } catch {}
    } else if (!written.has(p) && !/\.kabi-build-\d+\.tmp$/.test(e.name)) {
      rmSync(p, { force: true });
      console.error(`build: removed stale ${relative(root, p)}`);
    }
  }
}
