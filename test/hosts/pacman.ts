// SPDX-License-Identifier: GPL-2.0-or-later
//
// Real pacman packages for the host tests: buildPkg() writes .PKGINFO beside a payload and packs
// a .pkg.tar.zst; pacmanRoot() runs `pacman -r ROOT` with the root's own database, cache, log
// and hook directory (libalpm chroots into the root to run hooks). archKernelPkg() is a
// linux-like package (/usr/lib/modules/K/{vmlinuz,pkgbase,kernel/…}); installArchDepmodHook()
// puts Arch's kmod depmod hook and script into the root (depmod on install, the depmod files and
// the empty directory removed with the kernel), as Arch's kmod package ships them.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CorpusKernel } from '../real/corpus.js';
import type { HostRoot, RunResult } from './host-root.js';
import { kernelPayload } from './kernel-payload.js';
import { payloadDir } from './rpm.js';

export function buildPkg(p: { name: string; version: string; payload: string; depends?: readonly string[] }): string {
  writeFileSync(
    join(p.payload, '.PKGINFO'),
    [`pkgname = ${p.name}`, `pkgbase = ${p.name}`, `pkgver = ${p.version}`, `pkgdesc = ${p.name} (kabi host test package)`, 'url = https://www.npmjs.com/package/kabi', 'builddate = 1700000000', 'packager = kabi tests', 'size = 1', 'arch = any', 'license = GPL', ...(p.depends ?? []).map((d) => `depend = ${d}`), ''].join('\n'),
  );
  const out = join(mkdtempSync(join(tmpdir(), 'kabi-pkg-')), `${p.name}-${p.version}-any.pkg.tar.zst`);
  const entries = readdirSync(p.payload).filter((e) => e !== '.PKGINFO');
  const r = spawnSync('tar', ['--zstd', '-cf', out, '-C', p.payload, '--owner=0', '--group=0', '.PKGINFO', ...entries], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar --zstd failed: ${r.stderr}`);
  return out;
}

export function pacmanRoot(root: HostRoot, args: readonly string[]): RunResult {
  mkdirSync(root.path('var/lib/pacman'), { recursive: true });
  mkdirSync(root.path('var/cache/pacman/pkg'), { recursive: true });
  mkdirSync(root.path('usr/share/libalpm/hooks'), { recursive: true });
  const conf = root.path('etc/pacman.conf');
  writeFileSync(conf, '[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n');
  return root.host([
    'pacman', '-r', root.dir, '--config', conf, '--dbpath', root.path('var/lib/pacman'), '--cachedir', root.path('var/cache/pacman/pkg'),
    '--logfile', root.path('var/log/pacman.log'), '--hookdir', root.path('usr/share/libalpm/hooks'), '--noconfirm', '--noprogressbar', ...args,
  ]);
}

/** pacman's words for a hook or scriptlet that failed (it still exits 0 for post-transaction hooks). */
export function pacmanFailures(r: RunResult): string[] {
  return `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /^error:|command failed to execute correctly|failed to run transaction hooks/.test(l));
}

export function archKernelPkg(k: CorpusKernel): string {
  const payload = kernelPayload(k, 'arch', payloadDir());
  return buildPkg({ name: `linux-${k.krel.split('-')[1]}`, version: `${k.krel.split('-')[0]}.${k.krel.split('-')[1]}-1`, payload: payload.dir });
}

/** Arch's kmod depmod hook (usr/share/libalpm/hooks/60-depmod.hook) and its script, into the root. */
export function installArchDepmodHook(root: HostRoot): void {
  mkdirSync(root.path('usr/share/libalpm/scripts'), { recursive: true });
  mkdirSync(root.path('usr/share/libalpm/hooks'), { recursive: true });
  writeFileSync(
    root.path('usr/share/libalpm/hooks/60-depmod.hook'),
    '[Trigger]\nType = Path\nOperation = Install\nOperation = Upgrade\nOperation = Remove\nTarget = usr/lib/modules/*/\nTarget = !usr/lib/modules/*/?*\n\n[Action]\nDescription = Updating module dependencies...\nWhen = PostTransaction\nExec = /usr/share/libalpm/scripts/depmod\nNeedsTargets\n',
  );
  writeFileSync(
    root.path('usr/share/libalpm/scripts/depmod'),
    '#!/bin/bash -e\nwhile read -r f; do\n  if [[ -e /${f}modules.order ]]; then\n    depmod $(basename "$f")\n  elif [[ -d /$f ]]; then\n    rm -f "/${f}"modules.{alias,alias.bin,builtin.alias.bin,builtin.bin,dep,dep.bin,devname,softdep,symbols,symbols.bin}\n    rmdir --ignore-fail-on-non-empty "/$f"\n  fi\ndone\n',
    { mode: 0o755 },
  );
}
