// SPDX-License-Identifier: GPL-2.0-or-later
//
// apt for the corpus scripts: queries (madison, show) and verified downloads into
// <cache>/debs/, through one of two apt configurations:
//
//   hostApt()     this machine's apt (its sources and lists: bookworm, its security suite and the
//                 foreign architectures .ci/run adds), with apt's binary cache kept in <cache>/apt/;
//   privateApt()  amd64 indexes of suites the machine does not use (trixie, trixie-backports, sid,
//                 bookworm-backports) in a private state dir, <cache>/apt-private/: its own
//                 sources.list, lists, status file and caches, passed as -o Dir::… options, so
//                 nothing under /etc/apt or /var/lib/apt is read for sources or written at all.
//
// Plain Node (>= 20), no npm dependencies.

import fs from 'node:fs';
import path from 'node:path';
import { CACHE, CorpusError, compareDebVersions, log, readJson, rmrf, run, sameJson, sha256File, sleep } from './util.mjs';

const DOWNLOAD_ATTEMPTS = 3;
const DOWNLOAD_BACKOFF_MS = [5_000, 20_000];
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const MIRROR = 'http://deb.debian.org/debian';
const SECURITY_MIRROR = 'http://deb.debian.org/debian-security';

/** The suites of the private configuration: where trixie, 7.x and the DKMS sources come from. */
export const PRIVATE_SUITES = [
  [MIRROR, 'bookworm'],
  [MIRROR, 'bookworm-updates'],
  [SECURITY_MIRROR, 'bookworm-security'],
  [MIRROR, 'bookworm-backports'],
  [MIRROR, 'trixie'],
  [MIRROR, 'trixie-updates'],
  [SECURITY_MIRROR, 'trixie-security'],
  [MIRROR, 'trixie-backports'],
  [MIRROR, 'sid'],
];
/** Lists older than this are fetched again (the archive moves on; the host's lists are .ci/run's business). */
const PRIVATE_MAX_AGE_MS = 6 * 3600_000;

const rootOptions = () => (process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : []);

class Apt {
  constructor(name, options) {
    this.name = name;
    this.options = options;
  }

  cache(args) {
    return run('apt-cache', [...this.options, ...args]);
  }

