// SPDX-License-Identifier: GPL-2.0-or-later
//
// Real DKMS packages from Debian, built by dkms itself against every corpus kernel the test
// modules are built for: the modules out-of-tree vendors and users actually install.
//
// Which sources: every version of the packages in DKMS_PACKAGES that the private apt
// configuration offers in bookworm, bookworm-backports, trixie, trixie-backports or sid. Each is
// built for each kernel in the chroot of the kernel's own release (bookworm: gcc-12, dkms 3.0;
// trixie and 7.x: gcc-14, dkms 3.2), where /lib/modules/K/build points at the corpus's header set:
// `dkms add` + `dkms build -k K` in a throw-away overlay, so the modules come out as dkms makes
// them (signed with a throw-away MOK key where dkms signs; uncompressed: only `dkms install`
// compresses).
//
// Which builds must succeed: a package is expected to build for the kernels of the release it
// was uploaded to (bookworm → bookworm 6.1; bookworm-backports → bookworm 6.1 and 6.12; trixie →
// trixie 6.12; trixie-backports → trixie 6.12 and 7.x; sid → 7.x). Such a build failing, or dkms
// declaring it excluded (BUILD_EXCLUSIVE_*), stops the corpus with the build log. Every other
// pair is tried too and its outcome recorded ('built', 'failed' with the first compiler error,
// 'excluded'): that is what "against every kernel they support" means here, measured.
//
// Cache: <cache>/dkms/src/<deb file stem>/ (extracted package), <cache>/dkms/built/<krel>/<pkg>_<ver>/
// (the modules, make.log, a stamp keyed by the package, the header set and the toolchain).

import fs from 'node:fs';
import path from 'node:path';
import { offered } from './apt.mjs';
import { toolchainId, toolchainRun } from './toolchains.mjs';
import { CACHE, CorpusError, inParallel, log, readJson, rmrf, run, sameJson } from './util.mjs';

/** Bump to rebuild every DKMS module. */
const DKMS_RECIPE = 1;

/**
 * v4l2loopback (videodev's GPL-only exports after GPL-only ones of vmlinux: the licence rule),
 * acpi-call (plain, ACPI), ddcci (two modules, ddcci-backlight needs ddcci: an out-of-tree
 * provider) and vhba (SCSI host: in-tree providers).
 */
export const DKMS_PACKAGES = ['v4l2loopback-dkms', 'acpi-call-dkms', 'ddcci-dkms', 'vhba-dkms'];

const SOURCE_SUITES = ['bookworm', 'bookworm-updates', 'bookworm-security', 'bookworm-backports', 'trixie', 'trixie-updates', 'trixie-security', 'trixie-backports', 'sid'];

/** The corpus kernels a package uploaded to `suite` is expected to build for. */
export function expectedToBuild(suite, kernel) {
  const release = suite.replace(/-(updates|security)$/, '');
  switch (release) {
    case 'bookworm':
      return kernel.suite === 'bookworm' && kernel.series === '6.1';
    case 'bookworm-backports':
      return kernel.suite === 'bookworm';
    case 'trixie':
      return kernel.suite === 'trixie';
    case 'trixie-backports':
      return kernel.suite === 'trixie' || kernel.suite === 'trixie-backports';
    case 'sid':
      return kernel.suite === 'trixie-backports';
    default:
      throw new CorpusError(`no expectation for DKMS packages from ${suite}`);
  }
}

/** Every offered version of the DKMS packages, with the suites offering it. */
function selectSources(apt) {
  const rows = apt.madison(DKMS_PACKAGES);
  const out = [];
  for (const name of DKMS_PACKAGES) {
    const versions = offered(rows, name, 'amd64', (s) => SOURCE_SUITES.includes(s));
    if (versions.length === 0) throw new CorpusError(`the private apt offers no ${name} in ${SOURCE_SUITES.join(', ')}`);
    for (const version of versions) {
      const suites = [...new Set(rows.filter((r) => r.name === name && r.version === version && SOURCE_SUITES.includes(r.suite)).map((r) => r.suite))].sort();
      out.push({ name, arch: 'all', version, suites });
    }
  }
  return out;
}

