// SPDX-License-Identifier: GPL-2.0-or-later
//
// Kernel packages of other Debian suites for the package-reading tests: trixie's 6.12 (one
// linux-image with everything) and sid's 7.x, which Debian splits into linux-binary-K (the
// kernel image), linux-modules-K (the module tree) and linux-base-K (System.map, config,
// modules.order under /usr/lib/modules/K), with Module.symvers in linux-headers-K.
//
// They are chosen from what the archive offers (the current linux-image-amd64 and
// linux-headers-amd64 of the suite), downloaded once with `apt-get download` through a private
// apt state (the machine's own sources stay as they are) into the corpus cache's package-debs/, and
// remembered in <cache>/package-kernels-<suite>.json so later runs need no network. A
// download that fails fails the test run: nothing is skipped.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CACHE = path.resolve(process.env.KABI_CORPUS_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'kabi-corpus'));
/**
 * Beside debs/, not in it: corpus/debian/fetch.mjs removes from debs/ every package its own
 * corpus does not list.
 */
const DEBS = path.join(CACHE, 'package-debs');
const MIRROR = 'http://deb.debian.org/debian';

export type Suite = 'trixie' | 'sid';

export interface PackagedKernel {
  suite: Suite;
  release: string;
  /** Package files (in debs/): the image packages first, then the headers. */
  files: string[];
  /** Package names, same order. */
  names: string[];
}

function sources(suite: Suite): string {
  const key = '[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]';
  if (suite === 'trixie') return `deb ${key} ${MIRROR} trixie main\ndeb ${key} http://deb.debian.org/debian-security trixie-security main\n`;
  return `deb ${key} ${MIRROR} sid main\n`;
}

function aptConfig(suite: Suite): string {
  const dir = path.join(CACHE, `apt-${suite}`);
  mkdirSync(path.join(dir, 'lists/partial'), { recursive: true });
  mkdirSync(path.join(dir, 'cache/archives/partial'), { recursive: true });
  mkdirSync(path.join(dir, 'preferences.d'), { recursive: true });
  writeFileSync(path.join(dir, 'sources.list'), sources(suite));
  if (!existsSync(path.join(dir, 'status'))) writeFileSync(path.join(dir, 'status'), '');
  const conf = path.join(dir, 'apt.conf');
  writeFileSync(
    conf,
    [
      `Dir::State "${dir}";`,
      `Dir::State::Lists "${dir}/lists";`,
      `Dir::State::status "${dir}/status";`,
      `Dir::Cache "${dir}/cache";`,
      `Dir::Etc::SourceList "${dir}/sources.list";`,
      'Dir::Etc::SourceParts "/nonexistent";',
      `Dir::Etc::PreferencesParts "${dir}/preferences.d";`,
      'APT::Architecture "amd64";',
      'APT::Architectures { "amd64"; };',
      'Acquire::Retries "3";',
      '',
    ].join('\n'),
  );
  return conf;
}

function apt(conf: string, cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, APT_CONFIG: conf, LC_ALL: 'C' }, timeout: 900_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.error?.message}):\n${(r.stderr || r.stdout || '').slice(-3000)}`);
  return r.stdout;
}

function update(conf: string): void {
  let last: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      apt(conf, 'apt-get', ['update', '-q']);
      return;
    } catch (e) {
      last = e;
      spawnSync('sleep', [String(attempt * 15)]);
    }
  }
  throw last;
}

/** Depends of the candidate version of a package, as plain names. */
function depends(conf: string, name: string): string[] {
  const show = apt(conf, 'apt-cache', ['show', '--no-all-versions', name]);
  const line = /^Depends: (.*)$/m.exec(show)?.[1] ?? '';
  return line.split(',').map((d) => d.trim().split(/[\s|]/)[0]!);
}

function resolve(conf: string, suite: Suite): { release: string; names: string[] } {
  const image = depends(conf, 'linux-image-amd64').find((d) => /^linux-image-\d/.test(d));
  if (!image) throw new Error(`${suite}: linux-image-amd64 depends on no versioned linux-image`);
  const release = image.replace(/^linux-image-/, '').replace(/-unsigned$/, '');
  // 7.x: the image is a metapackage of linux-binary, linux-modules and linux-base.
  const parts = depends(conf, image).filter((d) => d.startsWith('linux-binary-') || d.startsWith('linux-modules-') || d.startsWith('linux-base-'));
  const headers = depends(conf, 'linux-headers-amd64').find((d) => d === `linux-headers-${release}`);
  if (!headers) throw new Error(`${suite}: linux-headers-amd64 does not depend on linux-headers-${release}`);
  return { release, names: [...(parts.length > 0 ? parts : [image]), headers] };
}

/** The suite's current amd64 kernel as package files in the corpus cache (downloaded on first use). */
export function ensurePackagedKernel(suite: Suite): PackagedKernel {
  const memo = path.join(CACHE, `package-kernels-${suite}.json`);
  if (existsSync(memo)) {
    const k = JSON.parse(readFileSync(memo, 'utf8')) as PackagedKernel;
    if (k.files.every((f) => existsSync(f))) return k;
  }
  const conf = aptConfig(suite);
  update(conf);
  const { release, names } = resolve(conf, suite);
  mkdirSync(DEBS, { recursive: true });
  const tmp = path.join(CACHE, `dl-${suite}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    apt(conf, 'apt-get', ['download', '-q', ...names], tmp);
    const files: string[] = [];
    for (const n of names) {
      const f = readdirSync(tmp).find((x) => x.startsWith(`${n}_`) && x.endsWith('.deb'));
      if (!f || statSync(path.join(tmp, f)).size === 0) throw new Error(`apt-get download ${n} left no package`);
      renameSync(path.join(tmp, f), path.join(DEBS, f));
      files.push(path.join(DEBS, f));
    }
    const k: PackagedKernel = { suite, release, files, names };
    writeFileSync(memo, JSON.stringify(k, null, 2) + '\n');
    return k;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