  /** `apt-cache madison` for many packages at once → [{ name, version, suite, indexArch }]. */
  madison(queries) {
    if (queries.length === 0) return [];
    const r = this.cache(['madison', ...queries]);
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

  /** Every package name apt knows that starts with `prefix`. */
  names(prefix) {
    return this.cache(['pkgnames', prefix]).stdout.split('\n').filter(Boolean);
  }

  /** `apt-cache show` stanzas for exact package versions → Map("name:arch=version" → fields). */
  show(pkgs) {
    const stanzas = new Map();
    if (pkgs.length === 0) return stanzas;
    const r = this.cache(['show', ...pkgs.map(aptSpec)]);
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

  /** Give each package its pool file name, size and SHA256 from apt's index (throws if apt has none). */
  describe(pkgs) {
    const stanzas = this.show(pkgs);
    for (const p of pkgs) {
      const st = stanzas.get(pkgKey(p));
      if (!st || !st.Filename || !st.SHA256 || !st.Size) {
        throw new CorpusError(`apt-cache show (${this.name} apt) has no Filename/Size/SHA256 for ${aptSpec(p)}`);
      }
      p.file = path.basename(st.Filename);
      p.size = Number(st.Size);
      p.sha256 = st.SHA256;
      p.stanza = st;
    }
    return pkgs;
  }

  /**
   * Bring every package into <cache>/debs/<pool file name>, checked against the size and SHA256
   * of apt's index. Missing ones are fetched with one `apt-get download` (retried, with back-off,
   * for whatever is still missing). Returns how many bytes were downloaded.
   */
  async download(pkgs) {
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
      log(`downloading ${missing.length} package(s), ${mb} MB (${this.name} apt)${attempt > 1 ? ` (attempt ${attempt}/${DOWNLOAD_ATTEMPTS})` : ''}`);
      const tmp = path.join(debs, `.download-${process.pid}`);
      rmrf(tmp);
      fs.mkdirSync(tmp, { recursive: true });
      try {
        // As root, apt drops to the _apt user, which cannot write into the cache dir: stay root.
        const args = [...this.options, ...rootOptions(), 'download', ...missing.map(aptSpec)];
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
}

/**
 * This machine's apt. Debian's container images set Dir::Cache::pkgcache "" so that each apt
 * call re-parses all package lists (2 s here, with four architectures); keeping apt's binary
 * cache in our cache dir makes a warm run take well under a second of apt time. apt checks it
 * against the lists and rebuilds it when they change.
 */
export function hostApt() {
  const dir = path.join(CACHE, 'apt');
  fs.mkdirSync(dir, { recursive: true });
  return new Apt('host', ['-o', `Dir::Cache::pkgcache=${path.join(dir, 'pkgcache.bin')}`]);
}

let privateInstance;

/**
 * The private amd64 configuration, its lists fetched when they are missing, older than six
 * hours, or were fetched for other sources. `apt-get update` is retried, then fatal.
 */
export async function privateApt() {
  if (privateInstance) return privateInstance;
  const dir = path.join(CACHE, 'apt-private');
  const etc = path.join(dir, 'etc');
  const state = path.join(dir, 'state');
  const cache = path.join(dir, 'cache');
  for (const d of [path.join(etc, 'sources.list.d'), path.join(etc, 'preferences.d'), path.join(state, 'lists', 'partial'), path.join(cache, 'archives', 'partial')]) {
    fs.mkdirSync(d, { recursive: true });
  }
  if (!fs.existsSync(path.join(state, 'status'))) fs.writeFileSync(path.join(state, 'status'), '');
  if (!fs.existsSync(KEYRING)) throw new CorpusError(`${KEYRING} is missing (package debian-archive-keyring): the private apt sources are verified with it`);
  const sources = PRIVATE_SUITES.map(([mirror, suite]) => `deb [arch=amd64 signed-by=${KEYRING}] ${mirror} ${suite} main\n`).join('');
  fs.writeFileSync(path.join(etc, 'sources.list'), sources);
  const options = [
    ['Dir::Etc::sourcelist', path.join(etc, 'sources.list')],
    ['Dir::Etc::sourceparts', path.join(etc, 'sources.list.d')],
    ['Dir::Etc::preferences', path.join(etc, 'preferences')],
    ['Dir::Etc::preferencesparts', path.join(etc, 'preferences.d')],
    ['Dir::State', state],
    ['Dir::State::status', path.join(state, 'status')],
    ['Dir::Cache', cache],
    ['Dir::Cache::pkgcache', path.join(cache, 'pkgcache.bin')],
    ['Dir::Cache::srcpkgcache', path.join(cache, 'srcpkgcache.bin')],
    ['APT::Architecture', 'amd64'],
    ['APT::Architectures', 'amd64'],
  ].flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  const apt = new Apt('private', options);

  const stampFile = path.join(dir, 'updated.json');
  const stamp = readJson(stampFile);
  const fresh = stamp && sameJson(stamp.sources, sources) && Date.now() - stamp.at < PRIVATE_MAX_AGE_MS;
  if (!fresh) {
    let last;
    for (let attempt = 1; attempt <= 3; attempt++) {
      last = run('apt-get', [...options, ...rootOptions(), '-o', 'Acquire::Retries=3', 'update'], { allowFail: true });
      const errors = `${last.stdout ?? ''}${last.stderr ?? ''}`.split('\n').filter((l) => /^(E|W): /.test(l));
      if (last.status === 0 && errors.length === 0) break;
      log(`apt-get update (private apt, attempt ${attempt}/3) failed:\n  ${errors.join('\n  ')}`);
      if (attempt === 3) throw new CorpusError(`apt-get update of the private apt configuration (${dir}) failed three times:\n  ${errors.join('\n  ')}`);
      await sleep(attempt * 15_000);
    }
    fs.writeFileSync(stampFile, `${JSON.stringify({ at: Date.now(), sources }, null, 2)}\n`);
    log(`private apt lists updated (${PRIVATE_SUITES.map(([, s]) => s).join(', ')})`);
  }
  privateInstance = apt;
  return apt;
}

/** Versions of `name` offered for `arch` in suites `suiteOk` accepts, oldest first. */
export function offered(rows, name, arch, suiteOk = () => true) {
  const out = new Set();
  for (const r of rows) {
    if (r.name !== name || r.indexArch !== arch) continue;
    if (!suiteOk(r.suite)) continue;
    out.add(r.version);
  }
  return [...out].sort(compareDebVersions);
}

export function aptSpec(p) {
  return p.arch === 'all' ? `${p.name}=${p.version}` : `${p.name}:${p.arch}=${p.version}`;
}

export function pkgKey(p) {
  return `${p.name}:${p.arch}=${p.version}`;
}

/** The name `apt-get download` saves a package under. */
function aptSavedName(p) {
  const q = (v) => v.replaceAll('%', '%25').replaceAll(':', '%3a').replaceAll('_', '%5f');
  return `${q(p.name)}_${q(p.version)}_${p.arch}.deb`;
}