/** Extract a -dkms package; returns its /usr/src/<NAME>-<VERSION> tree and dkms.conf's name and version. */
function extractSource(p) {
  const dir = path.join(CACHE, 'dkms', 'src', p.file.replace(/\.deb$/, ''));
  const stampFile = path.join(dir, '.kabi-stamp.json');
  const stamp = { recipe: DKMS_RECIPE, deb: p.file, sha256: p.sha256 };
  if (!sameJson(readJson(stampFile), stamp)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    rmrf(tmp);
    fs.mkdirSync(tmp, { recursive: true });
    run('dpkg-deb', ['-x', p.path, tmp]);
    fs.writeFileSync(path.join(tmp, '.kabi-stamp.json'), `${JSON.stringify(stamp, null, 2)}\n`);
    rmrf(dir);
    fs.renameSync(tmp, dir);
  }
  const src = path.join(dir, 'usr', 'src');
  const trees = fs.existsSync(src) ? fs.readdirSync(src).filter((d) => fs.existsSync(path.join(src, d, 'dkms.conf'))) : [];
  if (trees.length !== 1) throw new CorpusError(`${p.file}: expected one /usr/src/<name>-<version>/dkms.conf, found ${trees.length}`);
  const conf = fs.readFileSync(path.join(src, trees[0], 'dkms.conf'), 'utf8');
  const field = (k) => new RegExp(`^\\s*${k}=["']?([^"'\\s]+)["']?\\s*$`, 'm').exec(conf)?.[1];
  const name = field('PACKAGE_NAME');
  const version = field('PACKAGE_VERSION');
  if (!name || !version || trees[0] !== `${name}-${version}`) {
    throw new CorpusError(`${p.file}: dkms.conf says ${name}/${version}, the tree is /usr/src/${trees[0]}`);
  }
  return { tree: path.join(src, trees[0]), dkmsName: name, dkmsVersion: version };
}

/** The first line of a build log that says what went wrong. */
function firstError(text) {
  const lines = text.split('\n');
  return (
    lines.find((l) => /\berror:|^ERROR: modpost|\*\*\* /.test(l)) ??
    lines.find((l) => /BUILD_EXCLUSIVE|does not match this kernel/i.test(l)) ??
    lines.filter((l) => l.trim()).slice(-1)[0] ??
    'no output'
  ).trim();
}

/** `dkms add` + `dkms build` of one source for one kernel, in an overlay of the toolchain's chroot. */
async function dkmsBuild(src, kernel, tc) {
  const out = path.join(CACHE, 'dkms', 'built', kernel.krel, `${src.name}_${src.version}`);
  const stampFile = path.join(out, '.kabi-stamp.json');
  const stamp = { recipe: DKMS_RECIPE, deb: src.file, headers: readJson(path.join(kernel.headersRoot, '.kabi-stamp.json')), toolchain: toolchainId(tc) };
  const old = readJson(stampFile);
  if (old && sameJson(old.stamp, stamp)) return { ...old.result, rebuilt: false };

  const tmp = `${out}.tmp-${process.pid}`;
  rmrf(tmp);
  fs.mkdirSync(tmp, { recursive: true });
  const K = kernel.krel;
  const { dkmsName: N, dkmsVersion: V } = src;
  // dkms finds the kernel through /lib/modules/K/build, as on an installed system; its exit
  // status 77 means the package's BUILD_EXCLUSIVE_* rules exclude this kernel.
  const script = [
    'set -u',
    `mkdir -p /lib/modules/${K} /usr/src`,
    `ln -s /mnt/kabi/headers/usr/src/linux-headers-${K} /lib/modules/${K}/build`,
    `cp -a /mnt/kabi/src /usr/src/${N}-${V}`,
    `dkms add -m ${N} -v ${V} > /mnt/kabi/out/dkms.log 2>&1 || exit 90`,
    `dkms build -j 1 -m ${N} -v ${V} -k ${K} >> /mnt/kabi/out/dkms.log 2>&1; rc=$?`,
    `cp /var/lib/dkms/${N}/${V}/build/make.log /mnt/kabi/out/make.log 2>/dev/null || true`,
    `if [ $rc = 0 ]; then cp /var/lib/dkms/${N}/${V}/${K}/*/module/* /mnt/kabi/out/ || exit 91; fi`,
    'exit $rc',
  ].join('\n');
  const r = await toolchainRun(tc, () => ['sh', '-c', script], { dirs: { headers: kernel.headersRoot, src: src.tree, out: tmp }, timeoutMs: 900_000 });
  const logText = ['dkms.log', 'make.log'].map((f) => (fs.existsSync(path.join(tmp, f)) ? fs.readFileSync(path.join(tmp, f), 'utf8') : '')).join('\n');
  if (r.timedOut) throw new CorpusError(`dkms build of ${src.name} ${src.version} for ${K} timed out`);
  if (r.status === 90 || r.status === 91) throw new CorpusError(`dkms ${r.status === 90 ? 'add' : 'left no module'} for ${src.name} ${src.version} / ${K}:\n${logText.slice(-3000)}\n${r.stderr}`);
  const modules = {};
  if (r.status === 0) {
    for (const f of fs.readdirSync(tmp).sort()) {
      const m = /^(.+)\.ko(\.(xz|zst|gz))?$/.exec(f);
      if (m) modules[m[1]] = path.join(out, f);
    }
    if (Object.keys(modules).length === 0) throw new CorpusError(`dkms built ${src.name} ${src.version} for ${K} but no module came out:\n${logText.slice(-2000)}`);
  }
  const result = {
    status: r.status === 0 ? 'built' : r.status === 77 ? 'excluded' : 'failed',
    modules,
    log: path.join(out, fs.existsSync(path.join(tmp, 'make.log')) ? 'make.log' : 'dkms.log'),
    ...(r.status === 0 ? {} : { error: firstError(logText), exitStatus: r.status }),
  };
  fs.writeFileSync(path.join(tmp, '.kabi-stamp.json'), `${JSON.stringify({ stamp, result }, null, 2)}\n`);
  rmrf(out);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.renameSync(tmp, out);
  return { ...result, rebuilt: true };
}

