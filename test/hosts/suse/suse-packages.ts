// SPDX-License-Identifier: GPL-2.0-or-later
//
// The RPM packages of the SUSE host tests, built with rpmbuild from corpus kernels and modules:
//   suseBaseRpm()          what the Debian root provides (sh, bash, node, update-alternatives…)
//   suseModuleToolsRpm()   the parts of suse-module-tools that kabi does not replace: depmod.d's
//                          search order, regenerate-initrd-posttrans (a stand-in behaving as
//                          SUSE's: one `dracut -f --kver K` per /run/regenerate-initrd/K), and a
//                          weak-modules2 that only records that it was called (kabi's must win)
//   suseKernelRpm(k, fl)   kernel-<flavor>: a corpus kernel installed as <version>-<abi>-<flavor>
//                          under /usr/lib/modules, with scriptlets that behave as SUSE's
//                          kernel-scriptlets/rpm-script (--add-kernel in %post, --remove-kernel in
//                          %postun once the files are gone, regenerate-initrd-posttrans)
//   suseKernelExtraRpm(…)  kernel-<flavor>-extra: modules built with the kernel, in its kernel/,
//                          with scriptlets that behave as SUSE's inkmp-script
//                          (--add-kernel-modules, --remove-kernel-modules)
//   kmpRpm({...})          <name>-kmp-<flavor>: corpus test modules built for a kernel, in that
//                          kernel's updates/ (SUSE's layout) or in a directory of its own version
//                          (a store KMP), with scriptlets that behave as SUSE's kmp-script
//   kabiSuseRpm()          integrations/suse/kabi.spec with this checkout's npm pack
// Each returns the path of the built .rpm. The scriptlets are written here from what SUSE's
// scripts do (weak-modules-behaviour.md §2.2): they are the test's, not SUSE's text.

import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { CorpusKernel, TestModuleName } from '../../real/corpus.js';
import { REPO } from '../host-root.js';
import { kabiSources } from '../kabi-package.js';
import { DEPMOD_OUTPUTS, moduleSubset } from '../kernel-payload.js';
import { buildRpm, payloadDir, rpmbuildSpec } from '../rpm.js';

export const WM2 = '/usr/lib/module-init-tools/weak-modules2';
export const SUSE_DEPMOD_CONF = 'search updates extra weak-updates kgraft built-in\n';
/** Where the stand-in for SUSE's weak-modules2 records its calls (kabi's replaces it: it stays empty). */
export const SUSE_WM2_LOG = '/var/log/suse-weak-modules2.calls';

/** The SUSE kernel release of a corpus kernel: 6.1.0-47-amd64 → 6.1.0-47-<flavor>. */
export function suseRelease(k: CorpusKernel, flavor: string): string {
  return k.krel.replace(/-[^-]+$/, `-${flavor}`);
}

function evr(k: CorpusKernel): { version: string; release: string } {
  const m = /^(\d+\.\d+\.\d+)-(\d+)/.exec(k.krel);
  if (!m) throw new Error(`cannot make an RPM version of ${k.krel}`);
  return { version: m[1]!, release: m[2]! };
}

function write(payload: string, path: string, data: string | Uint8Array, mode?: number): void {
  mkdirSync(dirname(join(payload, path)), { recursive: true });
  writeFileSync(join(payload, path), data, mode === undefined ? {} : { mode });
}

export function suseBaseRpm(): string {
  return buildRpm({
    name: 'kabi-test-suse-base',
    version: '1',
    release: '1',
    summary: 'What the Debian root provides',
    provides: ['/bin/sh', '/bin/bash', '/usr/bin/env', 'update-alternatives', `nodejs = ${process.versions.node}`, 'kmod', 'dracut'],
    files: [],
  });
}

/**
 * `tools`: files to ship instead of the stand-ins (system path → contents), for comparing kabi
 * with SUSE's own scripts on this machine; CI never has them.
 */
