// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi itself, as a user installs it: `npm pack` of this checkout (dist/ must be built: `npm
// run build`) plus its runtime dependencies, then either
//   - kabiRpm(): the RPM built from integrations/rpm/kabi.spec (triggers, macros, alternatives), or
//   - installKabiFiles(root): the same files laid out in a root by hand, for dpkg/pacman/
//     kernel-install roots (their hook files are installed by each test where its host reads them).
// Layout (both): /usr/lib/node_modules/kabi, /usr/bin/kabi, /usr/libexec/kabi/{weak-modules,
// kabi-defer-initramfs, kabi-rpm-trigger}.

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostRoot } from './host-root.js';
import { REPO } from './host-root.js';
import { rpmbuildSpec } from './rpm.js';

/** kabi's runtime dependencies (the optional native codecs are left out: the package is noarch). */
const RUNTIME_DEPS = ['fzstd', 'xz-decompress'];

function must(cmd: string, args: readonly string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export interface KabiSources {
  dir: string;
  version: string;
  /** kabi-VERSION.tgz, as `npm pack` writes it. */
  tarball: string;
  /** kabi-deps-VERSION.tar.gz: node_modules/<dep> for each runtime dependency. */
  deps: string;
}

let sources: KabiSources | undefined;

export function kabiSources(): KabiSources {
  if (sources) return sources;
  for (const f of ['dist/bin/kabi.js', 'dist/bin/weak-modules.js', 'dist/bin/read-worker.js']) {
    if (!existsSync(join(REPO, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'kabi-sources-'));
  const packed = JSON.parse(must('npm', ['pack', '--json', '--pack-destination', dir], REPO)) as { filename: string; version: string }[];
  const { filename, version } = packed[0]!;
  const deps = join(dir, `kabi-deps-${version}.tar.gz`);
  must('tar', ['-czf', deps, '-C', REPO, ...RUNTIME_DEPS.map((d) => `node_modules/${d}`)]);
  sources = { dir, version, tarball: join(dir, filename), deps };
  return sources;
}

let rpm: string | undefined;

/** kabi's own RPM, built from integrations/rpm/kabi.spec with this checkout's npm pack. */
export function kabiRpm(): string {
  if (rpm) return rpm;
  const s = kabiSources();
  const spec = join(REPO, 'integrations/rpm/kabi.spec');
  rpm = rpmbuildSpec(readFileSync(spec, 'utf8'), s.dir, ['--define', `kabi_version ${s.version}`]);
  return rpm;
}

/** The files of kabi's package, without a package manager (for roots whose host tool is not rpm). */
export function installKabiFiles(root: HostRoot): void {
  const s = kabiSources();
  const pkg = root.path('usr/lib/node_modules/kabi');
  mkdirSync(pkg, { recursive: true });
  must('tar', ['-xzf', s.tarball, '-C', pkg, '--strip-components=1']);
  must('tar', ['-xzf', s.deps, '-C', pkg]);
  mkdirSync(root.path('usr/libexec/kabi'), { recursive: true });
  symlinkSync('../lib/node_modules/kabi/dist/bin/kabi.js', root.path('usr/bin/kabi'));
  symlinkSync('../../lib/node_modules/kabi/dist/bin/weak-modules.js', root.path('usr/libexec/kabi/weak-modules'));
  for (const f of ['kabi-defer-initramfs', 'kabi-rpm-trigger']) {
    copyFileSync(join(pkg, 'integrations/rpm', f), root.path(`usr/libexec/kabi/${f}`));
    chmodSync(root.path(`usr/libexec/kabi/${f}`), 0o755);
  }
}

/** Put one of kabi's integration files where its host tool reads it (mode 0755 for programs). */
export function installIntegration(root: HostRoot, rel: string, dest: string, mode = 0o755): void {
  const target = root.path(dest);
  mkdirSync(join(target, '..'), { recursive: true });
  copyFileSync(join(root.path('usr/lib/node_modules/kabi/integrations'), rel), target);
  chmodSync(target, mode);
}
