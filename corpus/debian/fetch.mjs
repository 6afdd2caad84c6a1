#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-or-later
//
// Fetch and prepare the Debian kernel corpus the `real` test project runs against.
//
//   node corpus/debian/fetch.mjs                    everything (what the tests need)
//   node corpus/debian/fetch.mjs --only amd64       only some dpkg architectures (quick local runs)
//   node corpus/debian/fetch.mjs --print-manifest-path
//
// Cache (never inside the repository, never the machine's /lib/modules, /boot or /usr/src):
//   ${KABI_CORPUS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kabi-corpus}/
//     debs/<package file>.deb          apt-get download'ed, size + SHA256 checked against apt's index
//     apt/, apt-private/               apt's caches; the private apt configuration (see apt.mjs)
//     trees/<krel>/                    the kernel's packages extracted as installed: lib/modules/<krel>/
//                                      and boot/{System.map,config,vmlinuz}-<krel> (bookworm);
//                                      usr/lib/modules/<krel>/ with lib -> usr/lib (trixie: merged /usr),
//                                      and System.map, config, vmlinuz inside it (7.x)
//     headers/<krel>/                  linux-headers-<krel> + -common + linux-kbuild extracted into one root,
//                                      absolute symlinks and the Makefile's absolute include made relative
//     build/<krel>/                    copy of corpus/modules/ built with make (kept for debugging)
//     built/<krel>/<module>.ko         the built test modules, build.log, Module.symvers of the M= dir
//     chroots/                         bookworm and trixie build chroots (toolchains.mjs)
//     dkms/                            DKMS sources and their builds (dkms.mjs)
//     manifest.json
//
// Which kernels: chosen from what apt offers at run time, deterministically:
//   amd64 6.1 (linux-image-6.1.0-N-amd64-unsigned):            the oldest and the newest ABI, and
//     a twin (see below)
//   amd64 6.12 (linux-image-6.12.N+deb12-amd64-unsigned):      the oldest and the newest ABI
//   amd64 trixie 6.12 (linux-image-6.12.N+deb13-amd64-unsigned): the oldest and the newest ABI
//   amd64 trixie-backports 7.x (linux-binary-, linux-modules-, linux-base-7.N.M+deb13-amd64):
//     the oldest, the one before the newest, and the newest ABI
//   s390x 6.1 (-s390x), i386 6.1 (-686-pae-unsigned), armhf 6.1 (-armmp): the newest ABI, taken
//     from the main suites only (bookworm, bookworm-updates): the foreign indexes of the security
//     suite are not always there, and the choice must not depend on that.
// bookworm's come through this machine's apt, trixie's through a private apt configuration.
// An ABI qualifies only when its image packages, headers and headers-common are all offered in
// the same version. Every step is skipped when its stamp (keyed by the package file names, the
// layout version and, for builds, a hash of corpus/modules/ and the toolchain) says it is done.
// The test modules are built with each kernel's own release's compiler (toolchains.mjs): on this
// machine for bookworm, in a trixie chroot for trixie and 7.x. DKMS packages: see dkms.mjs.
//
// Plain Node (>= 20), no npm dependencies. Needs apt-get, apt-cache, dpkg-deb, make, gcc-12,
// objcopy, pahole (6.12 modules get BTF), modinfo, debootstrap: .ci/run installs them.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptSpec, hostApt, offered, pkgKey, privateApt } from './apt.mjs';
import { prebuildTestChroots } from './chroot.mjs';
import { prepareDkms } from './dkms.mjs';
import { TOOLCHAINS, toolchainId, toolchainRun } from './toolchains.mjs';
import { CACHE, CorpusError, compareDebVersions, duKiB, inParallel, isInside, log, readJson, rmrf, run, sameJson, satisfies, sleep, walk, writeFileAtomic } from './util.mjs';

const MANIFEST_VERSION = 2;
/** Bump to force every tree and header set to be extracted again. */
const LAYOUT_VERSION = 1;
/** Bump to force the test modules to be rebuilt (the module sources are hashed anyway). */
const BUILD_RECIPE = 1;

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODULE_SRC = path.join(REPO, 'corpus', 'modules');
const MANIFEST = path.join(CACHE, 'manifest.json');

const bookwormHostSuites = () => true;
const mainSuitesOnly = (suite) => !suite.endsWith('-security');

/**
 * What to fetch. `abi` matches the package that names an ABI (its first group); `pick` chooses
 * among the qualifying ABIs, ordered oldest first; `toolchain` builds the test modules (none:
 * the kernel is only parsed); `layout` says how Debian packages the kernel:
 *   image  linux-image-K[-unsigned]: modules, and System.map, config, vmlinuz in /boot
 *   split  linux-binary-K (vmlinuz), linux-modules-K, linux-base-K (System.map, config, …),
 *          everything in /usr/lib/modules/K (7.x)
 */
