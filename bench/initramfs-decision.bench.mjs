// The decision every path takes after modules change — "would this image's generator put
// anything else into it?" — for 8 kernels' images at once, against one run of the generator
// itself. A root with a Debian 6.1 kernel's whole module tree under 8 release names; Debian's
// dracut with its default configuration (not hostonly) builds the first kernel's image (that
// run is the yardstick); the other 7 images are the same image with the module directory
// renamed. The change, per kernel: extra/kabi_minimal.ko (named in add_drivers, so in the
// image) replaced by another build, and extra/kabi_consumer.ko (which no rule selects) added. The decision runs as one
// `node` process (the built library: read each image, decompress, compare, evaluate dracut's
// rules), timed under /usr/bin/time like the generator, cold: kabi keeps no listing of an image
// between runs. Goal: under 10% of one generator run. Printed too: CPU time, peak RSS, and
// where kabi's time goes by phase.
//
//   node bench/initramfs-decision.bench.mjs [--quick]   (needs `npm run build`, root, dracut, unshare)

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { namespaceScript } from './lib.mjs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 1 : 3;
const KERNELS = 8;
const here = dirname(fileURLToPath(import.meta.url));
// A private copy of dist/ (the tree is shared; a concurrent build empties dist/).
const snapshot = join(here, '..', 'node_modules', '.cache', `kabi-bench-decision-${process.pid}`);
cpSync(join(here, '..', 'dist'), snapshot, { recursive: true });
process.on('exit', () => rmSync(snapshot, { recursive: true, force: true }));
const lib = join(snapshot, 'src', 'initramfs', 'index.js');
const codecs = join(snapshot, 'native-bindings', 'index.js');

const manifestPath = execFileSync(process.execPath, [join(here, '..', 'corpus', 'debian', 'fetch.mjs'), '--print-manifest-path'], { encoding: 'utf8' }).trim().split('\n').pop();
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const pick = (role) => manifest.kernels.find((k) => k.arch === 'amd64' && k.series === '6.1' && k.role === role);
const K = pick('newest');
const OTHER = pick('oldest');
const releases = Array.from({ length: KERNELS }, (_, i) => (i === 0 ? K.krel : `${K.krel.replace(/-amd64$/, '')}.${i}-amd64`));

const work = mkdtempSync(join(tmpdir(), 'kabi-bench-decision-'));
const root = join(work, 'root');
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function timed(argv, env = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', 'KABI-TIME %e %M %U %S', ...argv], { encoding: 'utf8', env: { ...process.env, TMPDIR: work, ...env }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  const m = /KABI-TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return { seconds: Number(m[1]), maxRssKiB: Number(m[2]), cpuSeconds: Number(m[3]) + Number(m[4]), stdout: r.stdout };
}

const ns = namespaceScript(work, { dracutConf: true });
const inNs = (argv) => ['unshare', '--mount', ns, root, work, ...argv];

// The kernels: one tree (hard links), several names.
mkdirSync(join(root, 'boot'), { recursive: true });
for (const r of releases) {
  const md = join(root, 'lib/modules', r);
  mkdirSync(dirname(md), { recursive: true });
  execFileSync('cp', ['-al', K.moduleDir, md]);
  mkdirSync(join(md, 'extra'), { recursive: true });
  copyFileSync(K.builtModules.kabi_minimal, join(md, 'extra', 'kabi_minimal.ko'));
  copyFileSync(K.config, join(root, 'boot', `config-${r}`));
  copyFileSync(K.systemMap, join(root, 'boot', `System.map-${r}`));
  execFileSync('depmod', ['-a', '-b', root, r]);
}

// Debian's defaults, and the driver named in add_drivers (so the image holds it).
mkdirSync(join(work, 'conf.d'), { recursive: true });
writeFileSync(join(work, 'conf.d', '10-bench.conf'), 'add_drivers+=" kabi_minimal "\n');

// One generator run: the yardstick, and the first kernel's image.
const image0 = join(root, 'boot', `initramfs-${K.krel}.img`);
const generator = [];
for (let i = 0; i < RUNS; i++) generator.push(timed(inNs(['dracut', '-q', '-f', `/boot/initramfs-${K.krel}.img`, K.krel])));

