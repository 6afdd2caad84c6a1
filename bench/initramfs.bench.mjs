// Native initramfs update against `dracut -f` making the same change, on a real dracut image of a
// Debian 6.1 kernel from the corpus, for zstd, xz, gzip and lz4 images. dracut compresses at
// its own levels (zstd -15, xz -6 with a 1 MiB dictionary and -T0, gzip -9, lz4 -l -9); kabi at
// its defaults (zstd -9, gzip -6, lz4 -l -6; xz and lz4 keep the blocks the change did not
// reach and encode the rest, xz at preset 3, lz4 mostly from its old sequences). The change: kabi_minimal.ko in extra/ replaced by
// another build. kabi runs through its public API (the bundled package entry), as a library
// user or `kabi initramfs update --strategy native` would.
// Both sides run as child processes under /usr/bin/time, so wall time and peak RSS are measured
// the same way. dracut runs in a private mount namespace over a temp root; /lib/modules and /boot
// of this machine are never touched.
//
//   node bench/initramfs.bench.mjs [--quick] [--runs N] [--format F]...   (needs `npm run build`, root, dracut, unshare)

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { namespaceScript } from './lib.mjs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const quick = process.argv.includes('--quick');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : quick ? 1 : 3;
// `--format lz4` (repeatable) measures only those formats, to iterate on one of them.
const FORMATS = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--format' ? [a] : []));
const here = dirname(fileURLToPath(import.meta.url));
// A private copy of dist/: the tree is shared, and a concurrent `npm run build` empties dist/
// while the children below import from it. Under node_modules so packages still resolve.
const snapshot = join(here, '..', 'node_modules', '.cache', `kabi-bench-initramfs-${process.pid}`);
cpSync(join(here, '..', 'dist'), snapshot, { recursive: true });
process.on('exit', () => rmSync(snapshot, { recursive: true, force: true }));
const lib = join(snapshot, 'lib', 'index.js');

const manifestPath = execFileSync(process.execPath, [join(here, '..', 'corpus', 'debian', 'fetch.mjs'), '--print-manifest-path'], { encoding: 'utf8' }).trim().split('\n').pop();
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const pick = (role) => manifest.kernels.find((k) => k.arch === 'amd64' && k.series === '6.1' && k.role === role);
const K = pick('newest');
const OTHER = pick('oldest');

// A typical storage/filesystem driver set, so the image is more than a toy (dracut adds their dependencies).
const DRIVERS = quick
  ? ['loop', 'kabi_minimal']
  : ['loop', 'kabi_minimal', 'ahci', 'nvme', 'virtio_blk', 'virtio_scsi', 'sd_mod', 'ext4', 'xfs', 'btrfs', 'dm_mod', 'raid1', 'usb_storage', 'uas', 'xhci_pci'];

const work = mkdtempSync(join(tmpdir(), 'kabi-bench-initramfs-'));
const root = join(work, 'root');
const md = join(root, 'lib/modules', K.krel);

function prepare() {
  mkdirSync(md, { recursive: true });
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) copyFileSync(join(K.moduleDir, f), join(md, f));
  // Hard links: the corpus tree is read-only for us and nothing here writes to these files.
  execFileSync('cp', ['-al', join(K.moduleDir, 'kernel'), join(md, 'kernel')]);
  mkdirSync(join(md, 'extra'), { recursive: true });
  copyFileSync(K.builtModules.kabi_minimal, join(md, 'extra', 'kabi_minimal.ko'));
  mkdirSync(join(root, 'boot'), { recursive: true });
  copyFileSync(K.config, join(root, 'boot', `config-${K.krel}`));
  copyFileSync(K.systemMap, join(root, 'boot', `System.map-${K.krel}`));
  const fw = join(work, 'fw');
  mkdirSync(join(fw, 'intel-ucode'), { recursive: true });
  writeFileSync(join(fw, 'intel-ucode', '06-55-04'), 'dummy intel microcode');
  const ns = namespaceScript(work);
  symlinkSync(ns, join(work, 'ns'));
  inNs(['depmod', '-a', K.krel]);
}

