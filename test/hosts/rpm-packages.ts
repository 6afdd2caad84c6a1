// SPDX-License-Identifier: GPL-2.0-or-later
//
// The RPM packages of the host tests, built from corpus files:
//   baseRpm()            provides what the Debian root already has (sh, node, update-alternatives),
//                        so that rpm resolves and orders real dependencies instead of --nodeps
//   kernelRpm(k)         a kernel-core package with RHEL's kernel scriptlets (weak-modules
//                        --add-kernel in %posttrans, --remove-kernel in %preun, kernel-install)
//   kmodRpm({...})       an out-of-tree module package: no scriptlets at all (kabi's file
//                        triggers do the work), kmodtool's scriptlets calling /usr/sbin/weak-modules,
//                        or kabi's %kabi_kmod_* macros
// Each returns the path of the built .rpm.

import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CorpusKernel, TestModuleName } from '../real/corpus.js';
import { REPO } from './host-root.js';
import { DEPMOD_OUTPUTS, kernelPayload } from './kernel-payload.js';
import { buildRpm, payloadDir, rpmbuildSpec, specText } from './rpm.js';

export function baseRpm(): string {
  return buildRpm({
    name: 'kabi-test-base',
    version: '1',
    release: '1',
    summary: 'What the Debian root provides',
    provides: ['/bin/sh', '/bin/bash', '/usr/bin/env', '/usr/sbin/update-alternatives', `nodejs = ${process.versions.node}`, 'kmod', 'systemd', '/bin/kernel-install'],
    files: [],
  });
}

/** RHEL's dist.conf search order (kmod.spec's /etc/depmod.d/dist.conf), which weak-modules' world assumes. */
export const RHEL_DEPMOD_CONF = 'search updates extra built-in weak-updates\n';

/** Version-release of a corpus kernel as an RPM: 6.1.0-47-amd64 → 6.1.0 / 47 (sorts as the ABI does). */
function kernelEvr(k: CorpusKernel): { version: string; release: string } {
  const m = /^(\d+\.\d+\.\d+)-(\d+)/.exec(k.krel);
  if (!m) throw new Error(`cannot make an RPM version of ${k.krel}`);
  return { version: m[1]!, release: m[2]! };
}

export function kernelRpm(k: CorpusKernel): string {
  const K = k.krel;
  const payload = kernelPayload(k, 'rhel', payloadDir());
  const md = payload.moduleDir;
  for (const d of ['weak-updates', 'extra', 'updates']) mkdirSync(join(payload.dir, md, d), { recursive: true });
  for (const f of DEPMOD_OUTPUTS) writeFileSync(join(payload.dir, md, f), '');
  const top = [...new Set(payload.files.map((f) => f.slice(md.length + 1).split('/')[0]!))].sort();
  return buildRpm({
    name: 'kernel-core',
    ...kernelEvr(k),
    payload: payload.dir,
    requires: ['/bin/sh', '/bin/kernel-install'],
    files: [`%dir ${md}`, ...top.map((t) => `${md}/${t}`), ...['weak-updates', 'extra', 'updates'].map((d) => `%dir ${md}/${d}`), ...DEPMOD_OUTPUTS.map((f) => `%ghost ${md}/${f}`)],
    // RHEL 9's kernel.spec (%posttrans core, %preun core), word for word but the names.
    scripts: `%posttrans
if [ -x /usr/sbin/weak-modules ]
then
    /usr/sbin/weak-modules --add-kernel ${K} || exit $?
fi
/bin/kernel-install add ${K} ${md}/vmlinuz || exit $?

%preun
/bin/kernel-install remove ${K} ${md}/vmlinuz || exit $?
if [ -x /usr/sbin/weak-modules ]
then
    /usr/sbin/weak-modules --remove-kernel ${K} || exit $?
fi
`,
  });
}

export type KmodStyle = 'triggers' | 'kmodtool' | 'macros';