// The other images: the same, their module directory renamed.
const CLONE = `
import { readFileSync, writeFileSync } from 'node:fs';
import { parseImage, withEntries, writeCpioStream, writeCpioArchive } from ${JSON.stringify(lib)};
import { compress } from ${JSON.stringify(codecs)};
const [src, from, ...targets] = process.argv.slice(1);
const image = await parseImage(readFileSync(src));
for (const t of targets) {
  const [to, out] = t.split('=');
  const parts = [];
  for (const s of image.segments) {
    const rename = (n) => n.replace(new RegExp('(^|/)' + from.replace(/[.+]/g, '\\$&') + '(?=/|$)'), '$1' + to);
    const archives = s.stream.archives.map((a) => withEntries(a, a.entries.map((e) => (rename(e.name) !== e.name ? { ...e, name: rename(e.name), rawName: undefined } : e))));
    const stream = { ...s.stream, archives };
    parts.push(s.compression === undefined ? writeCpioArchive(archives[0]) : await compress(writeCpioStream(stream), s.compression, { level: 3 }));
  }
  writeFileSync(out, Buffer.concat(parts));
}
`;
execFileSync(process.execPath, ['--input-type=module', '-e', CLONE, image0, `lib/modules/${K.krel}`, ...releases.slice(1).map((r) => `lib/modules/${r}=${join(root, 'boot', `initramfs-${r}.img`)}`)], { maxBuffer: 1 << 26 });

// The change, in every kernel.
for (const r of releases) {
  const md = join(root, 'lib/modules', r);
  copyFileSync(OTHER.builtModules.kabi_minimal, join(md, 'extra', 'kabi_minimal.ko'));
  copyFileSync(K.builtModules.kabi_consumer, join(md, 'extra', 'kabi_consumer.ko'));
  execFileSync('depmod', ['-a', '-b', root, r]);
}

const DECIDE = `
import { analyseImage } from ${JSON.stringify(lib)};
const [root, ...releases] = process.argv.slice(1);
const t0 = performance.now();
const timings = { read: 0, decompress: 0, list: 0, modules: 0, rules: 0 };
const out = [];
for (const r of releases) {
  const { check } = await analyseImage({ root, release: r, timings, changedModules: ['/lib/modules/' + r + '/extra/kabi_minimal.ko', '/lib/modules/' + r + '/extra/kabi_consumer.ko'] });
  out.push(check.changes.map((c) => c.kind + ' ' + c.name).join(',') || 'none');
}
console.log(JSON.stringify({ ms: performance.now() - t0, timings, decisions: out }));
`;
const decision = [];
let decisions;
for (let i = 0; i < RUNS; i++) {
  const r = timed(inNs([process.execPath, '--input-type=module', '-e', DECIDE, '/', ...releases]));
  const res = JSON.parse(r.stdout.trim().split('\n').pop());
  decision.push({ ...r, timings: res.timings });
  decisions = res.decisions;
}
const expected = 'changed kabi_minimal';
if (!decisions.every((d) => d === expected)) throw new Error(`unexpected decisions: ${JSON.stringify(decisions)}`);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const gen = median(generator.map((x) => x.seconds));
const dec = median(decision.map((x) => x.seconds));
const share = dec / gen;
const size = readFileSync(image0).length;
const medianRun = decision.find((x) => x.seconds === dec);
const peakMiB = (xs) => (Math.max(...xs.map((x) => x.maxRssKiB)) / 1024).toFixed(0);
console.log('| what | seconds | CPU seconds | peak RSS MiB |');
console.log('|---|---|---|---|');
console.log(`| one dracut run (Debian defaults, not hostonly, ${(size / 1048576).toFixed(1)} MiB image) | ${gen.toFixed(2)} | ${median(generator.map((x) => x.cpuSeconds)).toFixed(2)} | ${peakMiB(generator)} |`);
console.log(`| kabi's decision for ${KERNELS} kernels' images (one process, cold: no state from an earlier run) | ${dec.toFixed(2)} | ${medianRun.cpuSeconds.toFixed(2)} | ${peakMiB(decision)} |`);
console.log(`\ndecision / generator = ${(share * 100).toFixed(1)}% (goal: under 10%); ${RUNS} run${RUNS === 1 ? '' : 's'} each, median`);
// Where kabi's time goes (the median run, summed over the images). The installed tree is read
// while the image is decompressed, so the phases add up to more than the wall time.
const t = medianRun.timings;
console.log(`\nkabi, by phase (ms over ${KERNELS} images): read ${t.read.toFixed(0)}, decompress (waiting for zlib) ${t.decompress.toFixed(0)}, list (cpio walk) ${t.list.toFixed(0)}, installed modules (meanwhile) ${t.modules.toFixed(0)}, rules and comparison ${t.rules.toFixed(0)}`);
console.log('BENCH-JSON ' + JSON.stringify({ name: 'initramfs-decision', kernels: KERNELS, imageBytes: size, generatorSeconds: gen, decisionSeconds: dec, decisionCpuSeconds: medianRun.cpuSeconds, decisionPeakRssMiB: Number(peakMiB(decision)), phasesMs: t, share, goal: 0.1, met: share < 0.1, runs: RUNS }));
if (share >= 0.1) process.exitCode = 1;
