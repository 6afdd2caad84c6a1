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
//     trees/<krel>/                    linux-image extracted: lib/modules/<krel>/, boot/System.map-<krel>, boot/config-<krel>
//     headers/<krel>/                  linux-headers-<krel> + -common + linux-kbuild extracted into one root,
//                                      absolute symlinks and the Makefile's absolute include made relative
//     build/<krel>/                    copy of corpus/modules/ built with make (kept for debugging)
//     built/<krel>/<module>.ko         the built test modules, build.log, Module.symvers of the M= dir
//     manifest.json
//
// Which kernels: chosen from what apt offers at run time, deterministically:
//   amd64 6.1 (linux-image-6.1.0-N-amd64-unsigned):            the oldest and the newest ABI
//   amd64 6.12 (linux-image-6.12.N+deb12-amd64-unsigned):      the oldest and the newest ABI
//   s390x 6.1 (-s390x), i386 6.1 (-686-pae-unsigned), armhf 6.1 (-armmp): the newest ABI, taken
//     from the main suites only (bookworm, bookworm-updates): the foreign indexes of the security
//     suite are not always there, and the choice must not depend on that.
// An ABI qualifies only when its image, headers and headers-common packages are all offered in
// the same version. Every step is skipped when its stamp (keyed by the package file names, the
// layout version and, for builds, a hash of corpus/modules/) says it is done.
//
// Plain Node (>= 20), no npm dependencies. Needs apt-get, apt-cache, dpkg-deb, make, gcc-12,
// objcopy, pahole (6.12 modules get BTF), modinfo: .ci/run installs them.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MANIFEST_VERSION = 1;
/** Bump to force every tree and header set to be extracted again. */
const LAYOUT_VERSION = 1;
/** Bump to force the test modules to be rebuilt (the module sources are hashed anyway). */
const BUILD_RECIPE = 1;

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODULE_SRC = path.join(REPO, 'corpus', 'modules');

const CACHE = path.resolve(
  process.env.KABI_CORPUS_DIR ||
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'kabi-corpus'),
);
const MANIFEST = path.join(CACHE, 'manifest.json');

/** What to fetch. `pick` chooses among the qualifying ABIs, ordered oldest first. */
const SPECS = [
  {
    // twin: the newest other ABI that agrees with the newest on the test modules' imports
    // (corpus/modules/imports.txt), so weak-modules scenarios have somewhere to link into.
    arch: 'amd64', flavour: 'amd64', series: '6.1', pick: ['oldest', 'newest', 'twin'], security: true, build: true,
    image: /^linux-image-(6\.1\.0-(\d+))-amd64-unsigned$/,
  },
  {
    arch: 'amd64', flavour: 'amd64', series: '6.12', pick: ['oldest', 'newest'], security: true, build: true,
    image: /^linux-image-(6\.12\.(\d+)\+deb12)-amd64-unsigned$/,
  },
  {
    arch: 's390x', flavour: 's390x', series: '6.1', pick: ['newest'], security: false, build: false,
    image: /^linux-image-(6\.1\.0-(\d+))-s390x$/,
  },
  {
    arch: 'i386', flavour: '686-pae', series: '6.1', pick: ['newest'], security: false, build: false,
    image: /^linux-image-(6\.1\.0-(\d+))-686-pae-unsigned$/,
  },
  {
    arch: 'armhf', flavour: 'armmp', series: '6.1', pick: ['newest'], security: false, build: false,
    image: /^linux-image-(6\.1\.0-(\d+))-armmp$/,
  },
];

const DOWNLOAD_ATTEMPTS = 3;
const DOWNLOAD_BACKOFF_MS = [5_000, 20_000];

// ---------------------------------------------------------------------------------------------
// small helpers

class CorpusError extends Error {}

const t0 = Date.now();
function log(msg) {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[kabi-corpus ${s}s] ${msg}\n`);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Run a command; throws CorpusError on failure unless `allowFail`. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? { ...process.env, LC_ALL: 'C' },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) {
    if (opts.allowFail) return r;
    throw new CorpusError(`cannot run ${cmd}: ${r.error.message}`);
  }
  if (r.status !== 0 && !opts.allowFail) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    throw new CorpusError(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}\n${out}`);
  }
  return r;
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function writeFileAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

function rmrf(p) {
  fs.rmSync(p, { recursive: true, force: true });
}