const SPECS = [
  {
    // twin: the newest other ABI that agrees with the newest on the test modules' imports
    // (corpus/modules/imports.txt), so weak-modules scenarios have somewhere to link into.
    arch: 'amd64', flavour: 'amd64', series: '6.1', suite: 'bookworm', apt: 'host', suiteOk: bookwormHostSuites,
    pick: ['oldest', 'newest', 'twin'], toolchain: 'host', layout: 'image', mergedUsr: false,
    abi: /^linux-image-(6\.1\.0-\d+)-amd64-unsigned$/,
  },
  {
    arch: 'amd64', flavour: 'amd64', series: '6.12', suite: 'bookworm', apt: 'host', suiteOk: bookwormHostSuites,
    pick: ['oldest', 'newest'], toolchain: 'host', layout: 'image', mergedUsr: false,
    abi: /^linux-image-(6\.12\.\d+\+deb12)-amd64-unsigned$/,
  },
  {
    arch: 'amd64', flavour: 'amd64', series: '6.12', suite: 'trixie', apt: 'private', suiteOk: (s) => /^trixie(-updates|-security)?$/.test(s),
    pick: ['oldest', 'newest'], toolchain: 'trixie', layout: 'image', mergedUsr: true,
    abi: /^linux-image-(6\.12\.\d+\+deb13)-amd64-unsigned$/,
  },
  {
    arch: 'amd64', flavour: 'amd64', series: '7.x', suite: 'trixie-backports', apt: 'private', suiteOk: (s) => s === 'trixie-backports',
    pick: ['oldest', 'previous', 'newest'], toolchain: 'trixie', layout: 'split', mergedUsr: true,
    abi: /^linux-modules-(7\.\d+\.\d+\+deb13)-amd64$/,
  },
  {
    arch: 's390x', flavour: 's390x', series: '6.1', suite: 'bookworm', apt: 'host', suiteOk: mainSuitesOnly,
    pick: ['newest'], layout: 'image', mergedUsr: false,
    abi: /^linux-image-(6\.1\.0-\d+)-s390x$/,
  },
  {
    arch: 'i386', flavour: '686-pae', series: '6.1', suite: 'bookworm', apt: 'host', suiteOk: mainSuitesOnly,
    pick: ['newest'], layout: 'image', mergedUsr: false,
    abi: /^linux-image-(6\.1\.0-\d+)-686-pae-unsigned$/,
  },
  {
    arch: 'armhf', flavour: 'armmp', series: '6.1', suite: 'bookworm', apt: 'host', suiteOk: mainSuitesOnly,
    pick: ['newest'], layout: 'image', mergedUsr: false,
    abi: /^linux-image-(6\.1\.0-\d+)-armmp$/,
  },
];

/** The packages that install a kernel, by layout. */
const IMAGE_ROLES = { image: ['image'], split: ['binary', 'modules', 'base'] };
const HEADER_ROLES = ['headers', 'common', 'kbuild'];

function packageNames(spec, abi, matched) {
  const krel = `${abi}-${spec.flavour}`;
  const images =
    spec.layout === 'split' ? { binary: `linux-binary-${krel}`, modules: `linux-modules-${krel}`, base: `linux-base-${krel}` } : { image: matched };
  return { ...images, headers: `linux-headers-${krel}`, common: `linux-headers-${abi}-common` };
}

/** Where a kernel's files are in its tree (paths relative to the tree root). */
function kernelFiles(spec, krel) {
  const moduleDir = path.join(spec.mergedUsr ? 'usr/lib/modules' : 'lib/modules', krel);
  if (spec.layout === 'split') {
    return { moduleDir, systemMap: path.join(moduleDir, 'System.map'), config: path.join(moduleDir, 'config'), vmlinuz: path.join(moduleDir, 'vmlinuz') };
  }
  return { moduleDir, systemMap: `boot/System.map-${krel}`, config: `boot/config-${krel}`, vmlinuz: `boot/vmlinuz-${krel}` };
}

// ---------------------------------------------------------------------------------------------
// choosing the kernels

/** Choose the kernels (and all their packages) from what apt offers now. */
function selectKernels(specs, apts) {
  const chosen = [];
  for (const [which, apt] of Object.entries(apts)) {
    const group = specs.filter((s) => s.apt === which);
    if (group.length > 0) chosen.push(...selectWith(apt, group));
  }
  // Keep SPECS order (tests that take the first match of a series get bookworm's).
  return chosen.sort((a, b) => specs.indexOf(a.spec) - specs.indexOf(b.spec));
}

