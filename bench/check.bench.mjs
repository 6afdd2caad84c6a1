// Issue 3: one module against 8 installed kernels, and every in-tree module of a kernel
// against its own symvers, each against `depmod -n -e -E` doing the same job.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRoot, corpus, fmtMs, median, moduleFiles, quick, ratio, table } from './lib.mjs';
import { checkClock, checkModules } from '../dist/src/compat/check.js';

const c = corpus();
const amd64 = c.kernels.filter((k) => k.arch === 'amd64');
const newest61 = amd64.find((k) => k.series === '6.1' && k.role === 'newest');
// Eight kernels: the five amd64 trees, three of them twice under other release names.
const eight = [...amd64.map((k) => ({ k })), ...amd64.slice(0, 3).map((k, i) => ({ k, as: `${k.krel}.bench${i}` }))].slice(0, quick ? 3 : 8);
const root = buildRoot(eight);
const module = join(root, 'opt', 'kabi_consumer.ko');
mkdirSync(join(root, 'opt'), { recursive: true });
copyFileSync(newest61.builtModules.kabi_consumer, module);
const provider = join(root, 'opt', 'kabi_provider.ko');
copyFileSync(newest61.builtModules.kabi_provider, provider);
const rows = [];
const json = {};

// kabi: one process-equivalent call judging the module on every kernel.
const tKabi = await median(() => checkModules([module, provider], { root, semantics: 'depmod' }), quick ? 1 : 3);
const tKabiLoader = await median(() => checkModules([module, provider], { root }), quick ? 1 : 3);
// depmod: place the modules in each kernel and run depmod -n -e -E there (what you'd script).
const symvers = (krel) => {
  const f = join(root, 'tmp-symvers', krel);
  mkdirSync(join(root, 'tmp-symvers'), { recursive: true });
  writeFileSync(f, execFileSync('gzip', ['-dc', join(root, 'boot', `symvers-${krel}.gz`)], { maxBuffer: 1 << 28 }));
  return f;
};
const placed = eight.map(({ k, as }) => {
  const krel = as ?? k.krel;
  const dir = join(root, 'lib/modules', krel, 'extra');
  mkdirSync(dir, { recursive: true });
  copyFileSync(module, join(dir, 'kabi_consumer.ko'));
  copyFileSync(provider, join(dir, 'kabi_provider.ko'));
  return { krel, symvers: symvers(krel) };
});
const tDepmod = await median(
  () => {
    for (const p of placed) spawnSync('depmod', ['-b', root, '-n', '-e', '-E', p.symvers, p.krel], { stdio: 'ignore' });
  },
  1,
  { warm: false },
);
rows.push({ what: `2 modules × ${eight.length} kernels, depmod semantics`, kabi: fmtMs(tKabi), reference: `depmod -n -e -E per kernel: ${fmtMs(tDepmod)}`, ratio: ratio(tDepmod, tKabi) });
rows.push({ what: `2 modules × ${eight.length} kernels, loader semantics`, kabi: fmtMs(tKabiLoader), reference: `(same depmod runs) ${fmtMs(tDepmod)}`, ratio: ratio(tDepmod, tKabiLoader) });
json.oneModuleEightKernels = { kernels: eight.length, kabiMs: tKabi, kabiLoaderMs: tKabiLoader, depmodMs: tDepmod };

// Every in-tree module of one kernel against its own symvers.
for (const k of [newest61, amd64.find((x) => x.series === '6.12' && x.role === 'newest')]) {
  const r2 = buildRoot([{ k }]);
  let files = moduleFiles(join(r2, 'lib/modules', k.krel));
  if (quick) files = files.slice(0, 300);
  // Both sides read the same files: bring them into the page cache first, so that whichever
  // runs first does not pay for the disk (kabi did, and depmod then read them from memory).
  for (const f of files) readFileSync(f);
  const clock0 = { ...checkClock };
  const tAll = await median(() => checkModules(files, { root: r2, kernels: [k.krel], semantics: 'depmod' }), 1, { warm: false });
  // Where the whole-tree check's time went (one run): reading the modules (on threads for
  // compressed ones), the kernel's model (tree scan, symvers), in-tree providers, verdicts.
  const spent = Object.fromEntries(Object.keys(checkClock).map((key) => [key, Math.round(checkClock[key] - clock0[key])]));
  const sv = join(mkdtempSync(join(tmpdir(), 'kabi-sv-')), 'Module.symvers');
  copyFileSync(k.symvers, sv);
  const tDep = await median(() => void spawnSync('depmod', ['-b', r2, '-n', '-e', '-E', sv, k.krel], { stdio: 'ignore' }), 1, { warm: false });
  rows.push({ what: `every in-tree module of ${k.krel} (${files.length}) vs its symvers`, kabi: fmtMs(tAll), reference: `depmod -n -e -E: ${fmtMs(tDep)}`, ratio: ratio(tDep, tAll) });
  rows.push({ what: `  where the time goes (ms)`, kabi: `read modules ${spent.readMs}, kernel model ${spent.modelMs}, providers ${spent.providersMs}, verdicts ${spent.verdictMs}`, reference: '', ratio: '' });
  // The same check again in this process: the parsers' code is optimized by now (the first
  // pass pays V8's warm-up over thousands of modules; a CLI run always does).
  const again0 = { ...checkClock };
  const tAgain = await median(() => checkModules(files, { root: r2, kernels: [k.krel], semantics: 'depmod' }), 1, { warm: false });
  const againRead = Math.round(checkClock.readMs - again0.readMs);
  rows.push({ what: `  the same check again (code warm)`, kabi: `${fmtMs(tAgain)} (read modules ${againRead})`, reference: `depmod -n -e -E: ${fmtMs(tDep)}`, ratio: ratio(tDep, tAgain) });
  json[`inTree-${k.krel}`] = { modules: files.length, kabiMs: tAll, depmodMs: tDep, spent, warmKabiMs: tAgain, warmReadMs: againRead };
}

console.log(table(rows));
console.log('BENCH-JSON ' + JSON.stringify(json));
