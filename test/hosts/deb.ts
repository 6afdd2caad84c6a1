// SPDX-License-Identifier: GPL-2.0-or-later
//
// Real Debian packages for the host tests: buildDeb() writes DEBIAN/control and the maintainer
// scripts beside a payload and runs dpkg-deb --build; dpkgRoot() runs `dpkg --root` (dpkg
// chroots into the root for maintainer scripts). debianKernelDeb() is a linux-image package
// with the maintainer scripts Debian's kernel packages have: depmod and /etc/kernel/postinst.d
// in postinst, /etc/kernel/prerm.d in prerm, the depmod files removed on purge.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CorpusKernel } from '../real/corpus.js';
import type { HostRoot, RunResult } from './host-root.js';
import { kernelPayload } from './kernel-payload.js';
import { payloadDir } from './rpm.js';

export interface DebSpec {
  name: string;
  version: string;
  payload?: string;
  depends?: string;
  /** Maintainer scripts by name (postinst, prerm, postrm…), shell text. */
  scripts?: Record<string, string>;
}

export function buildDeb(d: DebSpec): string {
  const dir = d.payload ?? payloadDir();
  mkdirSync(join(dir, 'DEBIAN'), { recursive: true });
  writeFileSync(
    join(dir, 'DEBIAN/control'),
    [`Package: ${d.name}`, `Version: ${d.version}`, 'Architecture: all', 'Maintainer: kabi tests <kabi@localhost>', ...(d.depends ? [`Depends: ${d.depends}`] : []), `Description: ${d.name} (kabi host test package)`, ''].join('\n'),
  );
  for (const [name, text] of Object.entries(d.scripts ?? {})) {
    writeFileSync(join(dir, 'DEBIAN', name), text);
    chmodSync(join(dir, 'DEBIAN', name), 0o755);
  }
  const out = join(mkdtempSync(join(tmpdir(), 'kabi-deb-')), `${d.name}_${d.version}_all.deb`);
  const r = spawnSync('dpkg-deb', ['--root-owner-group', '-Znone', '--build', dir, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dpkg-deb --build failed: ${r.stderr}`);
  return out;
}

export function dpkgRoot(root: HostRoot, args: readonly string[]): RunResult {
  return root.host(['dpkg', '--root', root.dir, '--force-unsafe-io', ...args]);
}

/** dpkg's words for a failed maintainer script or hook (it exits non-zero too, but say which). */
export function dpkgFailures(r: RunResult): string[] {
  return `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /returned error exit status|run-parts: .* exited with return code|subprocess .* returned/.test(l));
}

/** linux-image-K with Debian's kernel maintainer scripts (linux-image-6.1's, trimmed to what touches modules). */
export function debianKernelDeb(k: CorpusKernel, version = '1'): string {
  const K = k.krel;
  const payload = kernelPayload(k, 'debian', payloadDir());
  const hooks = (dir: string) => `if [ -d /etc/kernel/${dir} ]; then
  DEB_MAINT_PARAMS="$*" run-parts --report --exit-on-error --arg=${K} --arg=/boot/vmlinuz-${K} /etc/kernel/${dir}
fi`;
  return buildDeb({
    name: `linux-image-${K}`,
    version,
    payload: payload.dir,
    scripts: {
      postinst: `#!/bin/sh -e\n[ "$1" = configure ] || exit 0\ndepmod ${K}\n${hooks('postinst.d')}\n`,
      prerm: `#!/bin/sh -e\n[ "$1" = remove ] || exit 0\n${hooks('prerm.d')}\n`,
      postrm: `#!/bin/sh -e\n${hooks('postrm.d')}\nif [ "$1" = purge ]; then\n  for f in modules.dep modules.isapnpmap modules.pcimap modules.usbmap modules.parportmap modules.generic_string modules.ieee1394map modules.pnpbiosmap modules.alias modules.ccwmap modules.inputmap modules.symbols modules.ofmap modules.seriomap 'modules.*.bin' modules.softdep modules.devname; do\n    eval rm -f /lib/modules/${K}/$f\n  done\n  rmdir /lib/modules/${K} || true\nfi\n`,
    },
  });
}