export function suseModuleToolsRpm(tools: Record<string, string> = {}): string {
  const payload = payloadDir();
  write(payload, '/usr/lib/depmod.d/00-system.conf', SUSE_DEPMOD_CONF);
  write(payload, WM2, `#!/bin/sh\n# suse-module-tools' weak-modules2 (test stand-in): kabi's takes its place.\necho "$*" >> ${SUSE_WM2_LOG}\n`, 0o755);
  for (const [path, text] of Object.entries(tools)) write(payload, path, text, 0o755);
  // As SUSE's regenerate-initrd-posttrans with dracut: nothing in a build environment but a
  // note; otherwise one dracut run per recorded kernel (or --regenerate-all), records removed.
  // The image is named as SUSE's dracut names it (Debian's would say initrd.img-K).
  write(
    payload,
    '/usr/lib/module-init-tools/regenerate-initrd-posttrans',
    `#!/bin/sh
dir=/run/regenerate-initrd
[ -d "$dir" ] || exit 0
set -- "$dir"/*
[ -e "$1" ] || exit 0
if [ ! -f /etc/fstab ] || [ -e /.buildenv ]; then
	echo "Please run \\"dracut -f --regenerate-all\\" when the system is complete." >&2
	rm -f "$dir"/*
	exit 0
fi
[ -x /usr/bin/dracut ] || { echo "dracut is not installed: no initrd rebuilt" >&2; exit 0; }
err=0
if [ -e "$dir/all" ]; then
	rm -f "$dir"/*
	for m in /lib/modules/*; do [ ! -e "$m/modules.dep" ] || /usr/bin/dracut -f "/boot/initrd-\${m##*/}" "\${m##*/}" || err=$?; done
fi
for f in "$dir"/*; do
	[ -e "$f" ] || continue
	rm -f "$f"
	kver=\${f##*/}
	[ -d "/lib/modules/$kver" ] || { echo "$0: skipping invalid kernel version $kver"; continue; }
	/usr/bin/dracut -f "/boot/initrd-$kver" "$kver" || err=$?
done
exit $err
`,
    0o755,
  );
  return buildRpm({
    name: 'suse-module-tools',
    version: '16.1.6',
    release: '1',
    payload,
    requires: ['/bin/sh'],
    files: [
      ...new Set(['%dir /usr/lib/module-init-tools', WM2, '/usr/lib/module-init-tools/regenerate-initrd-posttrans', '/usr/lib/depmod.d/00-system.conf', ...Object.keys(tools)]),
    ],
  });
}

export function suseKernelRpm(k: CorpusKernel, flavor: 'default' | 'rt' | 'kdump'): string {
  const K = suseRelease(k, flavor);
  const md = `/usr/lib/modules/${K}`;
  const payload = payloadDir();
  const files: string[] = [];
  const put = (src: string, dst: string) => {
    mkdirSync(dirname(join(payload, dst)), { recursive: true });
    copyFileSync(src, join(payload, dst));
    files.push(dst);
  };
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) if (existsSync(join(k.moduleDir, f))) put(join(k.moduleDir, f), `${md}/${f}`);
  for (const rel of moduleSubset(k)) put(join(k.moduleDir, rel), `${md}/${rel}`);
  put(join(k.treeRoot, 'boot', `vmlinuz-${k.krel}`), `${md}/vmlinuz`);
  put(k.systemMap, `${md}/System.map`);
  put(k.config, `${md}/config`);
  write(payload, `${md}/symvers.gz`, gzipSync(readFileSync(k.symvers)));
  files.push(`${md}/symvers.gz`);
  for (const f of DEPMOD_OUTPUTS) write(payload, `${md}/${f}`, '');
  const top = [...new Set(files.map((f) => f.slice(md.length + 1).split('/')[0]!))].sort();
  return buildRpm({
    name: `kernel-${flavor}`,
    ...evr(k),
    payload,
    provides: ['multiversion(kernel)'],
    requires: ['/bin/sh', 'suse-module-tools'],
    files: [`%dir ${md}`, ...top.map((t) => `${md}/${t}`), ...DEPMOD_OUTPUTS.map((f) => `%ghost ${md}/${f}`)],
    // As SUSE's kernel-scriptlets/rpm-script: %post --add-kernel (depmod, initrd); %postun
    // --remove-kernel only when this kernel's files are really gone (not on a reinstall).
    scripts: `%post
if [ -x ${WM2} ]; then
    ${WM2} --add-kernel ${K} || exit $?
else
    echo "${WM2} is missing: run depmod and dracut yourself" >&2
    exit 1
fi

%postun
[ -e ${md}/System.map ] && exit 0
[ ! -x ${WM2} ] || ${WM2} --remove-kernel ${K}

%posttrans
[ ! -x /usr/lib/module-init-tools/regenerate-initrd-posttrans ] || /usr/lib/module-init-tools/regenerate-initrd-posttrans
`,
  });
}

