import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Compression } from '../../native-bindings/index.js';
import { tempDir } from './helpers.js';

/*
 * Real dracut and mkinitramfs runs over a Debian kernel tree from the corpus, without touching
 * this machine's /lib/modules or /boot: each run happens in a private mount namespace
 * (`unshare --mount`, we are root) where an overlay over /usr/lib gives /usr/lib/modules a
 * mount point and the test root's lib/modules and boot are bound over /lib/modules and /boot.
 * Images are kept small (a few modules, dracut's kernel-modules module only, initramfs-tools
 * with only its kmod hook), so a build takes seconds.
 */

export interface KernelInput {
  krel: string;
  moduleDir: string;
  systemMap: string;
  config: string;
  compression: 'none' | 'xz';
  /** Test module name → path of the .ko built against this kernel. */
  builtModules?: Partial<Record<string, string>>;
}

export interface GenRoot {
  root: string;
  release: string;
  other: string;
  /** '.ko' or '.ko.xz', as the kernel ships its modules. */
  ext: string;
  /** Scratch dir for the tools. */
  work: string;
}

const NS_SCRIPT = `#!/bin/sh
# ns.sh ROOT WORK CMD... : run CMD with ROOT's lib/modules and boot in place of the host's.
set -e
R=$1; W=$2; shift 2
mkdir -p "$W/ovl-upper" "$W/ovl-work"
mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$W/ovl-upper,workdir=$W/ovl-work" /usr/lib
mkdir -p /usr/lib/modules
mount --bind "$R/lib/modules" /usr/lib/modules
mount --bind "$R/boot" /boot
if [ -n "$KABI_TEST_HOOKS" ]; then mount --bind "$KABI_TEST_HOOKS" /usr/share/initramfs-tools/hooks; fi
exec "$@"
`;

/** Run a command in a private mount namespace over `g`'s tree. Throws with its output on failure. */
export function inNamespace(g: GenRoot, argv: string[], env: Record<string, string> = {}): string {
  const script = join(g.work, 'ns.sh');
  writeFileSync(script, NS_SCRIPT);
  chmodSync(script, 0o755);
  // A fresh overlay upper dir per run: nothing one run creates leaks into the next.
  rmSync(join(g.work, 'ovl-upper'), { recursive: true, force: true });
  rmSync(join(g.work, 'ovl-work'), { recursive: true, force: true });
  const r = spawnSync('unshare', ['--mount', script, g.root, g.work, ...argv], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C', TMPDIR: g.work, ...env },
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

function xz(file: string): void {
  execFileSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-f', file]);
}

/**
 * A root holding kernel `k` with loop and the test modules kabi_minimal, kabi_provider (extra/)
 * and a weak-updates link for kabi_consumer to `other`'s extra/, plus `other` itself; depmod
 * run for both inside the namespace (the link is absolute, as weak-modules makes it).
 */
export function prepareRoot(k: KernelInput, other: KernelInput): GenRoot {
  const root = tempDir('kabi-genroot-');
  const work = tempDir('kabi-genwork-');
  const ext = k.compression === 'xz' ? '.ko.xz' : '.ko';
  const g: GenRoot = { root, release: k.krel, other: other.krel, ext, work };
  const md = join(root, 'lib/modules', k.krel);
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
    mkdirSync(md, { recursive: true });
    copyFileSync(join(k.moduleDir, f), join(md, f));
  }
  const loop = `kernel/drivers/block/loop${ext}`;
  mkdirSync(dirname(join(md, loop)), { recursive: true });
  copyFileSync(join(k.moduleDir, loop), join(md, loop));
  mkdirSync(join(root, 'boot'), { recursive: true });
  copyFileSync(k.config, join(root, 'boot', `config-${k.krel}`));
  copyFileSync(k.systemMap, join(root, 'boot', `System.map-${k.krel}`));
  for (const name of ['kabi_minimal', 'kabi_provider']) installBuilt(g, k.krel, name, builtFor(k, name));
  const omd = join(root, 'lib/modules', other.krel);
  mkdirSync(join(omd, 'extra'), { recursive: true });
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) copyFileSync(join(other.moduleDir, f), join(omd, f));
  for (const name of ['kabi_consumer', 'kabi_provider']) installBuilt(g, other.krel, name, builtFor(other, name));
  mkdirSync(join(md, 'weak-updates'), { recursive: true });
  symlinkSync(`/lib/modules/${other.krel}/extra/kabi_consumer${ext}`, join(md, 'weak-updates', `kabi_consumer${ext}`));
  depmod(g);
  return g;
}

export function builtFor(k: KernelInput, name: string): string {
  const p = k.builtModules?.[name];
  if (!p) throw new Error(`${name} was not built for ${k.krel}`);
  return p;
}

