import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync, linkSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { writeTree as writePlainTree, type TreeItem as PlainItem } from '../initramfs/helpers.js';
import type { FixtureRoot } from '../../corpus/fixtures/system-root.js';

/** Packages for the reader tests, built by the real tools (dpkg-deb, ar, tar, xz, rpmbuild). */

/** The initramfs tests' tree items, and hard links (a package can hold those). */
export type TreeItem = PlainItem | { path: string; hardlink: string };

export function tempDir(prefix = 'kabi-pkg-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeTree(root: string, items: readonly TreeItem[]): void {
  writePlainTree(root, items.filter((it): it is PlainItem => !('hardlink' in it)));
  for (const it of items) {
    if (!('hardlink' in it)) continue;
    mkdirSync(dirname(join(root, it.path)), { recursive: true });
    linkSync(join(root, it.hardlink), join(root, it.path));
  }
}

/** Regular files of a tree: system path → contents. */
export function treeFiles(root: string, sub = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.set('/' + relative(root, p), readFileSync(p));
    }
  };
  walk(join(root, sub));
  return out;
}

function run(cmd: string, args: string[], opts: { cwd?: string; input?: Uint8Array } = {}): Buffer {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString() ?? r.error}`);
  return r.stdout;
}

export interface DebOptions {
  name?: string;
  version?: string;
  arch?: string;
  /** dpkg-deb -Z: xz, gzip, zstd, none. */
  compression?: 'xz' | 'gzip' | 'zstd' | 'none';
  md5sums?: boolean;
}

/** A .deb of `items`, built by dpkg-deb. */
export function buildDeb(dir: string, items: readonly TreeItem[], opts: DebOptions = {}): string {
  const root = tempDir('kabi-debroot-');
  writeTree(root, items);
  const name = opts.name ?? 'kabi-test';
  mkdirSync(join(root, 'DEBIAN'));
  writeFileSync(join(root, 'DEBIAN/control'), `Package: ${name}\nVersion: ${opts.version ?? '1.0-1'}\nArchitecture: ${opts.arch ?? 'all'}\nMaintainer: kabi tests <kabi@example.org>\nDescription: test package\n long description\n`);
  if (opts.md5sums !== false) {
    const lines = [...treeFiles(root)].filter(([p]) => !p.startsWith('/DEBIAN/')).map(([p, b]) => `${createHash('md5').update(b).digest('hex')}  ${p.slice(1)}`);
    writeFileSync(join(root, 'DEBIAN/md5sums'), lines.join('\n') + '\n');
  }
  const out = join(dir, `${name}_${opts.version ?? '1.0-1'}_${opts.arch ?? 'all'}.deb`);
  run('dpkg-deb', ['--root-owner-group', `-Z${opts.compression ?? 'xz'}`, '--build', root, out]);
  return out;
}

/** data.tar of a tree, as GNU tar writes it (`format`: gnu, posix (pax), ustar). */
export function tarOf(items: readonly TreeItem[], format: 'gnu' | 'posix' | 'ustar' = 'gnu'): Buffer {
  const root = tempDir('kabi-tarroot-');
  writeTree(root, items);
  return run('tar', [`--format=${format}`, '--owner=0', '--group=0', '-C', root, '-cf', '-', '.']);
}

/** A .deb assembled member by member with ar (to put in what dpkg-deb would not write). */
export function assembleDeb(dir: string, name: string, members: readonly { name: string; data: Uint8Array }[]): string {
  const work = tempDir('kabi-ar-');
  for (const m of members) writeFileSync(join(work, m.name), m.data);
  const out = join(dir, name);
  run('ar', ['rcD', out, ...members.map((m) => m.name)], { cwd: work });
  return out;
}

export function controlTar(name: string, md5sums?: string): Buffer {
  return xz(tarOf([{ path: 'control', data: `Package: ${name}\nVersion: 1\nArchitecture: all\n` }, ...(md5sums !== undefined ? [{ path: 'md5sums', data: md5sums }] : [])]));
}

export function xz(data: Uint8Array, extra: string[] = []): Buffer {
  return run('xz', ['-c', '-q', ...extra], { input: data });
}

export function compressWith(tool: string, args: string[], data: Uint8Array): Buffer {
  return run(tool, args, { input: data });
}

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

export interface RpmOptions {
  name?: string;
  version?: string;
  /** %_binary_payload, e.g. w9.xzdio, w19.zstdio, w6.gzdio, w9.bzdio, w2.ufdio */
  payload?: string;
  /** Files listed %ghost (paths as installed). */
  ghosts?: readonly string[];
}

/** An RPM of `items`, built by rpmbuild from a prepared buildroot. */
export function buildRpm(dir: string, items: readonly TreeItem[], opts: RpmOptions = {}): string {
  const src = tempDir('kabi-rpmsrc-');
  writeTree(src, items);
  return buildRpmFromTree(dir, src, opts);
}

/** An RPM of every file under `src` (as installed under /), built by rpmbuild. */
export function buildRpmFromTree(dir: string, src: string, opts: RpmOptions = {}): string {
  const top = tempDir('kabi-rpmtop-');
  for (const g of opts.ghosts ?? []) mkdirSync(dirname(join(src, g)), { recursive: true });
  const name = opts.name ?? 'kabi-test';
  const files = listForSpec(src);
  const spec = `
