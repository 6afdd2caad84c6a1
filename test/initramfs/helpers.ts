import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Compression } from '../../native-bindings/index.js';
import { KabiError } from '../../src/errors.js';

/*
 * Images for the initramfs tests, built the way the generators build them: a staging tree
 * packed by GNU cpio (`find . | sort | cpio -o -H newc`), piped through the compressor CLI with
 * the generator's flags, an early cpio in front. The tools, not kabi's writer, make the bytes.
 */

const made: string[] = [];

export function tempDir(prefix = 'kabi-initramfs-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

export function cleanupTemps(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export type TreeItem =
  | { path: string; data: string | Uint8Array; mode?: number; mtime?: number }
  | { path: string; link: string }
  | { path: string; dir: true };

export function writeTree(dir: string, items: readonly TreeItem[]): void {
  for (const it of items) {
    const p = join(dir, it.path);
    mkdirSync(dirname(p), { recursive: true });
    if ('dir' in it) mkdirSync(p, { recursive: true });
    else if ('link' in it) symlinkSync(it.link, p);
    else {
      writeFileSync(p, it.data);
      if (it.mode !== undefined) chmodSync(p, it.mode);
    }
  }
}

/** GNU cpio over a directory, sorted like dracut and mkinitramfs, owned by root. */
export function gnuCpio(dir: string, format: 'newc' | 'crc' = 'newc'): Uint8Array {
  const list = execFileSync('sh', ['-c', 'find . | LC_ALL=C sort'], { cwd: dir, encoding: 'utf8' });
  return execFileSync('cpio', ['--quiet', '-o', '-H', format, '-R', '0:0'], { cwd: dir, input: list, maxBuffer: 1 << 30 });
}

/** The compressor command lines dracut uses (dracut.sh, 059). */
export const DRACUT_COMPRESSORS: Record<Compression, string[]> = {
  gzip: ['gzip', '-n', '-9', '-c'],
  xz: ['xz', '--check=crc32', '--lzma2=dict=1MiB', '-T0', '-c'],
  zstd: ['zstd', '-15', '-q', '-T0', '-c'],
  lz4: ['lz4', '-l', '-9', '-c'],
  bzip2: ['bzip2', '-9', '-c'],
  // dracut runs "$DRACUT_COMPRESS_LZMA -9 -T0"; Debian's `lzma` package makes `lzma` the LZMA
  // SDK's lzmp, which has no -T, so the xz-utils spelling of the same command is used.
  lzma: ['xz', '--format=lzma', '-9', '-T0', '-c'],
  lzo: ['lzop', '-9', '-c'],
};

export function compressCli(bytes: Uint8Array, format: Compression): Uint8Array {
  const [cmd, ...args] = DRACUT_COMPRESSORS[format];
  return execFileSync(cmd!, args, { input: bytes, maxBuffer: 1 << 30 });
}

/** An early cpio as dracut makes it: early_cpio marker and microcode blobs, uncompressed. */
export function earlyCpio(): Uint8Array {
  const d = tempDir('kabi-early-');
  writeTree(d, [
    { path: 'early_cpio', data: '1\n' },
    { path: 'kernel/x86/microcode/AuthenticAMD.bin', data: 'dummy amd microcode' },
    { path: 'kernel/x86/microcode/GenuineIntel.bin', data: 'dummy intel microcode' },
  ]);
  return gnuCpio(d);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length))));
}

/** Names lsinitramfs prints (initramfs-tools' own reader: cpio -t over each segment). */
export function lsinitramfs(file: string): string[] {
  const out = execFileSync('lsinitramfs', [file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return out.split('\n').filter((l) => l !== '');
}

export interface LsinitrdEntry {
  permissions: string;
  size: number;
  name: string;
  target: string | undefined;
}

/**
 * Members lsinitrd lists (dracut's reader: skipcpio, then `cpio -tv` over each part), parsed
 * from its `ls -l`-style lines; its banners and the "Early CPIO image" header are skipped.
 */
export function lsinitrd(file: string): LsinitrdEntry[] {
  const out = execFileSync('lsinitrd', [file], { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, LC_ALL: 'C' } });
  const re = /^([-dlcbps][-rwxsStT]{9})\s+\d+\s+\S+\s+\S+\s+(\d+|\d+,\s*\d+)\s+[A-Z][a-z]{2}\s+\d+\s+(?:\d{4}|\d\d:\d\d)\s(.*)$/;
  const entries: LsinitrdEntry[] = [];
  for (const line of out.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const [, permissions, size, rest] = m as unknown as [string, string, string, string];
    const isLink = permissions.startsWith('l');
    const arrow = rest.indexOf(' -> ');
    entries.push({
      permissions,
      size: size.includes(',') ? 0 : Number(size),
      name: isLink && arrow >= 0 ? rest.slice(0, arrow) : rest,
      target: isLink && arrow >= 0 ? rest.slice(arrow + 4) : undefined,
    });
  }
  return entries;
}

/** Names GNU cpio lists for an archive. */
export function cpioNames(bytes: Uint8Array): string[] {
  const r = spawnSync('cpio', ['-t', '--quiet'], { input: bytes, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`cpio -t failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

/** Extract an archive with GNU cpio into a fresh dir and return the dir. */
export function cpioExtract(bytes: Uint8Array): string {
  const d = tempDir('kabi-extract-');
  execFileSync('cpio', ['-i', '-d', '--quiet', '--no-absolute-filenames'], { cwd: d, input: bytes });
  return d;
}

export function readBytes(p: string): Uint8Array {
  return new Uint8Array(readFileSync(p));
}

/** The KabiError `p` rejects with; anything else it rejects with is rethrown, and fulfilling is a failure. */
export async function errorOf(p: Promise<unknown>): Promise<KabiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof KabiError) return e;
    throw e;
  }
  throw new Error('expected a KabiError');
}
