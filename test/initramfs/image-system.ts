import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import type { Compression } from '../../native-bindings/index.js';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { compressCli, concatBytes, earlyCpio, gnuCpio, tempDir, writeTree } from './helpers.js';

/*
 * A fixture system with a kernel K whose image holds alpha, beta (which imports alpha) and a
 * weak-updates link to delta, built for kernel K2. `generate()` plays the generator: it copies
 * the modules the image should hold from the installed tree into a staging dir the way
 * dracut/mkinitramfs do (links made relative, their targets copied, .ko.xz unpacked for
 * initramfs-tools), runs the real depmod there and packs it with GNU cpio and the compressor.
 */

export const K = '6.1.0-90-amd64';
export const K2 = '6.1.0-80-amd64';
export const K3 = '6.1.0-70-amd64';
const FLAGS = ' SMP preempt mod_unload modversions ';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };

export function alpha(release = K, version = '1'): Uint8Array {
  return externalModule(release, { name: 'alpha', intree: true, exports: [{ symbol: 'alpha_fn', crc: 0x1111 }], modinfo: [['version', version]], versions: [LAYOUT] });
}

export function beta(release = K, version = '1', alsoGamma = false, modinfo: [string, string][] = []): Uint8Array {
  return externalModule(release, {
    name: 'beta',
    intree: true,
    depends: alsoGamma ? ['alpha', 'gamma'] : ['alpha'],
    undefinedSymbols: alsoGamma ? ['alpha_fn', 'gamma_fn'] : ['alpha_fn'],
    versions: alsoGamma ? [LAYOUT, { symbol: 'alpha_fn', crc: 0x1111 }, { symbol: 'gamma_fn', crc: 0x3333 }] : [LAYOUT, { symbol: 'alpha_fn', crc: 0x1111 }],
    modinfo: [['version', version], ...modinfo],
  });
}

export function gamma(release = K): Uint8Array {
  return externalModule(release, { name: 'gamma', intree: true, exports: [{ symbol: 'gamma_fn', crc: 0x3333 }], versions: [LAYOUT] });
}

export function delta(release: string, version = '1'): Uint8Array {
  return externalModule(release, { name: 'delta', modinfo: [['version', version]], versions: [LAYOUT] }, FLAGS);
}

export interface ImageSystemOptions {
  compression: Compression | 'none';
  early?: boolean;
  style?: 'dracut' | 'initramfs-tools';
  /** Installed modules as .ko.xz (Debian ≥ 6.12). */
  xzModules?: boolean;
  /** xz images in blocks of this many bytes (what xz -T0 does in 3 MiB blocks for a real image). */
  xzBlockSize?: number;
}

export interface ImageSystem {
  fx: FixtureRoot;
  root: string;
  /** System and host paths of K's image. */
  imageSys: string;
  imageHost: string;
  ext: string;
  /** Host path of a file in K's module dir. */
  mod(rel: string): string;
  /** Install bytes at a system path (compressed like the tree when it ends in .ko.xz). */
  install(sys: string, bytes: Uint8Array): void;
  link(sys: string, target: string): void;
  /** Build K's image from the installed tree, as the generator would; returns its bytes. */
  generate(opts?: { names?: string[]; out?: string; buildParameters?: string }): Uint8Array;
}

