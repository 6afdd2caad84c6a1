// kabi's native depmod against kmod's `depmod -a -b <copy>` on Debian trees of the corpus,
// in one run: a full run with no cache (cold: every module read, decompressed, parsed), a
// full run with the summary cache (warm: the tree rescanned and every file's identity
// checked, no module parsed), and one incremental update (a weak-updates link added or
// removed, only that change looked at; the outputs patched from the previous ones). kabi is
// called in-process, as the linker calls it, after two unmeasured updates (as kmod's first
// run is not measured either), and in a fresh process. A second kind of update, a link in
// updates/ overriding an in-tree module, moves that module out of modules.order's part of
// the module array and renumbers every module after it in every index.
// Also: where a cold run's time goes, from its own stats: scanning the tree, reading the
// modules (on reader threads: file I/O, decompressing, parsing; xz processes decoding batches
// of .ko.xz files, with their own CPU time), computing, rendering the
// files (the indexes most of it), writing them, writing the cache; wall and CPU time, since
// on a shared machine a phase's wall time says as much about the other processes.
//
//   node bench/depmod.bench.mjs [--quick]     (after `npm run build`)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDepmod, CACHE_DIR } from '../dist/src/depmod/index.js';

const quick = process.argv.includes('--quick');
const manifestPath = execFileSync(process.execPath, [new URL('../corpus/debian/fetch.mjs', import.meta.url).pathname, '--print-manifest-path'], { encoding: 'utf8' }).trim().split('\n').pop();
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const pick = (series) => manifest.kernels.find((k) => k.arch === 'amd64' && k.series === series && k.role === 'newest');
const kernels = quick ? [pick('6.1')] : [pick('6.1'), pick('6.12')];
const runs = quick ? 3 : 5;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(x < 100 ? 1 : 0)} ms`;
const rows = [];
const json = [];
const cleanup = [];

function depmodWall(root, krel) {
  const t = performance.now();
  const r = spawnSync('depmod', ['-a', '-b', root, krel], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`depmod failed on ${root}`);
  return performance.now() - t;
}

/** The same call in a fresh node process: start-up, module loading and a cold JIT included. */
const PROCESS_SCRIPT = `
const { runDepmod } = await import(${JSON.stringify(new URL('../dist/src/depmod/index.js', import.meta.url).href)});
const [root, release, changes] = process.argv.slice(1);
const r = await runDepmod({ root, release, configRoot: '/', externalRoot: '/', ...(changes ? { changes: JSON.parse(changes) } : {}) });
if (r.status !== 0 || (changes && !r.stats.patched)) {
  console.error('kabi depmod in a fresh process:', JSON.stringify({ status: r.status, stats: r.stats, messages: r.messages.slice(0, 5), changes }));
  process.exit(3);
}
`;
function kabiProcess(root, krel, changes) {
  const t = performance.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', PROCESS_SCRIPT, root, krel, ...(changes ? [JSON.stringify(changes)] : [])], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`kabi depmod process failed (${r.status})`);
  return performance.now() - t;
}

async function kabi(root, krel, extra = {}) {
  const t = performance.now();
  const r = await runDepmod({ root, release: krel, configRoot: '/', externalRoot: '/', ...extra });
  const wall = performance.now() - t;
  if (r.status !== 0) throw new Error(`kabi depmod failed: ${r.messages.map((m) => m.text).join('')}`);
  return { wall, stats: r.stats };
}

/** The cold run's phases, and the readers' own split of the reading. */
function whereTimeGoes(t) {
  const phase = (name, label = name) => `${label} ${Math.round(t[name] ?? 0)}/${Math.round(t[`cpu.${name}`] ?? 0)}`;
  const threads = t['read.threads'] ? `${t['read.threads']} threads` : 'in-process';
  const busy = t['read.busyMs'] ?? 0;
  const io = (t['read.readMs'] ?? 0) + (t['read.statMs'] ?? 0);
  const xz = t['read.decompressMs'] ?? 0;
  // .ko.xz batches decoded by xz processes: the readers wait for them (decompress), and their
  // CPU time is their own, outside this process's.
  const procs = t['read.xzProcesses'] ? ` (${t['read.xzProcesses']} xz processes, ${Math.round(t['read.xzCpuMs'] ?? 0)} ms CPU)` : '';
  const readers = `(readers, ${threads}, busy ${Math.round(busy)}: I/O ${Math.round(io)}, decompress ${Math.round(xz)}${procs}, parse ${Math.round(busy - io - xz)}; merge ${Math.round(t['read.mergeMs'] ?? 0)})`;
  return [phase('scan'), `${phase('read')} ${readers}`, phase('compute'), phase('render', 'index+render'), phase('write'), phase('cache-write')].join(', ');
}

try {
  for (const k of kernels) {
    const work = mkdtempSync(join(tmpdir(), 'kabi-depmod-bench-'));
    cleanup.push(work);
    const kmodRoot = join(work, 'kmod');
    const kabiRoot = join(work, 'kabi');
    // kabi's copy is a real one: its cache knows files by inode, size, mtime and ctime, and
    // any hard link made to a corpus file anywhere on this machine (other tests copy the
    // corpus with cp -al) changes the ctime of every link to it.
    mkdirSync(kmodRoot);
    execFileSync('cp', ['-al', `${k.treeRoot}/.`, kmodRoot]);
    mkdirSync(kabiRoot);
    execFileSync('cp', ['-a', `${k.treeRoot}/.`, kabiRoot]);
    const moduleDir = join(kabiRoot, 'lib', 'modules', k.krel);
    // kabi keeps its cache under the root's /var/cache (none in a root without one).
    mkdirSync(join(kabiRoot, 'var', 'cache'), { recursive: true });
    const cacheFile = join(kabiRoot, CACHE_DIR, k.krel);
    const label = `${k.krel} (${k.moduleCount} ${k.compression === 'xz' ? '.ko.xz' : '.ko'})`;

    // kmod, alternating with nothing else running; its page cache is as warm as ours.
    depmodWall(kmodRoot, k.krel);
    const kmodTimes = Array.from({ length: runs }, () => depmodWall(kmodRoot, k.krel));
    const kmodMs = median(kmodTimes);

    // Cold: no cache at all (files in the page cache, as for kmod); the first call in this
    // process (as the linker's first), then again with the cache removed.
    const colds = [];
    for (let i = 0; i < runs; i++) {
      rmSync(cacheFile, { force: true });
      colds.push(await kabi(kabiRoot, k.krel));
    }
    const cold = colds.slice().sort((a, b) => a.wall - b.wall)[Math.floor(colds.length / 2)];
    // Warm: full rescan with every module's identity checked against the cache.
    const warm = [];
    await kabi(kabiRoot, k.krel);
    if (!existsSync(cacheFile)) throw new Error(`no depmod cache at ${cacheFile}: the warm runs would be cold`);
    for (let i = 0; i < runs; i++) warm.push((await kabi(kabiRoot, k.krel)).wall);
    // Incremental: a weak-updates link added, then removed, alternately.
    mkdirSync(join(moduleDir, 'weak-updates'), { recursive: true });
    const ext = k.compression === 'xz' ? '.ko.xz' : '.ko';
    const link = join(moduleDir, 'weak-updates', `kabi_bench_dummy${ext}`);
    const sys = `/lib/modules/${k.krel}/weak-updates/kabi_bench_dummy${ext}`;
    await kabi(kabiRoot, k.krel);
    /** Alternately adds and removes a link; the wall times of all but the first `warmup`. */
    const updates = async (rel, target, count, warmup) => {
      const at = join(moduleDir, rel);
      mkdirSync(join(at, '..'), { recursive: true });
      const times = [];
      for (let i = 0; i < warmup + count; i++) {
        const add = i % 2 === 0;
        if (add) symlinkSync(target, at);
        else unlinkSync(at);
        const r = await kabi(kabiRoot, k.krel, { changes: [{ kind: add ? 'added' : 'removed', path: `/lib/modules/${k.krel}/${rel}` }] });
        if (!r.stats.patched) throw new Error('the update was not patched in');
        if (i >= warmup) times.push(r.wall);
      }
      return times;
    };
    const inc = await updates(`weak-updates/kabi_bench_dummy${ext}`, `../kernel/drivers/net/dummy${ext}`, runs * 2, 2);
    const override = await updates(`updates/dummy${ext}`, `../kernel/drivers/net/dummy${ext}`, runs * 2, 2);
    // The same two, each in a fresh process (what one `kabi` invocation pays).
    const warmProc = Array.from({ length: runs }, () => kabiProcess(kabiRoot, k.krel));
    const incProc = [];
    for (let i = 0; i < runs * 2; i++) {
      const add = i % 2 === 0;
      if (add) symlinkSync(`../kernel/drivers/net/dummy${ext}`, link);
      else unlinkSync(link);
      incProc.push(kabiProcess(kabiRoot, k.krel, [{ kind: add ? 'added' : 'removed', path: sys }]));
    }

    const warmMs = median(warm);
    const incMs = median(inc);
    rows.push([`${label}: full, cold (no cache)`, ms(cold.wall), ms(kmodMs), `${(kmodMs / cold.wall).toFixed(2)}×`]);
    rows.push([`${label}: full, cold, first call in the process (JIT cold)`, ms(colds[0].wall), ms(kmodMs), `${(kmodMs / colds[0].wall).toFixed(2)}×`]);
    rows.push([`${label}: full, warm (cache, tree rescanned)`, ms(warmMs), ms(kmodMs), `${(kmodMs / warmMs).toFixed(2)}×`]);
    rows.push([`${label}: incremental (one link added/removed)`, ms(incMs), ms(kmodMs), `${(kmodMs / incMs).toFixed(1)}×`]);
    const overrideMs = median(override);
    rows.push([`${label}: incremental, link overriding an in-tree module (renumbers)`, ms(overrideMs), ms(kmodMs), `${(kmodMs / overrideMs).toFixed(1)}×`]);
    const warmProcMs = median(warmProc);
    const incProcMs = median(incProc);
    rows.push([`${label}: full, warm, fresh node process`, ms(warmProcMs), ms(kmodMs), `${(kmodMs / warmProcMs).toFixed(2)}×`]);
    rows.push([`${label}: incremental, fresh node process`, ms(incProcMs), ms(kmodMs), `${(kmodMs / incProcMs).toFixed(1)}×`]);
    rows.push([`${label}: cold, where the time goes, wall / CPU (all threads)`, whereTimeGoes(cold.stats.timings), '', '']);
    json.push({
      kernel: k.krel,
      modules: k.moduleCount,
      compression: k.compression,
      depmodMs: kmodMs,
      coldMs: cold.wall,
      warmMs,
      incrementalMs: incMs,
      incrementalOverrideMs: overrideMs,
      coldTimings: cold.stats.timings,
      warmProcessMs: warmProcMs,
      incrementalProcessMs: incProcMs,
      ratios: { cold: kmodMs / cold.wall, warm: kmodMs / warmMs, incremental: kmodMs / incMs, incrementalOverride: kmodMs / overrideMs, warmProcess: kmodMs / warmProcMs, incrementalProcess: kmodMs / incProcMs },
    });
    rmSync(cacheFile, { force: true });
  }
} finally {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
}

console.log('| what | kabi | depmod -a | ratio (depmod / kabi) |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log(`\nMedians of ${runs} runs (incremental: ${runs * 2}, after 2 unmeasured); kabi in-process through runDepmod(), kmod as \`depmod -a -b <copy>\`; 2 cores, shared.`);
console.log('BENCH-JSON ' + JSON.stringify({ bench: 'depmod', quick, results: json }));