function sha256File(file) {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
    let n;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Recursively visit every entry (no symlink following). */
function walk(dir, visit) {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    visit(p, ent);
    if (ent.isDirectory()) walk(p, visit);
  }
}

function isInside(root, p) {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function sameJson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function duKiB(p) {
  const r = run('du', ['-sk', p], { allowFail: true });
  return r.status === 0 ? Number(r.stdout.split(/\s/)[0]) : NaN;
}

// ---------------------------------------------------------------------------------------------
// Debian version comparison (dpkg's algorithm)

function charOrder(c) {
  if (c === undefined || (c >= '0' && c <= '9')) return 0;
  if (c === '~') return -1;
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function isDigit(c) {
  return c !== undefined && c >= '0' && c <= '9';
}

function verrevcmp(a, b) {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = charOrder(a[i]);
      const bc = charOrder(b[j]);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

function splitVersion(v) {
  const colon = v.indexOf(':');
  const epoch = colon >= 0 ? Number(v.slice(0, colon)) : 0;
  const rest = colon >= 0 ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return dash >= 0
    ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) }
    : { epoch, upstream: rest, revision: '' };
}

function compareDebVersions(a, b) {
  const x = splitVersion(a);
  const y = splitVersion(b);
  if (x.epoch !== y.epoch) return x.epoch - y.epoch;
  return verrevcmp(x.upstream, y.upstream) || verrevcmp(x.revision, y.revision);
}

function satisfies(version, op, want) {
  if (!op) return true;
  const c = compareDebVersions(version, want);
  switch (op) {
    case '=': return c === 0;
    case '>=': return c >= 0;
    case '<=': return c <= 0;
    case '>>': return c > 0;
    case '<<': return c < 0;
    default: throw new CorpusError(`unknown version relation ${op}`);
  }
}

// ---------------------------------------------------------------------------------------------
// apt queries

/**
 * Options for every apt-cache/apt-get call. Debian's container images set
 * Dir::Cache::pkgcache "" so that each apt call re-parses all package lists (2 s here, with
 * four architectures); keeping apt's binary cache in our cache dir makes a warm run take
 * well under a second of apt time. apt checks it against the lists and rebuilds it when they change.
 */
function aptOptions() {
  const dir = path.join(CACHE, 'apt');
  fs.mkdirSync(dir, { recursive: true });
  return ['-o', `Dir::Cache::pkgcache=${path.join(dir, 'pkgcache.bin')}`];
}

function aptCache(args) {
  return run('apt-cache', [...aptOptions(), ...args]);
}

/** `apt-cache madison` for many packages at once → [{ name, version, suite, indexArch }]. */
function madison(queries) {
  if (queries.length === 0) return [];
  const r = aptCache(['madison', ...queries]);
  const rows = [];
  for (const line of r.stdout.split('\n')) {
    const cols = line.split('|').map((s) => s.trim());
    if (cols.length < 3) continue;
    const src = cols[2].split(/\s+/); // <url> <suite>/<component> <arch> Packages|Sources
    if (src[3] !== 'Packages') continue;
    rows.push({
      name: cols[0].replace(/:[a-z0-9]+$/, ''),
      version: cols[1],
      suite: src[1].split('/')[0],
      indexArch: src[2],
    });
  }
  return rows;
}

/** Versions of `name` offered for `arch` (an `all` package is offered in every arch's index). */
function offered(rows, name, arch, allowSecurity) {
  const out = new Set();
  for (const r of rows) {
    if (r.name !== name || r.indexArch !== arch) continue;
    if (!allowSecurity && r.suite.endsWith('-security')) continue;
    out.add(r.version);
  }
  return [...out].sort(compareDebVersions);
}

/** `apt-cache show` stanzas for exact package versions → Map("name:arch=version" → fields). */
function showPackages(pkgs) {
  const stanzas = new Map();
  if (pkgs.length === 0) return stanzas;
  const r = aptCache(['show', ...pkgs.map(aptSpec)]);
  for (const block of r.stdout.split(/\n\n+/)) {
    const fields = {};
    let last;
    for (const line of block.split('\n')) {
      if (/^\s/.test(line) && last) fields[last] += `\n${line.trim()}`;
      else {
        const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
        if (m) {
          last = m[1];
          fields[last] = m[2];
        }
      }
    }
    if (!fields.Package) continue;
    const key = `${fields.Package}:${fields.Architecture}=${fields.Version}`;
    if (!stanzas.has(key)) stanzas.set(key, fields);
  }
  return stanzas;
}

function aptSpec(p) {
  return p.arch === 'all' ? `${p.name}=${p.version}` : `${p.name}:${p.arch}=${p.version}`;
}

function pkgKey(p) {
  return `${p.name}:${p.arch}=${p.version}`;
}

/** Choose the kernels (and all their packages) from what apt offers now. */
function selectKernels(specs) {
  const names = aptCache(['pkgnames', 'linux-image-']).stdout.split('\n').filter(Boolean);

  // Candidate ABIs per spec, from the package names apt knows.
  const candidates = specs.map((spec) => {
    const abis = [];
    for (const name of names) {
      const m = spec.image.exec(name);
      if (m) abis.push({ abi: m[1], ordinal: Number(m[2]), imageName: name });
    }
    abis.sort((a, b) => a.ordinal - b.ordinal);
    return abis;
  });

  const queries = new Set();
  specs.forEach((spec, i) => {
    for (const c of candidates[i]) {
      queries.add(`${c.imageName}:${spec.arch}`);
      queries.add(`linux-headers-${c.abi}-${spec.flavour}:${spec.arch}`);
      queries.add(`linux-headers-${c.abi}-common`);
    }
  });
  const rows = madison([...queries]);

  const chosen = [];
  specs.forEach((spec, i) => {
    const qualifying = [];
    for (const c of candidates[i]) {
      const headersName = `linux-headers-${c.abi}-${spec.flavour}`;
      const commonName = `linux-headers-${c.abi}-common`;
      const img = offered(rows, c.imageName, spec.arch, spec.security);
      const hdr = new Set(offered(rows, headersName, spec.arch, spec.security));
      const com = new Set(offered(rows, commonName, spec.arch, spec.security));
      const versions = img.filter((v) => hdr.has(v) && com.has(v));
      if (versions.length === 0) continue;
      const version = versions[versions.length - 1];
      qualifying.push({
        ...c,
        version,
        image: { name: c.imageName, arch: spec.arch, version },
        headers: { name: headersName, arch: spec.arch, version },
        common: { name: commonName, arch: 'all', version },
      });
    }
    const what = `${spec.arch} ${spec.series} (${spec.image.source})`;
    if (qualifying.length === 0) {
      const hint =
        spec.arch === 'amd64'
          ? 'run `apt-get update`'
          : `run \`dpkg --add-architecture ${spec.arch} && apt-get update\` (see .ci/run)`;
      throw new CorpusError(`apt offers no usable ${what} kernel (image + headers + headers-common): ${hint}`);
    }
    const picks = spec.pick.map((p) =>
      p === 'oldest' ? qualifying[0] : p === 'newest' ? qualifying[qualifying.length - 1] : qualifying[qualifying.length - 1 - (spec.twinRank ?? 1)],
    );
    if (picks.some((p) => p === undefined)) {
      throw new CorpusError(`no ABI of ${what} other than the newest agrees with it on the symbols in corpus/modules/imports.txt (offered: ${qualifying.map((q) => q.abi).join(', ')})`);
    }
    if (new Set(picks.map((p) => p.abi)).size !== picks.length) {
      throw new CorpusError(
        `need ${spec.pick.length} different ABIs for ${what}, apt offers only ${qualifying.map((q) => q.abi).join(', ')}`,
      );
    }
    spec.pick.forEach((role, k) => chosen.push({ spec, role, ...picks[k], available: qualifying.map((q) => q.abi) }));
  });

  // The linux-kbuild package each header set depends on.
  const headerStanzas = showPackages(chosen.map((c) => c.headers));
  const kbuildWants = chosen.map((c) => {
    const st = headerStanzas.get(pkgKey(c.headers));
    if (!st) throw new CorpusError(`apt-cache show gave nothing for ${aptSpec(c.headers)}`);
    const dep = (st.Depends ?? '')
      .split(',')
      .map((s) => s.trim())
      .map((s) => /^(linux-kbuild-[^\s(]+)(?:\s*\(\s*(>=|<=|>>|<<|=)\s*([^)\s]+)\s*\))?$/.exec(s))
      .find(Boolean);
    if (!dep) throw new CorpusError(`${c.headers.name} ${c.version} depends on no linux-kbuild package: ${st.Depends}`);
    return { name: dep[1], op: dep[2], want: dep[3] };
  });
  const kbuildRows = madison([...new Set(chosen.map((c, i) => `${kbuildWants[i].name}:${c.spec.arch}`))]);
  chosen.forEach((c, i) => {
    const w = kbuildWants[i];
    const versions = offered(kbuildRows, w.name, c.spec.arch, c.spec.security).filter((v) => satisfies(v, w.op, w.want));
    if (versions.length === 0) {
      throw new CorpusError(`apt offers no ${w.name}:${c.spec.arch} ${w.op ?? ''} ${w.want ?? ''} (needed by ${c.headers.name})`);
    }
    // The kbuild of the same upload if there is one, else the newest that satisfies the dependency
    // (which is what apt would install next to these headers).
    const version = versions.includes(c.version) ? c.version : versions[versions.length - 1];
    c.kbuild = { name: w.name, arch: c.spec.arch, version };
  });

  // File names, sizes and hashes of every package.
  // (One object per package: kernels of one ABI share -common, 6.1 ABIs may share a kbuild.)
  const all = new Map();
  for (const c of chosen) {
    for (const r of ['image', 'headers', 'common', 'kbuild']) {
      const key = pkgKey(c[r]);
      if (!all.has(key)) all.set(key, c[r]);
      c[r] = all.get(key);
    }
  }
  const stanzas = showPackages([...all.values()]);
  for (const [key, p] of all) {
    const st = stanzas.get(key);
    if (!st || !st.Filename || !st.SHA256 || !st.Size) {
      throw new CorpusError(`apt-cache show has no Filename/Size/SHA256 for ${aptSpec(p)}`);
    }
    p.file = path.basename(st.Filename);
    p.size = Number(st.Size);
    p.sha256 = st.SHA256;
  }
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
// download

/** The name `apt-get download` saves a package under. */
function aptSavedName(p) {
  const q = (v) => v.replaceAll('%', '%25').replaceAll(':', '%3a').replaceAll('_', '%5f');
  return `${q(p.name)}_${q(p.version)}_${p.arch}.deb`;
}

/**
 * Bring every package into <cache>/debs/<pool file name>, checked against the size and SHA256 of
 * apt's index. Missing ones are fetched with one `apt-get download` (retried, with back-off, for
 * whatever is still missing). Returns how many bytes were downloaded.
 */
async function downloadAll(pkgs) {
  const debs = path.join(CACHE, 'debs');
  fs.mkdirSync(debs, { recursive: true });
  const dest = (p) => path.join(debs, p.file);
  let missing = pkgs.filter((p) => {
    if (!fs.existsSync(dest(p))) return true;
    if (fs.statSync(dest(p)).size === p.size) return false;
    log(`${p.file}: size differs from apt's index, downloading it again`);
    fs.rmSync(dest(p));
    return true;
  });
  let bytes = 0;
  const problems = new Map();
  let aptMsg = '';
  for (let attempt = 1; missing.length > 0; attempt++) {
    const mb = (missing.reduce((n, p) => n + p.size, 0) / 1e6).toFixed(0);
    log(`downloading ${missing.length} package(s), ${mb} MB${attempt > 1 ? ` (attempt ${attempt}/${DOWNLOAD_ATTEMPTS})` : ''}`);
    const tmp = path.join(debs, `.download-${process.pid}`);
    rmrf(tmp);
    fs.mkdirSync(tmp, { recursive: true });
    try {
      const args = [...aptOptions(), 'download'];
      // As root, apt drops to the _apt user, which cannot write into the cache dir: stay root.
      if (process.getuid?.() === 0) args.push('-o', 'APT::Sandbox::User=root');
      args.push(...missing.map(aptSpec));
      const r = run('apt-get', args, { cwd: tmp, allowFail: true });
      const aptOut = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n');
      aptMsg = `apt-get download exited with ${r.status ?? r.error?.message}${aptOut
        .filter((l) => /^(E|W):/.test(l))
        .slice(-8)
        .map((l) => `\n    ${l}`)
        .join('')}`;
      for (const p of missing) {
        const got = [aptSavedName(p), p.file].map((f) => path.join(tmp, f)).find((f) => fs.existsSync(f));
        if (!got) {
          problems.set(p.file, 'not downloaded');
          continue;
        }
        const size = fs.statSync(got).size;
        const sum = sha256File(got);
        if (size !== p.size || sum !== p.sha256) {
          problems.set(p.file, `got ${size} bytes sha256 ${sum}, apt's index says ${p.size} bytes sha256 ${p.sha256}`);
          continue;
        }
        fs.renameSync(got, dest(p));
        problems.delete(p.file);
        bytes += p.size;
      }
    } finally {
      rmrf(tmp);
    }
    missing = missing.filter((p) => !fs.existsSync(dest(p)));
    if (missing.length === 0) break;
    const detail = `${missing.map((p) => `  ${aptSpec(p)}: ${problems.get(p.file)}`).join('\n')}\n  ${aptMsg}`;
    if (attempt >= DOWNLOAD_ATTEMPTS) {
      throw new CorpusError(`could not download ${missing.length} package(s) after ${DOWNLOAD_ATTEMPTS} attempts:\n${detail}`);
    }
    const wait = DOWNLOAD_BACKOFF_MS[attempt - 1];
    log(`download attempt ${attempt} left ${missing.length} package(s) missing, retrying in ${wait / 1000}s:\n${detail}`);
    await sleep(wait);
  }
  for (const p of pkgs) p.path = dest(p);
  return bytes;
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

/**
 * Debian's linux-headers-<krel>/Makefile is `include /usr/src/linux-headers-<abi>-common/Makefile`:
 * point it at the -common tree inside the same root, relative to the Makefile's own location
 * (so the root can move).
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
    if (out !== text) fs.writeFileSync(mk, out);
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
  /^WARNING: modpost: module kabi_ns_missing uses symbol usb_stor_\w+ from namespace USB_STORAGE, but does not import it\.$/,
];

function buildModules(k, hash) {
  const builtDir = path.join(CACHE, 'built', k.krel);
  const names = moduleSources()
    .filter((f) => f.endsWith('.c'))
    .map((f) => f.slice(0, -2));
  const stamp = { recipe: BUILD_RECIPE, sources: hash, headers: readJson(path.join(k.headersRoot, '.kabi-stamp.json')) };
  const stampFile = path.join(builtDir, '.kabi-stamp.json');
  const result = {
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
  const fd = fs.openSync(logFile, 'w');
  const args = ['-C', buildDir, `KDIR=${k.headersDir}`, '-j2'];
  fs.writeSync(fd, `# make ${args.join(' ')}\n`);
  const r = spawnSync('make', args, { env: buildEnv(), stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const logText = fs.readFileSync(logFile, 'utf8');
  const tail = logText.trim().split('\n').slice(-40).join('\n');
  if (r.error || r.status !== 0) {
    throw new CorpusError(`building the test modules against ${k.krel} failed (log: ${logFile}):\n${tail}`);
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
    let chosen;
    let kernels;
    let pkgs;
    for (;;) {
    chosen = selectKernels(specs);
    for (const c of chosen) {
      log(`${c.spec.arch} ${c.spec.series} ${c.role}: ${c.abi}-${c.spec.flavour} (${c.version}; offered: ${c.available.join(' ')}), kbuild ${c.kbuild.name} ${c.kbuild.version}`);
    }

    // 1. download
    pkgs = new Map();
    for (const c of chosen) for (const p of [c.image, c.headers, c.common, c.kbuild]) pkgs.set(p.file, p);
    const bytes = await downloadAll([...pkgs.values()]);
    log(`${pkgs.size} packages in the cache (${(bytes / 1e6).toFixed(0)} MB downloaded now)`);

    // 2. extract
    kernels = [];
    for (const c of chosen) {
      const krel = `${c.abi}-${c.spec.flavour}`;
      const treeRoot = path.join(CACHE, 'trees', krel);
      const headersRoot = path.join(CACHE, 'headers', krel);
      fs.mkdirSync(path.dirname(treeRoot), { recursive: true });
      fs.mkdirSync(path.dirname(headersRoot), { recursive: true });

      if (
        extractInto(treeRoot, [c.image.path], (root) => {
          const links = confineSymlinks(root);
          for (const f of [`lib/modules/${krel}`, `boot/System.map-${krel}`, `boot/config-${krel}`]) {
            if (!fs.existsSync(path.join(root, f))) throw new CorpusError(`${c.image.file} has no ${f}`);
          }
          if (links) log(`${krel}: made ${links} absolute symlink(s) in the image relative`);
        })
      ) {
        log(`extracted ${c.image.file}`);
      }

      const headersDir = path.join(headersRoot, 'usr', 'src', `linux-headers-${krel}`);
      if (
        extractInto(headersRoot, [c.headers.path, c.common.path, c.kbuild.path], (root) => {
          const links = confineSymlinks(root);
          const includes = fixHeaderMakefiles(root);
          const hd = path.join(root, 'usr', 'src', `linux-headers-${krel}`);
          for (const f of ['Makefile', 'Module.symvers', '.config', 'scripts/mod/modpost']) {
            if (!fs.existsSync(path.join(hd, f))) throw new CorpusError(`headers for ${krel}: no ${f} in ${hd}`);
          }
          log(`${krel} headers: made ${links} absolute symlink(s) and ${includes} Makefile include(s) relative`);
        })
      ) {
        log(`extracted ${c.headers.file} + ${c.common.file} + ${c.kbuild.file}`);
      }

      const moduleDir = path.join(treeRoot, 'lib', 'modules', krel);
      const count = countModules(moduleDir);
      if (count.n === 0) throw new CorpusError(`${moduleDir} holds no modules`);
      if (count.other) throw new CorpusError(`${moduleDir}: ${count.other} modules are neither .ko nor .ko.xz`);
      if (count.xz && count.xz !== count.n) throw new CorpusError(`${moduleDir}: mixed .ko and .ko.xz modules`);
      kernels.push({
        c,
        entry: {
          abi: c.abi,
          krel,
          arch: c.spec.arch,
          flavour: c.spec.flavour,
          series: c.spec.series,
          role: c.role,
          moduleCount: count.n,
          compression: count.xz ? 'xz' : 'none',
          treeRoot,
          moduleDir,
          systemMap: path.join(treeRoot, 'boot', `System.map-${krel}`),
          // Debian ships a one-line stub; the real map is in the (huge) -dbg package.
          systemMapIsStub: /The real System\.map is in/.test(
            fs.readFileSync(path.join(treeRoot, 'boot', `System.map-${krel}`), 'utf8').slice(0, 4096),
          ),
          config: path.join(treeRoot, 'boot', `config-${krel}`),
          headersRoot,
          headersDir,
          symvers: path.join(headersDir, 'Module.symvers'),
          packages: Object.fromEntries(
            ['image', 'headers', 'common', 'kbuild'].map((r) => [
              r,
              { name: c[r].name, version: c[r].version, arch: c[r].arch, file: c[r].file },
            ]),
          ),
          offeredAbis: c.available,
        },
      });
    }

    const bad = disagreeingTwin(kernels);
    if (!bad) break;
    log(`${bad.entry.krel} disagrees with the newest ABI on the test modules' imports (${bad.why}); trying an older one`);
    bad.c.spec.twinRank = (bad.c.spec.twinRank ?? 1) + 1;
    }

    // 3. build the test modules against every amd64 header set (not the twin: it stands in for
    // a kernel the modules were not built for)
    const hash = sourcesHash();
    for (const { c, entry } of kernels) {
      if (!c.spec.build || c.role === 'twin') continue;
      const b = buildModules({ krel: entry.krel, headersDir: entry.headersDir, headersRoot: entry.headersRoot }, hash);
      if (b.rebuilt) log(`built ${Object.keys(b.builtModules).length} test modules against ${entry.krel}`);
      delete b.rebuilt;
      Object.assign(entry, b);
    }

    // 4. manifest
    const entries = kernels.map((k) => k.entry);
    const old = readJson(MANIFEST);
    const manifest = {
      version: MANIFEST_VERSION,
      created: old && sameJson(old.kernels, entries) && old.version === MANIFEST_VERSION ? old.created : new Date().toISOString(),
      cacheDir: CACHE,
      only: opts.only ?? null,
      kernels: entries,
    };
    writeFileAtomic(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);

    // 5. drop what the full set no longer uses (the apt archive moved on)
    if (!opts.only) {
      const keep = {
        debs: new Set([...pkgs.keys()]),
        apt: new Set(['pkgcache.bin']),
        trees: new Set(entries.map((e) => e.krel)),
        headers: new Set(entries.map((e) => e.krel)),
        built: new Set(entries.filter((e) => e.builtDir).map((e) => e.krel)),
        build: new Set(entries.filter((e) => e.builtDir).map((e) => e.krel)),
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
