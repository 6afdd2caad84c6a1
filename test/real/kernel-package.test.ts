import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkModules } from '../../src/compat/check.js';
import type { Verdict } from '../../src/compat/types.js';
import { KernelPackages } from '../../src/package/kernel-packages.js';
import { REPO } from '../integrations/host.js';
import { buildDeb } from '../package/helpers.js';
import { loadCorpus, TEST_MODULES } from './corpus.js';
import { ensurePackagedKernel } from './kernel-package-corpus.js';

/*
 * Acceptance: for every module of the test corpus, the verdict from the package files equals
 * the verdict after installing the same packages into a root. "Installing" is what dpkg does
 * to the files (dpkg-deb -x of every package) and what the kernel's postinst then runs
 * (depmod); trixie and 7.x packages go into a merged-/usr root, as on those systems.
 */

const corpus = loadCorpus();
const built = corpus.kernels({ built: true, arch: 'amd64', suite: 'bookworm' });

interface Case {
  label: string;
  release: string;
  files: string[];
}

const debs = (f: string) => join(corpus.manifest.cacheDir, 'debs', f);
const cases: Case[] = [
  // Both 6.1 ABIs (their module_layout differs) and the newest 6.12; the twin and the older 6.12
  // add time, not cases.
  ...[...corpus.kernels({ arch: 'amd64', series: '6.1', built: true }), ...corpus.kernels({ arch: 'amd64', suite: 'bookworm', series: '6.12', role: 'newest' })].map((k) => ({ label: `bookworm ${k.krel} (${k.role})`, release: k.krel, files: [debs(k.packages.image!.file), debs(k.packages.headers.file)] })),
  ...(['trixie', 'sid'] as const).map((suite) => {
    const k = ensurePackagedKernel(suite);
    return { label: `${suite} ${k.release} (${k.names.map((n) => n.replace(/-\d.*/, '')).join(', ')})`, release: k.release, files: k.files };
  }),
];

/** A verdict without the directory of the module file (the same module, judged two ways). */
const shape = (vs: readonly Verdict[]) => vs.map((v) => ({ ...v, module: basename(v.module) }));

function systemRoot(mergedUsr: boolean): string {
  const root = mkdtempSync(join(tmpdir(), 'kabi-pkg-root-'));
  if (mergedUsr) {
    mkdirSync(join(root, 'usr/lib'), { recursive: true });
    symlinkSync('usr/lib', join(root, 'lib'));
  }
  return root;
}

describe('verdicts from kernel packages equal verdicts after installing them', () => {
  it('the cases cover bookworm 6.1 and 6.12, trixie 6.12 and a 7.x split kernel', () => {
    const labels = cases.map((c) => c.label);
    for (const want of [/^bookworm 6\.1\.0-/, /^bookworm 6\.12\./, /^trixie 6\.12\./, /^sid 7\.\d+/]) expect(labels.some((l) => want.test(l)), String(want)).toBe(true);
    const split = labels.find((l) => l.startsWith('sid '))!;
    for (const part of ['linux-binary', 'linux-modules', 'linux-base', 'linux-headers']) expect(split).toContain(part);
  });

  for (const c of cases) {
    it(c.label, async () => {
      const pkgs = await KernelPackages.open(c.files);
      try {
        expect(pkgs.kernels).toEqual([c.release]);
        const mergedUsr = pkgs.installsUnder('/usr/lib/modules');
        const installed = systemRoot(mergedUsr);
        const bare = systemRoot(mergedUsr);
        try {
          for (const f of c.files) execFileSync('dpkg-deb', ['-x', f, installed]);
          execFileSync('depmod', ['-b', installed, c.release]);
          const view = await pkgs.view(undefined, bare);
          let compared = 0;
          for (const b of built) {
            const files = TEST_MODULES.map((n) => corpus.builtModule(b, n));
            const want = await checkModules(files, { root: installed, kernels: [c.release] });
            const got = await checkModules(files, { root: bare, fs: view, kernels: [c.release] });
            expect(shape(got.verdicts), `modules built for ${b.krel} on ${c.release}`).toEqual(shape(want.verdicts));
            expect(got.notes).toEqual(want.notes);
            compared += got.verdicts.length;
          }
          expect(compared).toBe(built.length * TEST_MODULES.length);
          // The library's own entry point gives the same, packages opened by it.
          const files = TEST_MODULES.map((n) => corpus.builtModule(built[0]!, n));
          const direct = await checkModules(files, { root: bare, kernelPackages: c.files });
          expect(shape(direct.verdicts)).toEqual(shape((await checkModules(files, { root: installed, kernels: [c.release] })).verdicts));
        } finally {
          rmSync(installed, { recursive: true, force: true });
          rmSync(bare, { recursive: true, force: true });
        }
      } finally {
        await pkgs.close();
      }
    });
  }
});

describe('fleet runs: module packages × kernel packages, sharded', () => {
  it('--shard I/N runs concatenated are one unsharded --json-lines run, and --merge reads them back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kabi-fleet-'));
    try {
      // Two vendor module packages of modules built for the newest 6.1 kernel (installed together: kabi_consumer needs kabi_provider).
      const b = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'newest' })[0]!;
      const items = (names: readonly string[]) => names.map((n) => ({ path: `lib/modules/${b.krel}/updates/${n}.ko`, data: readFileSync(corpus.builtModule(b, n as (typeof TEST_MODULES)[number])) }));
      const kmods = [
        buildDeb(dir, items(['kabi_provider', 'kabi_consumer']), { name: 'kabi-provider-modules', arch: 'amd64' }),
        buildDeb(dir, items(['kabi_minimal', 'kabi_nongpl', 'kabi_ns_missing', 'kabi_ns_ok']), { name: 'kabi-misc-modules', arch: 'amd64' }),
      ];
      const kernels = cases.filter((c) => c.label.startsWith('bookworm'));
      const pk = kernels.flatMap((c) => c.files.flatMap((f) => ['--kernel-package', f]));
      const whole = kabiRun(['check', '--root', dir, '--json-lines', ...pk, ...kmods]);
      expect(whole.status, whole.stderr).toBe(1);
      const lines = whole.stdout.trim().split('\n');
      expect(lines).toHaveLength(kernels.length * TEST_MODULES.length);
      expect(new Set(lines.map((l) => (JSON.parse(l) as { kernel: string }).kernel))).toEqual(new Set(kernels.map((c) => c.release)));
      for (const n of [2, 3]) {
        let joined = '';
        for (let i = 1; i <= n; i++) {
          const s = kabiRun(['check', '--root', dir, '--shard', `${i}/${n}`, ...pk, ...kmods]);
          expect(s.status, s.stderr).not.toBe(2);
          joined += s.stdout;
        }
        expect(joined, `${n} shards`).toBe(whole.stdout);
      }
      const merged = kabiRun(['check', '--merge', '-'], whole.stdout);
      expect(merged.status).toBe(1);
      expect(merged.stdout).toMatch(/^module +6\.1\.0-47-amd64 +6\.1\.0-57-amd64 +6\.12\.\S+ *\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The built kabi bin as a process, with a timeout (a command that never ends is the worst failure). */
function kabiRun(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'dist/bin/kabi.js'), ...args], { encoding: 'utf8', input, timeout: 900_000, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