/**
 * kernel-<flavor>-extra: modules built with the kernel, in its kernel/ tree, with scriptlets
 * that behave as SUSE's inkmp-script: %post feeds the package's modules to --add-kernel-modules
 * (initrd left to %posttrans); %preun saves them; %postun feeds those that are gone to
 * --remove-kernel-modules (an erase has no %posttrans: the initrd is built then). kernel/ modules
 * are linked by no one: weak-modules2 reads the list, relinks the kernel's KMPs, runs depmod and
 * the initrd step.
 */
export function suseKernelExtraRpm(k: CorpusKernel, flavor: 'default' | 'rt', modules: Partial<Record<TestModuleName, CorpusKernel>>): string {
  const K = suseRelease(k, flavor);
  const dir = `/usr/lib/modules/${K}/kernel/drivers/kabi-extra`;
  const payload = payloadDir();
  const files: string[] = [];
  for (const [m, built] of Object.entries(modules)) {
    const src = built?.builtModules?.[m as TestModuleName];
    if (!src) throw new Error(`${m} was not built against ${built?.krel}`);
    write(payload, `${dir}/${m}.ko`, readFileSync(src));
    files.push(`${dir}/${m}.ko`);
  }
  const list = (nvr: string) => `rpm -ql "${nvr}" | sed -n '/\\.ko\\(\\.xz\\|\\.gz\\|\\.zst\\)\\?$/p'`;
  return buildRpm({
    name: `kernel-${flavor}-extra`,
    ...evr(k),
    payload,
    provides: ['multiversion(kernel)'],
    requires: ['/bin/bash', 'suse-module-tools', `kernel-${flavor} = %{version}-%{release}`],
    files: [`%dir ${dirname(dir)}`, `%dir ${dir}`, ...files],
    scripts: `%post -p /bin/bash
nvr=%{name}-%{version}-%{release}
[ ! -x ${WM2} ] || ${list('$nvr')} | INITRD_IN_POSTTRANS=1 ${WM2} --add-kernel-modules ${K} || exit $?

%preun -p /bin/bash
nvr=%{name}-%{version}-%{release}
${list('$nvr')} > "/run/rpm-$nvr-modules"

%postun -p /bin/bash
nvr=%{name}-%{version}-%{release}
modules=()
while read -r m; do [ -e "$m" ] || modules+=("$m"); done < "/run/rpm-$nvr-modules"
rm -f "/run/rpm-$nvr-modules"
[ \${#modules[*]} = 0 ] || [ ! -x ${WM2} ] || printf '%s\\n' "\${modules[@]}" | ${WM2} --remove-kernel-modules ${K} || exit $?

%posttrans
[ ! -x /usr/lib/module-init-tools/regenerate-initrd-posttrans ] || /usr/lib/module-init-tools/regenerate-initrd-posttrans
`,
  });
}

export interface KmpPackage {
  /** The driver's name: the package is <base>-kmp-<flavor>. */
  base: string;
  flavor: 'default' | 'rt';
  /** The driver's version; the package version is <version>_k<kernel version>, as SUSE's KMPs. */
  version: string;
  release?: string;
  /** The corpus kernel the modules were built against. */
  kernel: CorpusKernel;
  modules: readonly TestModuleName[];
  /** updates/ of the kernel it was built for (SUSE), or /usr/lib/kmp/<name>/<version>-<release>/ (a store KMP). */
  layout?: 'tree' | 'store';
  /**
   * A tree KMP's kernel when it is not `kernel`: the corpus has no modules built against 56, but
   * 56 and 57 share their kABI, so 57's build is what a build against 56 would link to.
   */
  tree?: CorpusKernel;
  /** %kernel_module_package -b: KMP_NEEDS_MKINITRD=1 in the scriptlets. */
  needsInitrd?: boolean;
  /**
   * Another build of the same source: each module gets 16 NUL bytes appended (loaders and depmod
   * ignore them), so that rpm sees different files where a rebuild would put different bytes.
   */
  rebuilt?: boolean;
  /** Files put in the package as they are (system path → bytes), e.g. a module for another kernel. */
  extra?: Record<string, Uint8Array>;
}

export function kmpVersion(p: Pick<KmpPackage, 'version' | 'kernel' | 'tree'>): string {
  return `${p.version}_k${(p.tree ?? p.kernel).krel.replace(/-[^-]+$/, '').replace(/-/g, '_')}`;
}

export function kmpNvr(p: KmpPackage): string {
  return `${p.base}-kmp-${p.flavor}-${kmpVersion(p)}-${p.release ?? '1'}`;
}