Name: ${name}
Version: ${opts.version ?? '1.0'}
Release: 1
Summary: kabi test package
License: GPL-2.0-or-later
BuildArch: noarch
AutoReqProv: no
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _build_id_links none
%description
test
%install
mkdir -p %{buildroot}
cp -a ${src}/. %{buildroot}/
${(opts.ghosts ?? []).map((g) => `: > %{buildroot}${g}`).join('\n')}
%files
%defattr(-,root,root,-)
${files.join('\n')}
${(opts.ghosts ?? []).map((g) => `%ghost ${g}`).join('\n')}
`;
  writeFileSync(join(top, `${name}.spec`), spec);
  run('rpmbuild', [
    '-bb',
    '--nodeps',
    '--define',
    `_topdir ${top}`,
    '--define',
    `_binary_payload ${opts.payload ?? 'w9.xzdio'}`,
    '--define',
    '_rpmdir %{_topdir}/RPMS',
    '--define',
    '__spec_install_post %{nil}',
    join(top, `${name}.spec`),
  ]);
  const rpms = execFileSync('find', [join(top, 'RPMS'), '-name', '*.rpm']).toString().trim().split('\n');
  const out = join(dir, `${name}-${opts.payload ?? 'xz'}.rpm`);
  writeFileSync(out, readFileSync(rpms[0]!));
  return out;
}

/** %files lines: every file and symlink, every directory (so empty ones are packaged too). */
function listForSpec(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const sys = '/' + relative(root, p);
      const st = lstatSync(p);
      if (st.isDirectory()) {
        out.push(`%dir "${sys}"`);
        walk(p);
      } else out.push(`"${sys}"`);
    }
  };
  walk(root);
  return out;
}

/** Every file, symlink and directory of a fixture root under `prefixes`, as package items. */
export function itemsOf(root: string, prefixes: readonly string[]): TreeItem[] {
  const out: TreeItem[] = [];
  const walk = (dir: string) => {
    for (const n of readdirSync(dir)) {
      const p = join(dir, n);
      const rel = relative(root, p);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push({ path: rel, link: readlinkSync(p) });
      else if (st.isDirectory()) {
        out.push({ path: rel, dir: true });
        walk(p);
      } else out.push({ path: rel, data: readFileSync(p) });
    }
  };
  for (const pre of prefixes) {
    try {
      if (lstatSync(join(root, pre)).isDirectory()) walk(join(root, pre));
      else out.push({ path: pre, data: readFileSync(join(root, pre)) });
    } catch {
      // not in this kernel
    }
  }
  return out;
}

/** A kernel laid out as Debian packages it: the image (modules, /boot) and the headers (Module.symvers). */
export function debianPackages(dir: string, fx: FixtureRoot, release: string, opts: { imageName?: string; version?: string } = {}): string[] {
  const image = buildDeb(dir, itemsOf(fx.root, [`lib/modules/${release}`, `boot/config-${release}`, `boot/System.map-${release}`]), {
    name: opts.imageName ?? `linux-image-${release}`,
    arch: 'amd64',
    ...(opts.version !== undefined ? { version: opts.version } : {}),
  });
  const headers = buildDeb(dir, [...itemsOf(fx.root, [`usr/src/linux-headers-${release}`]), { path: `lib/modules/${release}/build`, link: `/usr/src/linux-headers-${release}` }], {
    name: `linux-headers-${release}`,
    arch: 'amd64',
    ...(opts.version !== undefined ? { version: opts.version } : {}),
  });
  return [image, headers];
}
