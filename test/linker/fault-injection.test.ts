import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC } from '../../corpus/fixtures/system-root.js';
import { recoverAll } from '../../src/linker/apply.js';
import { nodeFs } from '../../src/fs.js';
import { faultyFs } from './faulty-fs.js';
import { weakLinks, wm } from './helpers.js';

const A = '5.14.0-100.el9.x86_64';
const KERNELS = ['5.14.0-200.el9.x86_64', '5.14.0-300.el9.x86_64', '5.14.0-400.el9.x86_64'];
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };

/** A template root: A holds two new modules; the other kernels already link an old one. */
function template(): { root: string; input: string } {
  const fx = makeRoot('kabi-fault-');
  for (const r of [A, ...KERNELS]) {
    addKernel(fx, { release: r, symvers: 'boot-gz', vmlinux: [{ symbol: 'printk', crc: 0x11 }], config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11"' }, dirs: ['extra'] });
  }
  const mk = (name: string) => fx.write(`/lib/modules/${A}/extra/${name}/${name}.ko`, externalModule(A, { name, versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }], undefinedSymbols: ['printk'] }));
  const old = mk('oldmod');
  const a = mk('alpha');
  const b = mk('beta');
  execFileSync('mkdir', ['-p', ...KERNELS.map((k) => join(fx.root, 'lib/modules', k, 'weak-updates/oldmod'))]);
  for (const k of KERNELS) execFileSync('ln', ['-s', old, join(fx.root, 'lib/modules', k, 'weak-updates/oldmod/oldmod.ko')]);
  return { root: fx.root, input: `${a}\n${b}\n` };
}

function copyOf(root: string): string {
  const dst = mkdtempSync(join(tmpdir(), 'kabi-fault-run-'));
  cpSync(root, dst, { recursive: true, verbatimSymlinks: true });
  return dst;
}

/** Link maps in the copy, with the template's root prefix rewritten so states compare across copies. */
/** modules.dep and modules.dep.bin of every kernel (absent ones as ''), to compare old/new. */
function depmodFiles(root: string): string[] {
  return [A, ...KERNELS].map((k) =>
    ['modules.dep', 'modules.dep.bin'].map((f) => (existsSync(join(root, 'lib/modules', k, f)) ? readFileSync(join(root, 'lib/modules', k, f)).toString('base64') : '')).join('|'),
  );
}

function states(root: string, templateRoot: string): Record<string, string>[] {
  const norm = (t: string) => t.replace(templateRoot, '<root>').replace(root, '<root>');
  return KERNELS.map((k) => Object.fromEntries(Object.entries(weakLinks(root, k)).map(([l, t]) => [l, norm(t)])));
}

describe('fault injection: weak-updates is always the old or the new state', () => {
  const t = template();
  const oldStates = states(t.root, t.root);

  const clean = copyOf(t.root);
  let total = 0;
  let newStates: Record<string, string>[] = [];
  const oldDepmod = depmodFiles(t.root);
  let newDepmod: string[] = [];

  it('a clean run changes every kernel (and tells how many writes it makes)', async () => {
    const counting = faultyFs(nodeFs, { failAt: Infinity });
    const r = await wm(['--basedir', clean, '--add-modules', '--no-initramfs'], t.input.replaceAll(t.root, clean), counting.fs);
    expect(r.status).toBe(0);
    total = counting.count();
    newStates = states(clean, t.root);
    newDepmod = depmodFiles(clean);
    expect(newDepmod).not.toEqual(oldDepmod);
    expect(total).toBeGreaterThan(KERNELS.length * 4);
    for (let i = 0; i < KERNELS.length; i++) {
      expect(newStates[i]).not.toEqual(oldStates[i]);
      expect(Object.keys(newStates[i]!).sort()).toEqual(['alpha/alpha.ko', 'beta/beta.ko', 'oldmod/oldmod.ko']);
    }
  });

  for (const crash of [false, true]) {
    it(`every one of the writes failing in turn (${crash ? 'killed there, then the next run recovers' : 'error path'})`, async () => {
      expect(total).toBeGreaterThan(0);
      const seen = { old: 0, new: 0 };
      for (let n = 1; n <= total; n++) {
        const root = copyOf(t.root);
        const f = faultyFs(nodeFs, { failAt: n, crash });
        const r = await wm(['--basedir', root, '--add-modules', '--no-initramfs'], t.input.replaceAll(t.root, root), f.fs);
        expect(f.tripped(), `write ${n} was reached`).toBe(true);
        // Every failure is reported with a non-zero exit, except losing depmod's summary cache
        // (the next run is only slower) and removing a temporary file after the new outputs
        // are in place (the next run removes it).
        const benign = /modules\.kabi-cache/.test(f.failedOn()) || /^unlink .*\.kabi-tmp-[^/]*$/.test(f.failedOn());
        // (the cache's own temporary files and commit marker are named after it, so they match too)
        if (!benign) expect(r.status, `write ${n}: ${f.failedOn()}`).not.toBe(0);
        await recoverAll(root); // what the next weak-modules/kabi run does first
        const got = states(root, t.root);
        for (let i = 0; i < KERNELS.length; i++) {
          const isOld = JSON.stringify(got[i]) === JSON.stringify(oldStates[i]);
          const isNew = JSON.stringify(got[i]) === JSON.stringify(newStates[i]);
          expect(isOld || isNew, `write ${n}, kernel ${KERNELS[i]}: ${JSON.stringify(got[i])}`).toBe(true);
          if (isOld) seen.old++;
          else seen.new++;
        }
        // depmod's outputs too are wholly old or wholly new in every kernel.
        depmodFiles(root).forEach((d, i) => expect(d === oldDepmod[i] || d === newDepmod[i], `write ${n}: depmod files of kernel ${i}`).toBe(true));
        // No staging leftovers after recovery.
        const leftovers = execFileSync('find', [join(root, 'lib/modules'), '(', '-name', '*.kabi-tmp-*', '-o', '-name', '*kabi-new*', '-o', '-name', '*kabi-old*', '-o', '-name', '*kabi-journal*', ')'], { encoding: 'utf8' }).trim();
        expect(leftovers, `write ${n}: ${leftovers}`).toBe('');
      }
      // Failures early leave old states, failures late leave new ones: both were exercised.
      expect(seen.old).toBeGreaterThan(0);
      expect(seen.new).toBeGreaterThan(0);
    }, 300_000);
  }
});
