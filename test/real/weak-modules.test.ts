import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkModules } from '../../src/compat/check.js';
import { loadCorpus, type CorpusKernel } from './corpus.js';
import { placeModules, rootWithKernels } from './roots.js';
import { capture } from './util.js';

const corpus = loadCorpus();
const newest = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'newest' })[0]!;
const twin = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'twin' })[0]!;
const oldest = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'oldest' })[0]!;
const k612 = corpus.kernels({ arch: 'amd64', suite: 'bookworm', series: '6.12', role: 'newest' })[0]!;
const kernels = [oldest, twin, newest, k612];
const MODULES = ['kabi_provider', 'kabi_consumer', 'kabi_minimal', 'kabi_ns_ok'] as const;

function weakModules(args: string[], stdin: string) {
  return spawnSync(process.execPath, ['dist/bin/weak-modules.js', ...args], { input: stdin, encoding: 'utf8', maxBuffer: 1 << 28 });
}

/** Content picture of a kernel's depmod outputs and weak-updates (no mtimes: depmod rewrites files). */
function picture(root: string, k: CorpusKernel): Record<string, string> {
  const out: Record<string, string> = {};
  const dir = join(root, 'lib/modules', k.krel);
  // modules.kabi-cache is kabi's own cache of module summaries (derived data, next to the
  // outputs so that distro scripts removing modules.* with a kernel remove it too).
  for (const n of readdirSync(dir).filter((n) => n.startsWith('modules.') && n !== 'modules.kabi-cache').sort()) {
    out[n] = createHash('sha256').update(readFileSync(join(dir, n))).digest('hex');
  }
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[p.slice(dir.length + 1)] = `-> ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[p.slice(dir.length + 1) + '/'] = 'dir';
        walk(p);
      }
    }
  };
  walk(join(dir, 'weak-updates'));
  return out;
}

describe('weak-modules on Debian kernels', () => {
  it('the corpus has a kernel the modules can be linked into, and kernels they cannot', async () => {
    expect(twin.abi).not.toBe(newest.abi);
  });

  it('links exactly where the verdicts say, leaves depmod files as depmod -ae makes them, and --remove-modules restores the tree', async () => {
    const root = rootWithKernels(kernels, 'kabi-real-wm-');
    // Kernel packages ship an empty weak-updates/; depmod has run once (the installed state).
    for (const k of kernels) {
      mkdirSync(join(root, 'lib/modules', k.krel, 'weak-updates'), { recursive: true });
      const r = await capture('depmod', ['-b', root, '-a', k.krel]);
      expect(r.status, r.stderr).toBe(0);
    }
    const before = Object.fromEntries(kernels.map((k) => [k.krel, picture(root, k)]));

    // "rpm -i": the package puts its modules under the newest kernel's extra/.
    const files = placeModules(root, newest.krel, 'extra/kabi', MODULES.map((m) => corpus.builtModule(newest, m)));
    const add = weakModules(['--basedir', root, '--add-modules', '--verbose', '--no-initramfs'], files.join('\n') + '\n');
    expect(add.status, add.stderr).toBe(0);

    // The verdicts weak-modules must follow: depmod semantics with its cascade.
    const expected = new Map<string, string[]>();
    for (const k of kernels) {
      if (k === newest) continue;
      const v = await checkModules(files, { root, kernels: [k.krel], semantics: 'depmod', cascade: true });
      expected.set(k.krel, v.verdicts.every((x) => x.compatible) ? files.map((f) => f.split('/').pop()!).sort() : []);
    }
    expect(expected.get(twin.krel)!.length).toBe(MODULES.length);
    expect(expected.get(oldest.krel)).toEqual([]);
    expect(expected.get(k612.krel)).toEqual([]);
    for (const k of kernels) {
      const wu = join(root, 'lib/modules', k.krel, 'weak-updates', 'kabi');
      const linked = existsSync(wu) ? readdirSync(wu).sort() : [];
      expect(linked, k.krel).toEqual(k === newest ? [] : expected.get(k.krel));
      // Targets as the installed system sees them (the root is where it is mounted now).
      for (const n of linked) expect(readlinkSync(join(wu, n))).toBe(files.find((f) => f.endsWith('/' + n))!.slice(root.length));
    }
    for (const m of MODULES) {
      expect(add.stdout).toContain(`Module ${m}.ko from kernel ${newest.krel} is compatible with kernel ${twin.krel}\n`);
      expect(add.stdout).toMatch(new RegExp(`Module ${m}\\.ko from kernel ${newest.krel.replace(/[.+]/g, '\\$&')} is not compatible with kernel ${oldest.krel.replace(/[.+]/g, '\\$&')} in symbols: .*module_layout`));
    }

    // depmod ran once per changed kernel (the twin, and the modules' own kernel), and what it
    // left is exactly what depmod -ae alone makes of the final tree.
    const depmodRuns = add.stdout.split('\n').filter((l) => /depmod -b \S+ -a /.test(l));
    expect(depmodRuns.map((l) => l.split(' ').pop()).sort()).toEqual([newest.krel, twin.krel].sort());
    for (const k of [twin, newest]) {
      const now = picture(root, k);
      const r = await capture('depmod', ['-b', root, '-ae', '-E', k.symvers, k.krel]);
      expect(r.status).toBe(0);
      expect(r.stderr.split('\n').filter((l) => l.includes('weak-updates'))).toEqual([]);
      expect(picture(root, k)).toEqual(now);
      expect(readFileSync(join(root, 'lib/modules', k.krel, 'modules.dep'), 'utf8')).toMatch(k === twin ? /^weak-updates\/kabi\/kabi_consumer\.ko: weak-updates\/kabi\/kabi_provider\.ko/m : /^extra\/kabi\/kabi_consumer\.ko: extra\/kabi\/kabi_provider\.ko/m);
    }
    for (const k of [oldest, k612]) expect(picture(root, k)).toEqual(before[k.krel]);

    // "rpm -e": the files go, then %postun hands the same list to --remove-modules.
    rmSync(join(root, 'lib/modules', newest.krel, 'extra'), { recursive: true });
    const rm = weakModules(['--basedir', root, '--remove-modules', '--verbose', '--no-initramfs'], files.join('\n') + '\n');
    expect(rm.status, rm.stderr).toBe(0);
    for (const k of kernels) expect(picture(root, k), k.krel).toEqual(before[k.krel]);
  });

  it('--add-kernel links the newest kernel’s extra/ modules into a new compatible kernel', async () => {
    const root = rootWithKernels([newest, twin], 'kabi-real-wm-');
    const files = placeModules(root, newest.krel, 'extra', MODULES.map((m) => corpus.builtModule(newest, m)));
    const r = weakModules(['--basedir', root, '--add-kernel', twin.krel, '--no-initramfs'], '');
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(join(root, 'lib/modules', twin.krel, 'weak-updates')).sort()).toEqual(files.map((f) => f.split('/').pop()!).sort());
  });
});