export interface KmodPackage {
  /** Package name without kmod- (also the directory under extra/). */
  name: string;
  version: string;
  kernel: CorpusKernel;
  modules: readonly TestModuleName[];
  /** Names of unreadable module files shipped along (a truncated copy of the first module). */
  corrupt?: readonly string[];
  style: KmodStyle;
}

function kmodtoolScripts(p: KmodPackage, dir: string): string {
  const K = p.kernel.krel;
  const list = `/var/run/rpm-kmod-${p.name}-modules`;
  // redhat-rpm-config's kmodtool (RHEL variant): bash arrays, so the scriptlets run in bash.
  return `%post -p /bin/bash
if [ -e "/boot/System.map-${K}" ]; then
    /usr/sbin/depmod -aeF "/boot/System.map-${K}" "${K}" > /dev/null || :
fi
modules=( $(find ${dir} | grep '\\.ko$') )
if [ -x "/usr/sbin/weak-modules" ]; then
    printf '%s\\n' "\${modules[@]}" | /usr/sbin/weak-modules --add-modules
fi

%preun -p /bin/bash
rpm -ql kmod-${p.name}-%{version}-%{release}.noarch | grep '\\.ko$' > ${list}

%postun -p /bin/bash
if [ -e "/boot/System.map-${K}" ]; then
    /usr/sbin/depmod -aeF "/boot/System.map-${K}" "${K}" > /dev/null || :
fi
modules=( $(cat ${list}) )
rm ${list}
if [ -x "/usr/sbin/weak-modules" ]; then
    printf '%s\\n' "\${modules[@]}" | /usr/sbin/weak-modules --remove-modules
fi
`;
}

function macroScripts(files: readonly string[]): string {
  return `%post\n%kabi_kmod_post ${files.join(' ')}\n\n%postun\n%kabi_kmod_postun ${files.join(' ')}\n\n%posttrans\n%kabi_kmod_posttrans\n`;
}

export function kmodRpm(p: KmodPackage): string {
  const dir = `/lib/modules/${p.kernel.krel}/extra/${p.name}`;
  const payload = payloadDir();
  mkdirSync(join(payload, dir), { recursive: true });
  const files: string[] = [];
  for (const m of p.modules) {
    const src = p.kernel.builtModules?.[m];
    if (!src) throw new Error(`${m} was not built against ${p.kernel.krel}`);
    copyFileSync(src, join(payload, dir, `${m}.ko`));
    files.push(`${dir}/${m}.ko`);
  }
  for (const bad of p.corrupt ?? []) {
    const bytes = readFileSync(p.kernel.builtModules![p.modules[0]!]);
    writeFileSync(join(payload, dir, `${bad}.ko`), bytes.subarray(0, Math.min(1500, bytes.length >> 1)));
    files.push(`${dir}/${bad}.ko`);
  }
  const scripts = p.style === 'kmodtool' ? kmodtoolScripts(p, dir) : p.style === 'macros' ? macroScripts(files) : '';
  const text = specText({
    name: `kmod-${p.name}`,
    version: p.version,
    release: '1',
    payload,
    // kmodtool's "Requires: kernel-uname-r = K": rpm erases the kmod before its kernel.
    requires: [`kernel-core = ${kernelEvr(p.kernel).version}-${kernelEvr(p.kernel).release}`, ...(p.style === 'macros' ? ['kabi', 'Requires(post): kabi', 'Requires(postun): kabi', 'Requires(posttrans): kabi'] : [])],
    files: [`%dir ${dir}`, ...files],
    scripts,
  }).replace(/^Requires: (Requires\(\w+\): kabi)$/gm, '$1');
  // The macros are rpmbuild's to expand: load kabi's macro file as an installed one would be.
  return rpmbuildSpec(text, undefined, p.style === 'macros' ? ['--load', join(REPO, 'integrations/rpm/macros.kabi')] : []);
}
