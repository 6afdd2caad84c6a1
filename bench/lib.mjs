// Shared helpers for bench scripts (plain JS: benches run against dist/).
import { execFileSync, spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const quick = process.argv.includes('--quick');

export function corpus() {
  const path = execFileSync(process.execPath, ['corpus/debian/fetch.mjs', '--print-manifest-path'], { encoding: 'utf8' }).trim();
  return JSON.parse(readFileSync(path, 'utf8'));
}

export function moduleFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(n)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Median wall time in ms of `fn` over `runs` runs (after one warm-up unless warm=false). */
export async function median(fn, runs = 5, { warm = true } = {}) {
  if (warm) await fn();
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** hyperfine's median (ms) for a shell command. */
export function hyperfine(cmd, opts) {
  return hyperfineResult(cmd, opts).median * 1000;
}

/** hyperfine's whole result for a command (seconds: median, mean, user, system…). */
export function hyperfineResult(cmd, { runs = 20, warmup = 3 } = {}) {
  const out = join(mkdtempSync(join(tmpdir(), 'kabi-bench-')), 'h.json');
  const r = spawnSync('hyperfine', ['-N', '--runs', String(runs), '--warmup', String(warmup), '--export-json', out, cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr}`);
  return JSON.parse(readFileSync(out, 'utf8')).results[0];
}

/** A root with hard-linked copies of corpus kernels (optionally under other release names). */
export function buildRoot(kernels, prefix = 'kabi-bench-') {
  const root = mkdtempSync(join(tmpdir(), prefix));
  // A system has a /var/cache; kabi keeps its depmod cache there (none in a root without one).
  mkdirSync(join(root, 'var/cache'), { recursive: true });
  for (const { k, as } of kernels) {
    const krel = as ?? k.krel;
    mkdirSync(join(root, 'lib/modules'), { recursive: true });
    execFileSync('cp', ['-al', k.moduleDir, join(root, 'lib/modules', krel)]);
    mkdirSync(join(root, 'lib/modules', krel, 'weak-updates'), { recursive: true });
    mkdirSync(join(root, 'boot'), { recursive: true });
    linkSync(k.config, join(root, 'boot', `config-${krel}`));
    linkSync(k.systemMap, join(root, 'boot', `System.map-${krel}`));
    // RHEL layout, so the bash tool's replayed commands and weak-modules find it: gzip symvers in /boot.
    writeFileSync(join(root, 'boot', `symvers-${krel}.gz`), execFileSync('gzip', ['-n', '-c', k.symvers], { maxBuffer: 1 << 28 }));
  }
  return root;
}

export function table(rows) {
  const head = '| measurement | kabi | reference | ratio |\n|---|---|---|---|\n';
  return head + rows.map((r) => `| ${r.what} | ${r.kabi} | ${r.reference} | ${r.ratio} |`).join('\n') + '\n';
}

export const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
export const ratio = (ref, ours) => `${(ref / ours).toFixed(1)}× faster`;

/**
 * A script `ns.sh ROOT WORK CMD...` that runs CMD in a private mount namespace (call it through
 * `unshare --mount`) where ROOT's lib/modules and boot are this machine's /usr/lib/modules and
 * /boot (an overlay over /usr/lib gives the former a mount point), and, with `dracutConf`,
 * WORK/conf.d is /etc/dracut.conf.d. Nothing of this machine's /lib/modules or /boot is touched.
 */
export function namespaceScript(work, { dracutConf = false } = {}) {
  const ns = join(work, 'ns.sh');
  writeFileSync(
    ns,
    `#!/bin/sh
set -e
R=$1; W=$2; shift 2
rm -rf "$W/u" "$W/w"; mkdir -p "$W/u" "$W/w"
mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$W/u,workdir=$W/w" /usr/lib
mkdir -p /usr/lib/modules
mount --bind "$R/lib/modules" /usr/lib/modules
mount --bind "$R/boot" /boot
${dracutConf ? 'mkdir -p "$W/conf.d"\nmount --bind "$W/conf.d" /etc/dracut.conf.d\n' : ''}exec "$@"
`,
    { mode: 0o755 },
  );
  return ns;
}