/** Where a KMP's modules are (system path of their directory). */
export function kmpDir(p: KmpPackage): string {
  return p.layout === 'store'
    ? `/usr/lib/kmp/${p.base}-kmp-${p.flavor}/${kmpVersion(p)}-${p.release ?? '1'}/updates/${p.base}`
    : `/usr/lib/modules/${suseRelease(p.tree ?? p.kernel, p.flavor)}/updates/${p.base}`;
}

export function kmpRpm(p: KmpPackage): string {
  const dir = kmpDir(p);
  const payload = payloadDir();
  const files: string[] = [];
  for (const m of p.modules) {
    const src = p.kernel.builtModules?.[m];
    if (!src) throw new Error(`${m} was not built against ${p.kernel.krel}`);
    const bytes = readFileSync(src);
    write(payload, `${dir}/${m}.ko`, p.rebuilt ? Buffer.concat([bytes, Buffer.alloc(16)]) : bytes);
    files.push(`${dir}/${m}.ko`);
  }
  const extraDirs = new Set<string>();
  for (const [path, bytes] of Object.entries(p.extra ?? {})) {
    write(payload, path, bytes);
    files.push(path);
    extraDirs.add(dirname(path));
    extraDirs.add(dirname(dirname(path)));
  }
  const name = `${p.base}-kmp-${p.flavor}`;
  const env = `INITRD_IN_POSTTRANS=1${p.needsInitrd ? ' KMP_NEEDS_MKINITRD=1' : ''}`;
  // The directories it creates are its own (rpm removes them with their last owner).
  const owned = [
    ...(p.layout === 'store' ? ['%dir /usr/lib/kmp', `%dir /usr/lib/kmp/${name}`, `%dir ${dirname(dirname(dir))}`] : []),
    `%dir ${dirname(dir)}`,
    ...[...extraDirs].map((d) => `%dir ${d}`),
  ];
  return buildRpm({
    name,
    version: kmpVersion(p),
    release: p.release ?? '1',
    payload,
    provides: ['multiversion(kernel)'],
    requires: ['/bin/bash', 'suse-module-tools'],
    files: [...owned, `%dir ${dir}`, ...files],
    // As SUSE's kernel-scriptlets/kmp-script: link in %post (initrd left to %posttrans), keep the
    // module list in %preun (the package is gone from the database by %postun), and in %postun
    // feed it to --remove-kmp, unless this is the old side of a reinstall.
    scripts: `%post -p /bin/bash
nvr=%{name}-%{version}-%{release}
if [ -x ${WM2} ]; then
    ${env} ${WM2} --add-kmp "$nvr" || exit $?
fi

%preun -p /bin/bash
nvr=%{name}-%{version}-%{release}
rpm -ql "$nvr" | sed -n '/\\.ko\\(\\.xz\\|\\.gz\\|\\.zst\\)\\?$/p' > "/run/rpm-$nvr-modules"

%postun -p /bin/bash
nvr=%{name}-%{version}-%{release}
if [ "$1" = 1 ]; then
    others=0
    while read -r pkg; do [ "$pkg" = "$nvr" ] || others=$((others + 1)); done < <(rpm -qa --qf '%%{name}-%%{version}-%%{release}\\n' "%{name}*")
    if [ "$others" = 0 ]; then
        echo "no other version of %{name}: a reinstall, nothing to unlink" >&2
        rm -f "/run/rpm-$nvr-modules"
        exit 0
    fi
fi
mapfile -t modules < "/run/rpm-$nvr-modules"
rm -f "/run/rpm-$nvr-modules"
if [ \${#modules[*]} = 0 ]; then
    echo "WARNING: $nvr does not contain any kernel modules" >&2
    exit 0
fi
if [ -x ${WM2} ]; then
    printf '%s\\n' "\${modules[@]}" | ${WM2} --remove-kmp "$nvr" || exit $?
fi

%posttrans -p /bin/bash
[ ! -x /usr/lib/module-init-tools/regenerate-initrd-posttrans ] || /usr/lib/module-init-tools/regenerate-initrd-posttrans
`,
  });
}

let kabiSuse: string | undefined;

/** kabi's SUSE package, from integrations/suse/kabi.spec. */
export function kabiSuseRpm(): string {
  if (kabiSuse) return kabiSuse;
  for (const f of ['dist/bin/weak-modules2.js']) if (!existsSync(join(REPO, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
  const s = kabiSources();
  kabiSuse = rpmbuildSpec(readFileSync(join(REPO, 'integrations/suse/kabi.spec'), 'utf8'), s.dir, ['--define', `kabi_version ${s.version}`]);
  return kabiSuse;
}