function inNs(argv) {
  const r = spawnSync('unshare', ['--mount', join(work, 'ns.sh'), root, work, ...argv], { encoding: 'utf8', env: { ...process.env, TMPDIR: work } });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

function dracutArgv(format, out) {
  return ['dracut', '--no-hostonly', '--quiet', '-m', 'kernel-modules', '--drivers', DRIVERS.join(' '), '--early-microcode', '--fwdir', join(work, 'fw'), `--${format}`, '--tmpdir', work, '-f', out, K.krel];
}

/** Run argv under /usr/bin/time; returns wall seconds, peak RSS in KiB and the native run's phases. */
function timed(argv) {
  const r = spawnSync('/usr/bin/time', ['-f', 'KABI-TIME %e %M', ...argv], { encoding: 'utf8', env: { ...process.env, TMPDIR: work } });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  const m = /KABI-TIME ([\d.]+) (\d+)/.exec(r.stderr);
  const t = /KABI-PHASES (.*)/.exec(r.stdout);
  return { seconds: Number(m[1]), maxRssKiB: Number(m[2]), ...(t ? JSON.parse(t[1]) : {}) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const NATIVE = `
const t0 = performance.now();
const { initramfs } = await import(${JSON.stringify(lib)});
const timings = { read: 0, decompress: 0, list: 0, modules: 0, rules: 0, plan: 0, depmod: 0, compress: 0, write: 0 };
const t1 = performance.now();
const r = await initramfs.update(process.argv[2], { root: process.argv[1], strategy: 'native', timings });
const u = r.update;
if (!u || !u.updated) { console.error('nothing updated'); process.exit(1); }
const blocks = u.segmentsRewritten.find((s) => s.blocks)?.blocks;
console.log('KABI-PHASES ' + JSON.stringify({ load: t1 - t0, total: performance.now() - t1, timings, blocks, bytesAfter: u.bytesAfter }));
`;

prepare();
const image = join(root, 'boot', `initramfs-${K.krel}.img`);
const rows = [];
const json = {};
for (const format of FORMATS.length ? FORMATS : ['zstd', 'xz', 'gzip', 'lz4']) {
  // The image before the change, made by dracut.
  const pristine = join(work, `pristine-${format}.img`);
  copyFileSync(K.builtModules.kabi_minimal, join(md, 'extra', 'kabi_minimal.ko'));
  inNs(['depmod', '-a', K.krel]);
  inNs(dracutArgv(format, pristine));
  // The change.
  copyFileSync(OTHER.builtModules.kabi_minimal, join(md, 'extra', 'kabi_minimal.ko'));
  inNs(['depmod', '-a', K.krel]);

  const native = [];
  for (let i = 0; i < RUNS; i++) {
    copyFileSync(pristine, image);
    native.push(timed([process.execPath, '--input-type=module', '-e', NATIVE, root, K.krel]));
  }
  const dracut = [];
  for (let i = 0; i < RUNS; i++) {
    dracut.push(timed(['unshare', '--mount', join(work, 'ns.sh'), root, work, ...dracutArgv(format, join(work, `dracut-${format}.img`))]));
  }
  const nt = median(native.map((x) => x.seconds));
  const dt = median(dracut.map((x) => x.seconds));
  const nm = Math.max(...native.map((x) => x.maxRssKiB));
  const dm = Math.max(...dracut.map((x) => x.maxRssKiB));
  const size = readFileSync(pristine).length;
  rows.push([`update one module, ${format} image (${(size / 1048576).toFixed(1)} MiB), wall s`, nt.toFixed(2), dt.toFixed(2), `${(dt / nt).toFixed(1)}x faster`]);
  rows.push([`  peak RSS, MiB (dracut: its largest process)`, (nm / 1024).toFixed(0), (dm / 1024).toFixed(0), `${(nm / 1024 / (size / 1048576)).toFixed(1)}x the image`]);
  // Where kabi's time goes, in the median run: module loading, then the analysis (reading and
  // decompressing the image, listing its members, reading the installed tree, the generator's
  // rules), planning the edits, depmod over the edited tree, compressing, writing + verifying.
  const mid = native.find((x) => x.seconds === nt) ?? native[0];
  const t = mid.timings;
  const ms = (v) => `${Math.round(v)}`;
  const blocks = mid.blocks ? `, ${mid.blocks.kept} blocks kept, ${mid.blocks.encoded} encoded` : '';
  rows.push([
    `  where kabi's time goes (ms, median run)`,
    `load ${ms(mid.load)}, read+decompress ${ms(t.read + t.decompress)}, list ${ms(t.list)}, installed tree ${ms(t.modules)}, rules ${ms(t.rules)}, plan ${ms(t.plan)}, depmod ${ms(t.depmod)}, compress ${ms(t.compress)}${blocks}, write+verify ${ms(t.write)}`,
    '',
    '',
  ]);
  json[format] = { imageBytes: size, bytesAfter: mid.bytesAfter, nativeSeconds: nt, dracutSeconds: dt, speedup: dt / nt, nativeMaxRssKiB: nm, dracutMaxRssKiB: dm, phases: { load: mid.load, ...t }, blocks: mid.blocks, runs: RUNS };
}

console.log('| what | kabi (native) | dracut -f | ratio |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log(`\n(${RUNS} run${RUNS === 1 ? '' : 's'} each, median wall time; dracut: --no-hostonly -m kernel-modules, ${DRIVERS.length} drivers plus dependencies, early microcode.`);
console.log('"modules" runs while the image is read, so the phases add up to more than the wall time when they overlap.)');
console.log('BENCH-JSON ' + JSON.stringify({ name: 'initramfs', ...json }));
if (process.env.KABI_BENCH_KEEP) console.log(`kept ${work}`);
else rmSync(work, { recursive: true, force: true });
