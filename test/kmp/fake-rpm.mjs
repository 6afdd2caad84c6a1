#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-or-later
//
// A stand-in for `rpm -qa --qf FORMAT GLOB` over a fixture root: the "database" is
// <root>/var/lib/kabi-fake-rpm.json, a list of {name, version, release, epoch?, provides, files}.
// It implements the part of rpm's query format weak-modules2 (and kabi) use: %{NAME} %{VERSION}
// %{RELEASE} %{EPOCH}, [ ] groups iterating one array tag (PROVIDENAME, FILENAMES), \t and \n.
// test/hosts/suse/ checks that its answer is real rpm's answer for the same packages.
//
// As a program: fake-rpm.mjs [--root R] [--dbpath D] -qa [--nodigest] [--nosignature] --qf F GLOB,
// or fake-rpm.mjs [--root R] -ql NAME
// As a module: answer(argv, cwdRoot) → { status, stdout, stderr }.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DB_FILE = 'var/lib/kabi-fake-rpm.json';

function globRe(glob) {
  let re = '';
  for (const ch of glob) re += ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|\\[\]]/g, '\\$&');
  return new RegExp(`^${re}$`);
}

function unescape(s) {
  return s.replace(/\\([tn\\])/g, (_, c) => (c === 't' ? '\t' : c === 'n' ? '\n' : '\\'));
}

function tag(pkg, name) {
  switch (name) {
    case 'NAME':
      return pkg.name;
    case 'VERSION':
      return pkg.version;
    case 'RELEASE':
      return pkg.release;
    case 'EPOCH':
      return pkg.epoch === undefined || pkg.epoch === null ? '(none)' : String(pkg.epoch);
    case 'PROVIDENAME':
      // "name = version" in a spec's Provides: rpm's PROVIDENAME is the name alone.
      return [pkg.name, ...(pkg.provides ?? []).map((p) => p.split(/\s/)[0])];
    case 'FILENAMES':
      return pkg.files ?? [];
    default:
      throw new Error(`fake rpm: tag ${name} not implemented`);
  }
}

function format(pkg, fmt) {
  let out = '';
  const re = /\[([^\]]*)\]|%\{(\w+)\}|([^[%]+|%)/g;
  for (const m of fmt.matchAll(re)) {
    if (m[1] !== undefined) {
      const inner = m[1];
      const arrays = [...inner.matchAll(/%\{(\w+)\}/g)].map((t) => tag(pkg, t[1]));
      const n = Math.max(0, ...arrays.map((a) => (Array.isArray(a) ? a.length : 1)));
      for (let i = 0; i < n; i++) out += inner.replace(/%\{(\w+)\}/g, (_, t) => { const v = tag(pkg, t); return Array.isArray(v) ? v[i] : v; });
    } else if (m[2] !== undefined) out += tag(pkg, m[2]);
    else out += m[3];
  }
  return out;
}

export function readDb(root) {
  try {
    return JSON.parse(readFileSync(join(root, DB_FILE), 'utf8'));
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
}

export function answer(argv, defaultRoot = '/') {
  let root = defaultRoot;
  let qf = '%{NAME}-%{VERSION}-%{RELEASE}\\n';
  let all = false;
  let list = false;
  const globs = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--root') root = argv[++i];
    else if (a === '--dbpath') i++;
    else if (a === '--qf' || a === '--queryformat') qf = argv[++i];
    else if (a === '-qa') all = true;
    else if (a === '-ql') list = true;
    else if (a === '--nodigest' || a === '--nosignature') continue;
    else if (a.startsWith('-')) return { status: 1, stdout: '', stderr: `fake rpm: option ${a} not implemented\n` };
    else globs.push(a);
  }
  // -ql NAME: the files of an installed package (by name or name-version-release), as rpm lists them.
  if (list) {
    let stdout = '';
    for (const name of globs) {
      const pkg = readDb(root).find((p) => p.name === name || `${p.name}-${p.version}-${p.release}` === name);
      if (!pkg) return { status: 1, stdout, stderr: `package ${name} is not installed\n` };
      stdout += (pkg.files ?? []).map((f) => `${f}\n`).join('');
    }
    return { status: 0, stdout, stderr: '' };
  }
  if (!all) return { status: 1, stdout: '', stderr: 'fake rpm: only -qa and -ql are implemented\n' };
  const fmt = unescape(qf);
  const res = globs.map(globRe);
  let stdout = '';
  for (const pkg of readDb(root)) if (res.length === 0 || res.some((r) => r.test(pkg.name))) stdout += format(pkg, fmt);
  return { status: 0, stdout, stderr: '' };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = answer(process.argv.slice(2));
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  process.exitCode = r.status;
}