/**
 * Download, extract and build every DKMS source for every kernel in `targets`
 * ([{ entry, toolchain }]). Returns { sources, byKernel: krel → builds, debs, keep }.
 */
export async function prepareDkms(targets, apt) {
  if (targets.length === 0) return { sources: [], byKernel: new Map(), debs: [], keep: {} };
  if (!apt) throw new CorpusError('the DKMS sources come through the private apt configuration, which was not set up');
  const sources = apt.describe(selectSources(apt));
  await apt.download(sources);
  for (const s of sources) Object.assign(s, extractSource(s));
  log(`DKMS sources: ${sources.map((s) => `${s.name} ${s.version} (${s.suites.join(', ')})`).join('; ')}`);

  const jobs = [];
  for (const t of targets) for (const s of sources) jobs.push({ t, s });
  const byKernel = new Map(targets.map((t) => [t.entry.krel, []]));
  const results = new Map();
  let rebuilt = 0;
  const started = Date.now();
  await inParallel(jobs, 2, async ({ t, s }) => {
    const res = await dkmsBuild(s, t.entry, t.toolchain);
    if (res.rebuilt) rebuilt++;
    delete res.rebuilt;
    results.set(`${t.entry.krel}\0${s.file}`, res);
  });
  if (rebuilt) log(`${rebuilt} DKMS build(s) in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const broken = [];
  for (const { t, s } of jobs) {
    const res = results.get(`${t.entry.krel}\0${s.file}`);
    const expected = s.suites.some((suite) => expectedToBuild(suite, t.entry));
    if (expected && res.status !== 'built') broken.push(`${s.name} ${s.version} (${s.suites.join(', ')}) for ${t.entry.krel}: ${res.status}: ${res.error} (log: ${res.log})`);
    byKernel.get(t.entry.krel).push({
      source: s.name,
      version: s.version,
      dkmsName: s.dkmsName,
      dkmsVersion: s.dkmsVersion,
      suites: s.suites,
      expected,
      toolchain: t.toolchain.name,
      ...res,
    });
  }
  if (broken.length) throw new CorpusError(`DKMS packages that must build for these kernels did not:\n  ${broken.join('\n  ')}`);

  // Builds of sources no longer offered are removed with their kernel dir or here.
  const wanted = new Set(sources.map((s) => `${s.name}_${s.version}`));
  for (const t of targets) {
    const dir = path.join(CACHE, 'dkms', 'built', t.entry.krel);
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (!wanted.has(f)) rmrf(path.join(dir, f));
  }
  return {
    sources: sources.map((s) => ({ name: s.name, version: s.version, suites: s.suites, file: s.file, dkmsName: s.dkmsName, dkmsVersion: s.dkmsVersion })),
    byKernel,
    debs: sources.map((s) => s.file),
    keep: {
      'dkms/src': new Set(sources.map((s) => s.file.replace(/\.deb$/, ''))),
      'dkms/built': new Set(targets.map((t) => t.entry.krel)),
    },
  };
}