function selectWith(apt, specs) {
  const names = apt.names('linux-');

  // Candidate ABIs per spec, from the package names apt knows, oldest first.
  const candidates = specs.map((spec) => {
    const abis = [];
    for (const name of names) {
      const m = spec.abi.exec(name);
      if (m) abis.push({ abi: m[1], names: packageNames(spec, m[1], name) });
    }
    return abis.sort((a, b) => compareDebVersions(a.abi, b.abi));
  });

  const queries = new Set();
  specs.forEach((spec, i) => {
    for (const c of candidates[i]) for (const [role, n] of Object.entries(c.names)) queries.add(role === 'common' ? n : `${n}:${spec.arch}`);
  });
  const rows = apt.madison([...queries]);

  const chosen = [];
  specs.forEach((spec, i) => {
    const qualifying = [];
    for (const c of candidates[i]) {
      const roles = Object.entries(c.names);
      const sets = roles.map(([role, n]) => new Set(offered(rows, n, spec.arch, spec.suiteOk)));
      const versions = [...sets[0]].filter((v) => sets.every((s) => s.has(v))).sort(compareDebVersions);
      if (versions.length === 0) continue;
      const version = versions[versions.length - 1];
      const pkgs = Object.fromEntries(roles.map(([role, n]) => [role, { name: n, arch: role === 'common' ? 'all' : spec.arch, version }]));
      qualifying.push({ abi: c.abi, version, pkgs });
    }
    const what = `${spec.arch} ${spec.suite} ${spec.series} (${spec.abi.source})`;
    if (qualifying.length === 0) {
      const hint =
        spec.apt === 'private'
          ? `see the private apt configuration in ${path.join(CACHE, 'apt-private')}`
          : spec.arch === 'amd64'
            ? 'run `apt-get update`'
            : `run \`dpkg --add-architecture ${spec.arch} && apt-get update\` (see .ci/run)`;
      throw new CorpusError(`apt offers no usable ${what} kernel (${Object.keys(packageNames(spec, 'X', 'X')).join(' + ')}): ${hint}`);
    }
    const last = qualifying.length - 1;
    const picks = spec.pick.map((p) =>
      p === 'oldest' ? qualifying[0] : p === 'newest' ? qualifying[last] : p === 'previous' ? qualifying[last - 1] : qualifying[last - (spec.twinRank ?? 1)],
    );
    if (picks.some((p) => p === undefined)) {
      throw new CorpusError(
        spec.pick.includes('twin')
          ? `no ABI of ${what} other than the newest agrees with it on the symbols in corpus/modules/imports.txt (offered: ${qualifying.map((q) => q.abi).join(', ')})`
          : `need ${spec.pick.length} ABIs of ${what} (${spec.pick.join(', ')}), apt offers only ${qualifying.map((q) => q.abi).join(', ')}`,
      );
    }
    if (new Set(picks.map((p) => p.abi)).size !== picks.length) {
      throw new CorpusError(`need ${spec.pick.length} different ABIs for ${what}, apt offers only ${qualifying.map((q) => q.abi).join(', ')}`);
    }
    spec.pick.forEach((role, k) => chosen.push({ spec, role, ...picks[k], apt, available: qualifying.map((q) => q.abi) }));
  });

  // The linux-kbuild package each header set depends on.
  const headerStanzas = apt.show(chosen.map((c) => c.pkgs.headers));
  const kbuildWants = chosen.map((c) => {
    const st = headerStanzas.get(pkgKey(c.pkgs.headers));
    if (!st) throw new CorpusError(`apt-cache show gave nothing for ${aptSpec(c.pkgs.headers)}`);
    const dep = (st.Depends ?? '')
      .split(',')
      .map((s) => s.trim())
      .map((s) => /^(linux-kbuild-[^\s(]+)(?:\s*\(\s*(>=|<=|>>|<<|=)\s*([^)\s]+)\s*\))?$/.exec(s))
      .find(Boolean);
    if (!dep) throw new CorpusError(`${c.pkgs.headers.name} ${c.version} depends on no linux-kbuild package: ${st.Depends}`);
    return { name: dep[1], op: dep[2], want: dep[3] };
  });
  const kbuildRows = apt.madison([...new Set(chosen.map((c, i) => `${kbuildWants[i].name}:${c.spec.arch}`))]);
  chosen.forEach((c, i) => {
    const w = kbuildWants[i];
    const versions = offered(kbuildRows, w.name, c.spec.arch, c.spec.suiteOk).filter((v) => satisfies(v, w.op, w.want));
    if (versions.length === 0) {
      throw new CorpusError(`apt offers no ${w.name}:${c.spec.arch} ${w.op ?? ''} ${w.want ?? ''} (needed by ${c.pkgs.headers.name})`);
    }
    // The kbuild of the same upload if there is one, else the newest that satisfies the dependency
    // (which is what apt would install next to these headers).
    const version = versions.includes(c.version) ? c.version : versions[versions.length - 1];
    c.pkgs.kbuild = { name: w.name, arch: c.spec.arch, version };
  });

  // File names, sizes and hashes of every package.
  // (One object per package: kernels of one ABI share -common, 6.1 ABIs may share a kbuild.)
  const all = new Map();
  for (const c of chosen) {
    for (const r of Object.keys(c.pkgs)) {
      const key = pkgKey(c.pkgs[r]);
      if (!all.has(key)) all.set(key, c.pkgs[r]);
      c.pkgs[r] = all.get(key);
    }
  }
  apt.describe([...all.values()]);
  return chosen;
}