/** Install a .ko into `release`'s extra/ (compressed like that kernel's tree); returns the host path. */
export function installBuilt(g: GenRoot, release: string, name: string, src: string): string {
  const dir = join(g.root, 'lib/modules', release, 'extra');
  mkdirSync(dir, { recursive: true });
  const plain = join(dir, `${name}.ko`);
  rmSync(plain + '.xz', { force: true });
  copyFileSync(src, plain);
  if (g.ext === '.ko.xz') {
    xz(plain);
    return plain + '.xz';
  }
  return plain;
}

export function depmod(g: GenRoot): void {
  inNamespace(g, ['sh', '-c', `depmod -a ${g.release} && depmod -a ${g.other}`]);
}

export const TEST_DRIVERS = ['loop', 'kabi_minimal', 'kabi_provider', 'kabi_consumer'];

export type DracutCompression = Compression | 'none';

/** dracut --no-hostonly -m kernel-modules with the test drivers, optionally with dummy early microcode. */
export function buildDracut(g: GenRoot, compression: DracutCompression, early: boolean, out: string): void {
  const fw = join(g.work, 'fw');
  mkdirSync(join(fw, 'intel-ucode'), { recursive: true });
  mkdirSync(join(fw, 'amd-ucode'), { recursive: true });
  writeFileSync(join(fw, 'intel-ucode', '06-55-04'), 'dummy intel microcode');
  writeFileSync(join(fw, 'amd-ucode', 'microcode_amd_fam17h.bin'), 'dummy amd microcode');
  const flag = compression === 'none' ? '--no-compress' : compression === 'lzo' ? '--lzo' : `--${compression}`;
  inNamespace(
    g,
    [
      'dracut', '--no-hostonly', '--quiet', '-m', 'kernel-modules', '--drivers', TEST_DRIVERS.join(' '),
      ...(early ? ['--early-microcode', '--fwdir', fw] : ['--no-early-microcode']),
      flag, '--tmpdir', g.work, '-f', out, g.release,
    ],
    // Debian's `lzma` is the LZMA SDK's lzmp, which lacks the -T0 dracut passes; xz speaks lzma too.
    { DRACUT_COMPRESS_LZMA: 'xz --format=lzma' },
  );
}

export type ToolsCompression = Exclude<Compression, 'lzo'> | 'lzop';

/** mkinitramfs -d CONFDIR with MODULES=list (the test drivers), only the kmod hook, a microcode hook if `early`. */
export function buildInitramfsTools(g: GenRoot, compression: ToolsCompression, early: boolean, out: string, level = 1): void {
  const conf = join(g.work, 'itconf');
  rmSync(conf, { recursive: true, force: true });
  for (const d of ['conf.d', 'hooks', 'scripts']) mkdirSync(join(conf, d), { recursive: true });
  writeFileSync(
    join(conf, 'initramfs.conf'),
    `MODULES=list\nBUSYBOX=n\nKEYMAP=n\nCOMPRESS=${compression}\nDEVICE=\nNFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\n`,
  );
  writeFileSync(join(conf, 'modules'), TEST_DRIVERS.join('\n') + '\n');
  // The root's own configuration says the same (kabi reads the generator's configuration there).
  mkdirSync(join(g.root, 'etc/initramfs-tools'), { recursive: true });
  for (const f of ['initramfs.conf', 'modules']) copyFileSync(join(conf, f), join(g.root, 'etc/initramfs-tools', f));
  if (early) {
    // What intel-microcode's hook does, with a dummy blob: an uncompressed cpio prepended.
    const hook = join(conf, 'hooks', 'zz-dummy-microcode');
    writeFileSync(
      hook,
      `#!/bin/sh
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
d=$(mktemp -d "\${TMPDIR:-/var/tmp}/ucode.XXXXXX")
mkdir -p "$d/kernel/x86/microcode"
printf 'dummy intel microcode' > "$d/kernel/x86/microcode/GenuineIntel.bin"
(cd "$d" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) > "$d.cpio"
prepend_earlyinitramfs "$d.cpio"
rm -rf "$d" "$d.cpio"
`,
    );
    chmodSync(hook, 0o755);
  }
  const hooks = join(g.work, 'hooks-kmod');
  mkdirSync(hooks, { recursive: true });
  copyFileSync('/usr/share/initramfs-tools/hooks/kmod', join(hooks, 'kmod'));
  chmodSync(join(hooks, 'kmod'), 0o755);
  inNamespace(g, ['mkinitramfs', '-d', conf, '-l', String(level), '-o', out, g.release], { KABI_TEST_HOOKS: hooks });
}
