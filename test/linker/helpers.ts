import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { memoryIo } from '../../src/cli/io.js';
import { weakModulesCommand } from '../../src/cli/commands/weak-modules.js';
import type { KabiFs } from '../../src/fs.js';
import { nodeFs } from '../../src/fs.js';

export async function wm(argv: string[], stdin = '', fs: KabiFs = nodeFs, cwd = '/') {
  const io = memoryIo({ stdin, fs, cwd });
  const status = await weakModulesCommand.run(argv, io);
  return { status, out: io.out(), err: io.err() };
}

/** Every entry under root: type, mode, size+hash or link target, and mtime — a byte-for-byte picture. */
export function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const n of readdirSync(dir).sort()) {
      const p = join(dir, n);
      const st = lstatSync(p);
      const rel = p.slice(root.length);
      if (st.isSymbolicLink()) out.set(rel, `link ${readlinkSync(p)} ${st.mtimeMs}`);
      else if (st.isDirectory()) {
        out.set(rel, `dir ${st.mode.toString(8)} ${st.mtimeMs}`);
        walk(p);
      } else out.set(rel, `file ${st.mode.toString(8)} ${st.size} ${createHash('sha256').update(readFileSync(p)).digest('hex')} ${st.mtimeMs}`);
    }
  };
  walk(root);
  return out;
}

/** Links under a kernel's weak-updates: relative path → target. */
export function weakLinks(root: string, release: string): Record<string, string> {
  const out: Record<string, string> = {};
  const base = join(root, 'lib/modules', release, 'weak-updates');
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[p.slice(base.length + 1)] = readlinkSync(p);
      else if (st.isDirectory()) walk(p);
    }
  };
  walk(base);
  return out;
}

/** A script that appends its arguments to a log, standing in for dracut / check-initramfs-prog. */
export function recorder(dir: string, name: string): { path: string; calls: () => string[] } {
  const log = join(dir, `${name}.log`);
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\necho "$@" >> '${log}'\n`);
  chmodSync(path, 0o755);
  return {
    path,
    calls: () => {
      try {
        return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
  };
}

/**
 * kmod's `depmod -b ROOT K` as the installed system would run it, in a copy of ROOT (returned):
 * kmod follows a link's absolute target from the host's /, not from ROOT, so in the copy each
 * weak-updates link (a system path, as kabi writes them) is re-pointed to where that path
 * leads inside the copy. depmod's outputs name links by their own path, never their target,
 * so they are what depmod run inside the installed system writes.
 */
export function kmodDepmodInRoot(root: string, release: string): string {
  const copy = mkdtempSync(join(tmpdir(), 'kabi-kmod-root-'));
  cpSync(root, copy, { recursive: true, verbatimSymlinks: true });
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) {
        const t = readlinkSync(p);
        if (isAbsolute(t)) {
          unlinkSync(p);
          symlinkSync(join(copy, t), p);
        }
      }
    }
  };
  walk(join(copy, 'lib/modules', release, 'weak-updates'));
  execFileSync('depmod', ['-b', copy, release], { stdio: ['ignore', 'ignore', 'pipe'] });
  return copy;
}
