import { describe, expect, it } from 'vitest';
import { checkModules } from '../../src/compat/check.js';
import type { Verdict } from '../../src/compat/types.js';
import { loadCorpus, TEST_MODULES, type CorpusKernel } from './corpus.js';
import { placeModules, rootWithKernels } from './roots.js';
import { capture, moduleFiles } from './util.js';

const corpus = loadCorpus();
const built = corpus.kernels({ built: true, arch: 'amd64' });

/** What depmod -n -e -E prints per module: "needs unknown symbol X" / "disagrees about version of symbol X". */
async function depmodWarnings(root: string, k: CorpusKernel): Promise<Map<string, string[]>> {
  const r = await capture('depmod', ['-b', root, '-n', '-e', '-E', k.symvers, k.krel]);
  expect(r.status, r.stderr).toBe(0);
  const out = new Map<string, string[]>();
  for (const line of r.stderr.split('\n')) {
    const m = /^depmod: WARNING: (\S+) (needs unknown symbol|disagrees about version of symbol) (\S+)$/.exec(line);
    if (!m) continue;
    const file = m[1]!.split('/').pop()!;
    out.set(file, [...(out.get(file) ?? []), `${m[2] === 'needs unknown symbol' ? 'unknown' : 'disagrees'} ${m[3]}`]);
  }
  return out;
}

function ourWarnings(v: Verdict): string[] {
  return v.reasons
    .filter((r) => r.severity === 'error')
    .map((r) => `${/needs unknown symbol/.test(r.message) ? 'unknown' : 'disagrees'} ${r.symbol}`);
}

describe('verdicts on Debian kernels', () => {
  it('the corpus has two differing 6.1 ABIs and two 6.12 ABIs with the test modules built', () => {
    expect(built.filter((k) => k.series === '6.1').length).toBe(2);
    expect(built.filter((k) => k.series === '6.12').length).toBe(2);
  });

  const matrix: string[] = [];
  const loaderMatrix: string[] = [];

  for (const from of built) {
    for (const on of built) {
      it(`--semantics depmod equals depmod -n -e -E: modules built for ${from.krel} placed in ${on.krel}`, async () => {
        const root = rootWithKernels([on]);
        const files = placeModules(root, on.krel, 'extra', TEST_MODULES.map((n) => corpus.builtModule(from, n)));
        const kmod = await depmodWarnings(root, on);
        const ours = await checkModules(files, { root, kernels: [on.krel], semantics: 'depmod' });
        for (const v of ours.verdicts) {
          const file = v.module.split('/').pop()!;
          const want = (kmod.get(file) ?? []).sort();
          expect(ourWarnings(v).sort(), `${file} built for ${from.krel} on ${on.krel}`).toEqual(want);
          expect(v.compatible).toBe(want.length === 0);
          matrix.push(`${v.name} | ${from.krel} | ${on.krel} | ${v.compatible ? 'compatible' : 'incompatible: ' + want.slice(0, 2).join(', ')}`);
        }
        const loader = await checkModules(files, { root, kernels: [on.krel] });
        for (const v of loader.verdicts) {
          const first = v.reasons.find((r) => r.severity === 'error');
          loaderMatrix.push(`${v.name} | ${from.krel} | ${on.krel} | ${v.compatible ? 'loads' : 'refused: ' + first!.kind + ' ' + (first!.symbol ?? '')}`);
        }
      });
    }
  }

  it('prints the verdict matrices (for the closing note)', () => {
    console.log(['depmod semantics: module | built for | kernel | verdict', ...matrix].join('\n'));
    console.log(['loader semantics: module | built for | kernel | verdict', ...loaderMatrix].join('\n'));
    expect(matrix.length).toBe(built.length * built.length * TEST_MODULES.length);
  });

  it('loader semantics refuses what the kernel refuses even where depmod sees no problem', async () => {
    const k = built.find((x) => x.series === '6.1')!;
    const root = rootWithKernels([k]);
    const files = placeModules(root, k.krel, 'extra', TEST_MODULES.map((n) => corpus.builtModule(k, n)));
    const byName = Object.fromEntries((await checkModules(files, { root, kernels: [k.krel] })).verdicts.map((v) => [v.name, v]));
    const dep = Object.fromEntries((await checkModules(files, { root, kernels: [k.krel], semantics: 'depmod' })).verdicts.map((v) => [v.name, v]));
    // Same kernel: depmod is happy with all six; the loader refuses the GPL-only use and the missing namespace import.
    expect(Object.values(dep).every((v) => v.compatible)).toBe(true);
    expect(byName.kabi_nongpl!.reasons.filter((r) => r.severity === 'error').map((r) => [r.kind, r.symbol])).toEqual([['gpl-only', 'ktime_get_mono_fast_ns']]);
    expect(byName.kabi_ns_missing!.reasons.filter((r) => r.severity === 'error').map((r) => [r.kind, r.symbol])).toEqual([['namespace', 'usb_stor_sense_invalidCDB']]);
    for (const n of ['kabi_minimal', 'kabi_provider', 'kabi_consumer', 'kabi_ns_ok']) expect(byName[n]!.compatible, n).toBe(true);
  });

  it('a module built for 6.1 is refused by a 6.12 kernel for its struct module size, before any CRC', async () => {
    const k61 = built.find((x) => x.series === '6.1')!;
    const k612 = built.find((x) => x.series === '6.12')!;
    const root = rootWithKernels([k612]);
    const [f] = placeModules(root, k612.krel, 'extra', [corpus.builtModule(k61, 'kabi_minimal')]);
    const v = (await checkModules([f!], { root, kernels: [k612.krel] })).verdicts[0]!;
    expect(v.reasons.find((r) => r.severity === 'error')?.kind).toBe('module-struct-size');
  });
});

describe.each(corpus.kernels().filter((k) => k.role !== 'twin').map((k) => [k.krel, k] as const))('every in-tree module of %s loads on its own kernel', (_krel, k) => {
  it('no false alarm', async () => {
    const root = rootWithKernels([k]);
    const files = moduleFiles(k.moduleDir).map((f) => f.replace(k.moduleDir, `${root}/lib/modules/${k.krel}`));
    const r = await checkModules(files, { root, kernels: [k.krel] });
    const refused = r.verdicts.filter((v) => !v.compatible).map((v) => `${v.name}: ${v.reasons.find((x) => x.severity === 'error')!.message}`);
    console.log(`${k.krel}: ${r.verdicts.length} in-tree modules checked against their own kernel, ${refused.length} refused`);
    expect(refused).toEqual([]);
    expect(r.verdicts.length).toBe(k.moduleCount);
  });
});