/** The symbols corpus/modules/imports.txt lists. */
function testModuleImports() {
  return fs
    .readFileSync(path.join(REPO, 'corpus', 'modules', 'imports.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

function symversCrcs(file, names) {
  const want = new Set(names);
  const out = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const f = line.split('\t');
    if (f.length >= 3 && want.has(f[1])) out.set(f[1], f[0]);
  }
  return out;
}

/** The first twin kernel whose symvers disagrees with its newest sibling on an imported symbol. */
function disagreeingTwin(kernels) {
  const names = testModuleImports();
  for (const k of kernels) {
    if (k.c.role !== 'twin') continue;
    const newest = kernels.find((x) => x.c.spec === k.c.spec && x.c.role === 'newest');
    const a = symversCrcs(newest.entry.symvers, names);
    const b = symversCrcs(k.entry.symvers, names);
    for (const n of names) {
      if (a.get(n) !== b.get(n)) return { ...k, why: `${n}: ${b.get(n) ?? 'absent'} vs ${a.get(n) ?? 'absent'}` };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// extraction

/**
 * Make every absolute symlink under `root` point inside `root` (relative), and check that no
 * symlink leads out of it. Returns how many were rewritten.
 */
function confineSymlinks(root) {
  let rewritten = 0;
  walk(root, (p, ent) => {
    if (!ent.isSymbolicLink()) return;
    let target = fs.readlinkSync(p);
    if (path.isAbsolute(target)) {
      target = path.relative(path.dirname(p), path.join(root, target)) || '.';
      fs.unlinkSync(p);
      fs.symlinkSync(target, p);
      rewritten++;
    }
    if (!isInside(root, path.resolve(path.dirname(p), target))) {
      throw new CorpusError(`symlink ${p} -> ${target} leads out of ${root}`);
    }
  });
  return rewritten;
}

/** A merged-/usr system's /lib is a link to usr/lib (base-files makes it; kmod's depmod -b and modprobe -d look in lib/modules). */
function mergeUsr(root) {
  const lib = path.join(root, 'lib');
  if (!fs.existsSync(path.join(root, 'usr', 'lib'))) throw new CorpusError(`${root}: a merged-/usr kernel package installed nothing under usr/lib`);
  if (fs.existsSync(lib) || isSymlink(lib)) throw new CorpusError(`${root}: a merged-/usr kernel package installed its own /lib`);
  fs.symlinkSync('usr/lib', lib);
}

function isSymlink(p) {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Debian's linux-headers-<krel>/Makefile is `include /usr/src/linux-headers-<abi>-common/Makefile`:
 * point it at the -common tree inside the same root, relative to the Makefile's own location
 * (so the root can move). 7.x's also sets KBUILD_OUTPUT to its own absolute directory.
 */
function fixHeaderMakefiles(root) {
  const src = path.join(root, 'usr', 'src');
  let fixed = 0;
  for (const d of fs.readdirSync(src)) {
    const mk = path.join(src, d, 'Makefile');
    if (!fs.existsSync(mk) || fs.lstatSync(mk).isSymbolicLink()) continue;
    const text = fs.readFileSync(mk, 'utf8');
    const out = text.replace(/^(\s*-?include\s+)(\/\S+)\s*$/gm, (_all, inc, abs) => {
      const rel = path.relative(path.dirname(mk), path.join(root, abs));
      if (!fs.existsSync(path.join(root, abs))) {
        throw new CorpusError(`${mk} includes ${abs}, which the extracted packages do not provide`);
      }
      fixed++;
      return `${inc}$(dir $(lastword $(MAKEFILE_LIST)))${rel}`;
    });
    // 7.x: `KBUILD_OUTPUT=/usr/src/linux-headers-<krel>` names the Makefile's own directory.
    const out2 = out.replace(/^KBUILD_OUTPUT\s*:?=\s*(\/\S+)\s*$/m, (all, abs) => {
      if (path.join(root, abs) !== path.dirname(mk)) throw new CorpusError(`${mk} sets KBUILD_OUTPUT to ${abs}, not its own directory`);
      fixed++;
      return 'KBUILD_OUTPUT := $(patsubst %/,%,$(dir $(realpath $(lastword $(MAKEFILE_LIST)))))';
    });
    if (out2 !== text) fs.writeFileSync(mk, out2);
  }
  return fixed;
}

/** Extract debs into `dir` unless its stamp says it already holds exactly them. */
function extractInto(dir, debFiles, check) {
  const stamp = { layout: LAYOUT_VERSION, packages: debFiles.map((f) => path.basename(f)) };
  const stampFile = path.join(dir, '.kabi-stamp.json');
  if (fs.existsSync(dir) && sameJson(readJson(stampFile), stamp)) return false;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmrf(tmp);
  fs.mkdirSync(tmp, { recursive: true });
  for (const f of debFiles) run('dpkg-deb', ['-x', f, tmp]);
  check(tmp);
  fs.writeFileSync(path.join(tmp, '.kabi-stamp.json'), `${JSON.stringify(stamp, null, 2)}\n`);
  rmrf(dir);
  fs.renameSync(tmp, dir);
  return true;
}

function countModules(moduleDir) {
  let n = 0;
  let xz = 0;
  let other = 0;
  walk(moduleDir, (p, ent) => {
    // The same test as `find <moduleDir> -name '*.ko*'`, counting files.
    if (ent.isDirectory() || !ent.name.includes('.ko')) return;
    n++;
    if (ent.name.endsWith('.ko.xz')) xz++;
    else if (!ent.name.endsWith('.ko')) other++;
  });
  return { n, xz, other };
}

// ---------------------------------------------------------------------------------------------
// building the test modules

function moduleSources() {
  return fs
    .readdirSync(MODULE_SRC)
    .filter((f) => /\.(c|h)$/.test(f) || f === 'Kbuild' || f === 'Makefile')
    .sort();
}

function sourcesHash() {
  const h = createHash('sha256');
  h.update(`recipe ${BUILD_RECIPE}\n`);
  for (const f of moduleSources()) {
    h.update(`${f}\n`);
    h.update(fs.readFileSync(path.join(MODULE_SRC, f)));
    h.update('\n');
  }
  return h.digest('hex');
}

/** Environment for kbuild: nothing inherited that would redirect or cross-compile the build. */
function buildEnv() {
  const env = { ...process.env, LC_ALL: 'C' };
  for (const k of [
    'ARCH', 'CROSS_COMPILE', 'KBUILD_OUTPUT', 'O', 'KBUILD_EXTMOD', 'KBUILD_EXTRA_SYMBOLS', 'KCFLAGS',
    'KCPPFLAGS', 'KBUILD_MODPOST_WARN', 'KBUILD_NSDEPS', 'MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEFILES',
    'DEB_HOST_ARCH', 'DEB_BUILD_ARCH', 'DEB_HOST_GNU_TYPE', 'DEBIAN_KERNEL_USE_CCACHE', 'CC', 'LD',
  ]) {
    delete env[k];
  }
  return env;
}

const EXPECTED_MODPOST = [
  // ≤ 6.x, then 7.x's wording.
  new RegExp(
    '^WARNING: modpost: (module kabi_ns_missing uses symbol usb_stor_\\w+ from namespace USB_STORAGE, but does not import it\\.' +
      "|kabi_ns_missing\\.ko: module uses symbol 'usb_stor_\\w+' from namespace 'USB_STORAGE', but does not import it\\.)$",
  ),
];

/** Build corpus/modules/ against one kernel's headers with its toolchain (host: this machine). */
async function buildModules(k, hash, tc) {
  const builtDir = path.join(CACHE, 'built', k.krel);
  const names = moduleSources()
    .filter((f) => f.endsWith('.c'))
    .map((f) => f.slice(0, -2));
  const stamp = { recipe: BUILD_RECIPE, sources: hash, headers: readJson(path.join(k.headersRoot, '.kabi-stamp.json')), toolchain: toolchainId(tc) };
  const stampFile = path.join(builtDir, '.kabi-stamp.json');
  const result = {
    toolchain: tc.name,
    compiler: tc.compiler,
    builtDir,
    buildLog: path.join(builtDir, 'build.log'),
    builtSymvers: path.join(builtDir, 'Module.symvers'),
    builtModules: Object.fromEntries(names.map((n) => [n, path.join(builtDir, `${n}.ko`)])),
  };
  if (sameJson(readJson(stampFile), stamp) && Object.values(result.builtModules).every((f) => fs.existsSync(f))) {
    return { ...result, rebuilt: false };
  }

  const buildDir = path.join(CACHE, 'build', k.krel);
  rmrf(buildDir);
  fs.mkdirSync(buildDir, { recursive: true });
  for (const f of moduleSources()) fs.copyFileSync(path.join(MODULE_SRC, f), path.join(buildDir, f));
  const logFile = path.join(buildDir, 'build.log');
  const r = await toolchainRun(
    tc,
    (d) => {
      const args = ['-C', d.build, `KDIR=${d.headers}/usr/src/linux-headers-${k.krel}`, '-j2'];
      return ['sh', '-c', 'echo "# make $*" > "$0/build.log"; exec make "$@" >> "$0/build.log" 2>&1', d.build, ...args];
    },
    { dirs: { build: buildDir, headers: k.headersRoot }, hostEnv: buildEnv() },
  );
  const logText = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : `${r.stdout}${r.stderr}`;
  const tail = logText.trim().split('\n').slice(-40).join('\n');
  if (r.status !== 0) {
    throw new CorpusError(`building the test modules against ${k.krel} (${tc.name} toolchain) failed (log: ${logFile}):\n${tail}\n${r.stderr}`);
  }
  const modpostLines = logText.split('\n').filter((l) => /^(WARNING|ERROR|FATAL): modpost:/.test(l));
  const unexpected = modpostLines.filter((l) => !EXPECTED_MODPOST.some((re) => re.test(l)));
  const missing = EXPECTED_MODPOST.filter((re) => !modpostLines.some((l) => re.test(l)));
  if (unexpected.length || missing.length) {
    throw new CorpusError(
      `modpost output for ${k.krel} is not what the test modules should produce (log: ${logFile}):\n` +
        `unexpected: ${JSON.stringify(unexpected)}\nmissing: ${missing.map(String).join(', ')}`,
    );
  }

  const tmp = `${builtDir}.tmp-${process.pid}`;
  rmrf(tmp);
  fs.mkdirSync(tmp, { recursive: true });
  for (const n of names) {
    const ko = path.join(buildDir, `${n}.ko`);
    if (!fs.existsSync(ko)) throw new CorpusError(`make succeeded but ${ko} is missing (log: ${logFile})`);
    const vermagic = run('modinfo', ['-F', 'vermagic', ko]).stdout.trim();
    if (vermagic.split(/\s+/)[0] !== k.krel) {
      throw new CorpusError(`${ko}: vermagic "${vermagic}" is not for ${k.krel}`);
    }
    fs.copyFileSync(ko, path.join(tmp, `${n}.ko`));
  }
  const license = run('modinfo', ['-F', 'license', path.join(tmp, 'kabi_nongpl.ko')]).stdout.trim();
  if (license !== 'Proprietary') throw new CorpusError(`kabi_nongpl.ko for ${k.krel} has license "${license}"`);
  fs.copyFileSync(logFile, path.join(tmp, 'build.log'));
  fs.copyFileSync(path.join(buildDir, 'Module.symvers'), path.join(tmp, 'Module.symvers'));
  fs.writeFileSync(path.join(tmp, '.kabi-stamp.json'), `${JSON.stringify(stamp, null, 2)}\n`);
  rmrf(builtDir);
  fs.renameSync(tmp, builtDir);
  const warnings = logText.split('\n').filter((l) => /\bwarning:/.test(l));
  if (warnings.length) log(`${k.krel}: compiler warnings:\n  ${warnings.join('\n  ')}`);
  return { ...result, rebuilt: true };
}

// ---------------------------------------------------------------------------------------------
// lock (one fetch at a time per cache dir)

function readLockPid(lock) {
  try {
    return Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8')) || 0;
  } catch {
    return 0;
  }
}

async function withLock(fn) {
  const lock = path.join(CACHE, '.lock');
  const deadline = Date.now() + 60 * 60 * 1000;
  let announced = false;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const pid = readLockPid(lock);
      let alive = false;
      if (pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (err) {
          alive = err.code === 'EPERM';
        }
      }
      if (!alive) {
        // Stale (its holder died), or just being created: remove only if it still looks stale later.
        await sleep(1000);
        const again = readLockPid(lock);
        if (again === pid) rmrf(lock);
        continue;
      }
      if (Date.now() > deadline) throw new CorpusError(`timed out waiting for ${lock} (held by pid ${pid})`);
      if (!announced) log(`waiting for another fetch (pid ${pid}) to finish with ${CACHE}`);
      announced = true;
      await sleep(2000);
    }
  }
  const release = () => rmrf(lock);
  process.on('exit', release);
  try {
    return await fn();
  } finally {
    release();
    process.off('exit', release);
  }
}

// ---------------------------------------------------------------------------------------------
// main

function parseArgs(argv) {
  const opts = { only: undefined, printManifestPath: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--print-manifest-path') opts.printManifestPath = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a === '--only' ? argv[++i] : a.slice('--only='.length);
      if (!v) throw new CorpusError('--only needs a list of dpkg architectures, e.g. --only amd64');
      opts.only = v.split(',').map((s) => s.trim()).filter(Boolean);
      const known = new Set(SPECS.map((s) => s.arch));
      for (const arch of opts.only) if (!known.has(arch)) throw new CorpusError(`--only: unknown architecture ${arch}`);
    } else if (a === '-h' || a === '--help') {
      process.stdout.write(
        'usage: node corpus/debian/fetch.mjs [--only ARCH[,ARCH…]] [--print-manifest-path]\n' +
          `cache: ${CACHE} (KABI_CORPUS_DIR overrides)\n`,
      );
      process.exit(0);
    } else throw new CorpusError(`unknown argument ${a}`);
  }
  return opts;
}

/** Extract one chosen kernel's packages (if not done yet) and describe it for the manifest. */
function prepareKernel(c) {
  const krel = `${c.abi}-${c.spec.flavour}`;
  const files = kernelFiles(c.spec, krel);
  const treeRoot = path.join(CACHE, 'trees', krel);
  const headersRoot = path.join(CACHE, 'headers', krel);
  fs.mkdirSync(path.dirname(treeRoot), { recursive: true });
  fs.mkdirSync(path.dirname(headersRoot), { recursive: true });
  const imagePkgs = IMAGE_ROLES[c.spec.layout].map((r) => c.pkgs[r]);

  if (
    extractInto(treeRoot, imagePkgs.map((p) => p.path), (root) => {
      const links = confineSymlinks(root);
      if (c.spec.mergedUsr) mergeUsr(root);
      for (const f of [files.moduleDir, files.systemMap, files.config]) {
        if (!fs.existsSync(path.join(root, f))) throw new CorpusError(`${imagePkgs.map((p) => p.file).join(' + ')} install no ${f}`);
      }
      if (links) log(`${krel}: made ${links} absolute symlink(s) in the image relative`);
    })
  ) {
    log(`extracted ${imagePkgs.map((p) => p.file).join(' + ')}`);
  }

  const headersDir = path.join(headersRoot, 'usr', 'src', `linux-headers-${krel}`);
  if (
    extractInto(headersRoot, HEADER_ROLES.map((r) => c.pkgs[r].path), (root) => {
      const links = confineSymlinks(root);
      const includes = fixHeaderMakefiles(root);
      const hd = path.join(root, 'usr', 'src', `linux-headers-${krel}`);
      for (const f of ['Makefile', 'Module.symvers', '.config', 'scripts/mod/modpost']) {
        if (!fs.existsSync(path.join(hd, f))) throw new CorpusError(`headers for ${krel}: no ${f} in ${hd}`);
      }
      log(`${krel} headers: made ${links} absolute symlink(s) and ${includes} Makefile include(s) relative`);
    })
  ) {
    log(`extracted ${HEADER_ROLES.map((r) => c.pkgs[r].file).join(' + ')}`);
  }

  const moduleDir = path.join(treeRoot, files.moduleDir);
  const count = countModules(moduleDir);
  if (count.n === 0) throw new CorpusError(`${moduleDir} holds no modules`);
  if (count.other) throw new CorpusError(`${moduleDir}: ${count.other} modules are neither .ko nor .ko.xz`);
  if (count.xz && count.xz !== count.n) throw new CorpusError(`${moduleDir}: mixed .ko and .ko.xz modules`);
  const systemMap = path.join(treeRoot, files.systemMap);
  const config = path.join(treeRoot, files.config);
  const vmlinuz = path.join(treeRoot, files.vmlinuz);
  if (c.spec.arch === 'amd64' && !fs.existsSync(vmlinuz)) throw new CorpusError(`${imagePkgs.map((p) => p.file).join(' + ')} install no ${files.vmlinuz}`);
  const configText = fs.readFileSync(config, 'utf8');
  return {
    c,
    entry: {
      abi: c.abi,
      krel,
      arch: c.spec.arch,
      flavour: c.spec.flavour,
      series: c.spec.series,
      suite: c.spec.suite,
      role: c.role,
      layout: c.spec.layout,
      mergedUsr: c.spec.mergedUsr,
      moduleCount: count.n,
      compression: count.xz ? 'xz' : 'none',
      treeRoot,
      moduleDir,
      systemMap,
      // Debian ships a one-line stub; the real map is in the (huge) -dbg package.
      systemMapIsStub: /The real System\.map is in/.test(fs.readFileSync(systemMap, 'utf8').slice(0, 4096)),
      config,
      vmlinuz: fs.existsSync(vmlinuz) ? vmlinuz : null,
      modversions: /^CONFIG_MODVERSIONS=y$/m.test(configText),
      headersRoot,
      headersDir,
      symvers: path.join(headersDir, 'Module.symvers'),
      packages: Object.fromEntries(Object.entries(c.pkgs).map(([r, p]) => [r, { name: p.name, version: p.version, arch: p.arch, file: p.file }])),
      offeredAbis: c.available,
    },
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.printManifestPath) {
    process.stdout.write(`${MANIFEST}\n`);
    return;
  }
  if (isInside(REPO, CACHE)) throw new CorpusError(`the corpus cache ${CACHE} must not be inside the repository`);
  fs.mkdirSync(CACHE, { recursive: true });

  await withLock(async () => {
    const specs = opts.only ? SPECS.filter((s) => opts.only.includes(s.arch)) : SPECS;
    log(`cache ${CACHE}${opts.only ? ` (only ${opts.only.join(',')})` : ''}`);
    const apts = { host: hostApt(), ...(specs.some((s) => s.apt === 'private') ? { private: await privateApt() } : {}) };
    let kernels;
    const pkgs = new Map();
    for (;;) {
      const chosen = selectKernels(specs, apts);
      for (const c of chosen) {
        log(`${c.spec.arch} ${c.spec.suite} ${c.spec.series} ${c.role}: ${c.abi}-${c.spec.flavour} (${c.version}; offered: ${c.available.join(' ')}), kbuild ${c.pkgs.kbuild.name} ${c.pkgs.kbuild.version}`);
      }

      // 1. download
      let bytes = 0;
      for (const apt of Object.values(apts)) {
        const mine = new Map();
        for (const c of chosen) if (c.apt === apt) for (const p of Object.values(c.pkgs)) mine.set(p.file, p);
        bytes += await apt.download([...mine.values()]);
        for (const [f, p] of mine) pkgs.set(f, p);
      }
      log(`${pkgs.size} packages in the cache (${(bytes / 1e6).toFixed(0)} MB downloaded now)`);

      // 2. extract
      kernels = chosen.map(prepareKernel);

      const bad = disagreeingTwin(kernels);
      if (!bad) break;
      log(`${bad.entry.krel} disagrees with the newest ABI on the test modules' imports (${bad.why}); trying an older one`);
      bad.c.spec.twinRank = (bad.c.spec.twinRank ?? 1) + 1;
    }

    // 3. build the test modules against every header set with a toolchain (not the twin: it
    // stands in for a kernel the modules were not built for); meanwhile, the tests' own chroots
    const chroots = opts.only
      ? Promise.resolve([])
      : prebuildTestChroots((m) => log(m)).catch((e) => log(`the tests' chroots were not built ahead (${e.message}); the tests will build them`));
    const hash = sourcesHash();
    const builds = kernels.filter(({ c }) => c.spec.toolchain && c.role !== 'twin');
    await inParallel(builds, 2, async ({ c, entry }) => {
      const b = await buildModules(entry, hash, TOOLCHAINS[c.spec.toolchain]);
      if (b.rebuilt) log(`built ${Object.keys(b.builtModules).length} test modules against ${entry.krel} (${b.toolchain} toolchain, ${b.compiler})`);
      delete b.rebuilt;
      Object.assign(entry, b);
    });

    // 4. DKMS packages, built against the same kernels
    const dkms = await prepareDkms(builds.map(({ c, entry }) => ({ entry, toolchain: TOOLCHAINS[c.spec.toolchain === 'host' ? 'bookworm' : c.spec.toolchain] })), apts.private);
    for (const { entry } of builds) entry.dkms = dkms.byKernel.get(entry.krel) ?? [];
    await chroots;

    // 5. manifest
    const entries = kernels.map((k) => k.entry);
    const old = readJson(MANIFEST);
    const manifest = {
      version: MANIFEST_VERSION,
      created: old && sameJson(old.kernels, entries) && old.version === MANIFEST_VERSION ? old.created : new Date().toISOString(),
      cacheDir: CACHE,
      only: opts.only ?? null,
      dkmsSources: dkms.sources,
      kernels: entries,
    };
    writeFileAtomic(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);

    // 6. drop what the full set no longer uses (the apt archive moved on)
    if (!opts.only) {
      const keep = {
        debs: new Set([...pkgs.keys(), ...dkms.debs]),
        apt: new Set(['pkgcache.bin']),
        trees: new Set(entries.map((e) => e.krel)),
        headers: new Set(entries.map((e) => e.krel)),
        built: new Set(entries.filter((e) => e.builtDir).map((e) => e.krel)),
        build: new Set(entries.filter((e) => e.builtDir).map((e) => e.krel)),
        ...dkms.keep,
      };
      for (const [sub, names] of Object.entries(keep)) {
        const dir = path.join(CACHE, sub);
        if (!fs.existsSync(dir)) continue;
        for (const f of fs.readdirSync(dir)) {
          if (names.has(f)) continue;
          log(`removing unused ${sub}/${f}`);
          rmrf(path.join(dir, f));
        }
      }
    }

    log(
      `ready: ${entries.length} kernels (${entries.map((e) => `${e.krel}/${e.arch}`).join(', ')}), ` +
        `cache ${(duKiB(CACHE) / 1024).toFixed(0)} MiB, manifest ${MANIFEST}`,
    );
  });
  process.stdout.write(`${MANIFEST}\n`);
}

main().catch((e) => {
  if (e instanceof CorpusError) process.stderr.write(`\nkabi-corpus: ERROR: ${e.message}\n`);
  else process.stderr.write(`\nkabi-corpus: ERROR: ${e?.stack ?? e}\n`);
  process.exit(1);
});
