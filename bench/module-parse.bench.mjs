// Issue 2: modules parsed per second over whole Debian trees, against kmod's
// `modprobe --dump-modversions` over the same files (start-up: startup.bench.mjs).
import { spawn } from 'node:child_process';
import { corpus, fmtMs, median, moduleFiles, quick, ratio, table } from './lib.mjs';
import { ModuleCache } from '../dist/src/compat/kernel-model.js';
import { mapPool } from '../dist/src/util/pool.js';

const c = corpus();
const trees = [c.kernels.find((k) => k.series === '6.12' && k.role === 'newest'), c.kernels.find((k) => k.series === '6.1' && k.role === 'newest' && k.arch === 'amd64')];
const rows = [];
const json = {};

/** modprobe --dump-modversions once per file, 2 at a time (this machine has 2 cores). */
async function kmodAll(files) {
  let i = 0;
  const worker = () =>
    new Promise((resolve) => {
      const next = () => {
        if (i >= files.length) return resolve();
        const f = files[i++];
        const p = spawn('modprobe', ['--dump-modversions', f], { stdio: ['ignore', 'ignore', 'ignore'] });
        p.on('close', next);
      };
      next();
    });
  await Promise.all([worker(), worker()]);
}

/** What kabi's bulk paths do: a fresh ModuleCache (worker threads past 64 files). */
async function kabiAll(files) {
  const cache = new ModuleCache();
  await mapPool(files, 32, (f) => cache.read(f));
}

for (const k of trees) {
  let files = moduleFiles(k.moduleDir);
  if (quick) files = files.slice(0, 400);
  const tKabi = await median(() => kabiAll(files), quick ? 1 : 3);
  const tKmod = await median(() => kmodAll(files), 1, { warm: false });
  const label = `${k.krel} (${files.length} ${k.compression === 'xz' ? '.ko.xz' : '.ko'})`;
  rows.push({
    what: `parse every module of ${label}`,
    kabi: `${fmtMs(tKabi)} (${Math.round((files.length / tKabi) * 1000)}/s)`,
    reference: `modprobe --dump-modversions per file: ${fmtMs(tKmod)} (${Math.round((files.length / tKmod) * 1000)}/s)`,
    ratio: ratio(tKmod, tKabi),
  });
  json[k.krel] = { files: files.length, kabiMs: tKabi, kmodMs: tKmod, perSecondKabi: (files.length / tKabi) * 1000, perSecondKmod: (files.length / tKmod) * 1000 };
}

console.log(table(rows));
console.log('BENCH-JSON ' + JSON.stringify(json));