export function makeImageSystem(o: ImageSystemOptions): ImageSystem {
  const style = o.style ?? 'dracut';
  const ext = o.xzModules ? '.ko.xz' : '.ko';
  const fx = makeRoot('kabi-initramfs-root-');
  addKernel(fx, { release: K, compression: o.xzModules ? 'xz' : '', modules: [{ path: 'kernel/lib/kabi_base', spec: {} }], initramfs: style === 'dracut' ? 'dracut' : 'debian' });
  addKernel(fx, { release: K2, compression: o.xzModules ? 'xz' : '' });
  const imageSys = style === 'dracut' ? `/boot/initramfs-${K}.img` : `/boot/initrd.img-${K}`;
  const xz = (b: Uint8Array) => (o.xzModules ? execFileSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c'], { input: b }) : b);
  const install = (sys: string, bytes: Uint8Array) => {
    const p = fx.path(sys);
    mkdirSync(dirname(p), { recursive: true });
    rmSync(p, { force: true });
    writeFileSync(p, sys.endsWith('.xz') ? xz(bytes) : bytes);
  };
  const link = (sys: string, target: string) => {
    const p = fx.path(sys);
    mkdirSync(dirname(p), { recursive: true });
    rmSync(p, { force: true });
    symlinkSync(target, p);
  };
  // The generator's configuration: the modules the fixture images hold are the ones it is told
  // to add (dracut's add_drivers; initramfs-tools' modules file with MODULES=list).
  if (style === 'dracut') {
    fx.write('/usr/lib/dracut/dracut-version.sh', 'DRACUT_VERSION=059\n');
    fx.write('/etc/dracut.conf.d/10-test.conf', 'add_drivers+=" alpha beta delta "\n');
  } else {
    fx.write('/etc/initramfs-tools/initramfs.conf', 'MODULES=list\nCOMPRESS=zstd\n');
    fx.write('/etc/initramfs-tools/modules', 'alpha\nbeta\ndelta\n');
  }
  install(`/lib/modules/${K}/kernel/drivers/alpha${ext}`, alpha());
  install(`/lib/modules/${K}/kernel/drivers/beta${ext}`, beta());
  install(`/lib/modules/${K}/kernel/fs/gamma${ext}`, gamma());
  install(`/lib/modules/${K2}/extra/delta${ext}`, delta(K2));
  link(`/lib/modules/${K}/weak-updates/delta${ext}`, `/lib/modules/${K2}/extra/delta${ext}`);
  const early = o.early ? earlyCpio() : new Uint8Array(0);

  const sys: ImageSystem = {
    fx,
    root: fx.root,
    imageSys,
    imageHost: fx.path(imageSys),
    ext,
    mod: (rel) => fx.path(`/lib/modules/${K}/${rel}`),
    install,
    link,
    generate(g = {}) {
      const names = g.names ?? ['alpha', 'beta', 'delta'];
      const stage = tempDir('kabi-stage-');
      writeTree(stage, [
        { path: 'init', data: '#!/bin/sh\nexec /bin/sh\n', mode: 0o755 },
        { path: 'usr/bin/sh', data: 'not a shell', mode: 0o755 },
        { path: 'lib', link: 'usr/lib' },
        { path: 'bin', link: 'usr/bin' },
        // What each generator leaves in its images (and kabi reads to tell them apart).
        style === 'dracut' ? { path: 'usr/lib/dracut/modules.txt', data: 'kernel-modules\n' } : { path: 'conf/initramfs.conf', data: 'MODULES=list\n' },
        ...(g.buildParameters !== undefined ? [{ path: 'usr/lib/dracut/build-parameter.txt', data: `${g.buildParameters}\n` }] : []),
      ]);
      const srcDir = fx.path(`/lib/modules/${K}`);
      const dstDir = join(stage, 'usr/lib/modules', K);
      mkdirSync(dstDir, { recursive: true });
      for (const f of ['modules.order', 'modules.builtin']) cpSync(join(srcDir, f), join(dstDir, f));
      writeFileSync(join(dstDir, 'modules.builtin.modinfo'), '');
      const found = execFileSync('find', ['.', '-name', '*.ko*'], { cwd: srcDir, encoding: 'utf8' }).split('\n').filter(Boolean);
      for (const rel of found.map((r) => r.slice(2))) {
        const name = posix.basename(rel).replace(/\.ko.*$/, '');
        if (!names.includes(name)) continue;
        const src = join(srcDir, rel);
        const dst = join(dstDir, rel);
        mkdirSync(dirname(dst), { recursive: true });
        if (lstatSync(src).isSymbolicLink()) {
          // Stored as the generators store it: relative link, target copied to its own path.
          const target = readlinkSync(src).replace(/^\/lib\//, 'usr/lib/');
          const tdst = join(stage, target);
          mkdirSync(dirname(tdst), { recursive: true });
          cpSync(fx.path(readlinkSync(src)), tdst);
          symlinkSync(posix.relative(posix.dirname(posix.join('/', 'usr/lib/modules', K, rel)), posix.join('/', target)), dst);
        } else {
          cpSync(src, dst);
          if (style === 'initramfs-tools' && dst.endsWith('.xz')) execFileSync('xz', ['-d', dst]);
        }
      }
      execFileSync('depmod', ['-a', '-b', stage, K]);
      let bytes = gnuCpio(stage);
      if (o.compression === 'xz' && o.xzBlockSize !== undefined) {
        bytes = execFileSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', `--block-size=${o.xzBlockSize}`, '-T1', '-c'], { input: bytes });
      } else if (o.compression !== 'none') bytes = compressCli(bytes, o.compression);
      const out = concatBytes(early, bytes);
      const file = g.out ?? fx.path(imageSys);
      writeFileSync(file, out);
      return out;
    },
  };
  sys.generate();
  if (!existsSync(sys.imageHost)) throw new Error('fixture image was not written');
  return sys;
}
