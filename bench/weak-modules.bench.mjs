// Issue 4: `weak-modules --add-modules` of one module on a root with 8 kernels, against the same
// operation done the way the bash tool does it: per kernel, a sandbox weak-updates, `zcat` of the
// symvers, a full `depmod -naeE` over the tree (again after each removal), then `depmod -ae`.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRoot, corpus, fmtMs, quick, ratio, table } from './lib.mjs';

const c = corpus();
const amd64 = c.kernels.filter((k) => k.arch === 'amd64');
const newest = amd64.find((k) => k.series === '6.1' && k.role === 'newest');
const eight = [...amd64.map((k) => ({ k })), ...amd64.slice(0, 3).map((k, i) => ({ k, as: `${k.krel}.bench${i}` }))].slice(0, quick ? 3 : 8);
const template = buildRoot(eight, 'kabi-bench-wm-');
const modPath = join(template, 'lib/modules', newest.krel, 'extra', 'kabi_minimal.ko');
mkdirSync(join(template, 'lib/modules', newest.krel, 'extra'), { recursive: true });
cpSync(newest.builtModules.kabi_minimal, modPath);
const krels = eight.map(({ k, as }) => as ?? k.krel);

function freshRoot() {
  const r = mkdtempSync(join(tmpdir(), 'kabi-bench-wm-run-'));
  execFileSync('cp', ['-al', `${template}/.`, r]);
  return r;
}

/** The bash tool's work for --add-modules of one module, as the commands it runs. */
function replay(root, module, { finalDepmod }) {
  const tmp = mkdtempSync(join(tmpdir(), 'weak-modules.'));
  const changed = [];
  for (const krel of krels) {
    if (module.startsWith(join(root, 'lib/modules', krel) + '/')) continue;
    spawnSync('modinfo', ['-F', 'vermagic', module], { stdio: 'ignore' });
    const sandbox = join(tmp, krel, 'weak-updates');
    mkdirSync(sandbox, { recursive: true });
    cpSync(join(root, 'lib/modules', krel, 'weak-updates'), sandbox, { recursive: true });
    const conf = join(tmp, 'depmod.conf');
    writeFileSync(conf, `search external extra built-in weak-updates\nexternal * ${sandbox}\n`);
    const symvers = join(tmp, `symvers-${krel}`);
    writeFileSync(symvers, execFileSync('zcat', [join(root, 'boot', `symvers-${krel}.gz`)], { maxBuffer: 1 << 28 }));
    symlinkSync(module, join(sandbox, 'kabi_minimal.ko'));
    let rounds = 0;
    for (;;) {
      rounds++;
      const r = spawnSync('depmod', ['-b', root, '-C', conf, '-naeE', symvers, krel], { encoding: 'utf8', maxBuffer: 1 << 30 });
      const bad = r.stderr.split('\n').filter((l) => l.includes(sandbox) && /needs unknown symbol|disagrees about version/.test(l));
      if (bad.length === 0) break;
      rmSync(join(sandbox, 'kabi_minimal.ko'), { force: true });
      if (rounds > 1) break;
    }
    const linked = spawnSync('ls', [sandbox], { encoding: 'utf8' }).stdout.trim() !== '';
    if (linked) {
      rmSync(join(root, 'lib/modules', krel, 'weak-updates'), { recursive: true, force: true });
      cpSync(sandbox, join(root, 'lib/modules', krel, 'weak-updates'), { recursive: true, verbatimSymlinks: true });
      changed.push(krel);
    }
  }
  changed.push(newest.krel);
  if (finalDepmod) for (const krel of changed) spawnSync('depmod', ['-b', root, '-ae', '-F', join(root, 'boot', `System.map-${krel}`), krel], { stdio: 'ignore' });
  rmSync(tmp, { recursive: true, force: true });
  return changed;
}

function kabi(root, module, extra) {
  const r = spawnSync(process.execPath, ['dist/bin/weak-modules.js', '--basedir', root, '--add-modules', '--no-initramfs', ...extra], { input: module + '\n', encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(r.stderr);
}

function time(fn) {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

const rows = [];
const runs = quick ? 1 : 3;
const med = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const dec = { kabi: [], bash: [] };
const tot = { kabi: [], bash: [] };
const again = { kabi: [] };
for (let i = 0; i < runs; i++) {
  let r = freshRoot();
  dec.kabi.push(time(() => kabi(r, modPath.replace(template, r), ['--dry-run'])));
  r = freshRoot();
  dec.bash.push(time(() => replay(r, modPath.replace(template, r), { finalDepmod: false })));
  r = freshRoot();
  tot.kabi.push(time(() => kabi(r, modPath.replace(template, r), [])));
  // The same package installed again (an RPM upgrade or reinstall): the links exist, every
  // kernel holding them is refreshed, and kabi's depmod has the cache the first run left.
  again.kabi.push(time(() => kabi(r, modPath.replace(template, r), [])));
  r = freshRoot();
  tot.bash.push(time(() => replay(r, modPath.replace(template, r), { finalDepmod: true })));
}
rows.push({ what: `deciding links for 1 module on ${krels.length} kernels`, kabi: fmtMs(med(dec.kabi)), reference: `bash tool's sandbox depmod -naeE runs: ${fmtMs(med(dec.bash))}`, ratio: ratio(med(dec.bash), med(dec.kabi)) });
rows.push({ what: `whole --add-modules incl. depmod -ae of changed kernels`, kabi: fmtMs(med(tot.kabi)), reference: `replayed bash tool: ${fmtMs(med(tot.bash))}`, ratio: ratio(med(tot.bash), med(tot.kabi)) });
rows.push({ what: `the same --add-modules again (upgrade; depmod cache from the first run)`, kabi: fmtMs(med(again.kabi)), reference: `replayed bash tool (no cache to use): ${fmtMs(med(tot.bash))}`, ratio: ratio(med(tot.bash), med(again.kabi)) });
console.log(table(rows));
console.log('BENCH-JSON ' + JSON.stringify({ kernels: krels.length, decideKabiMs: med(dec.kabi), decideBashMs: med(dec.bash), totalKabiMs: med(tot.kabi), totalBashMs: med(tot.bash), againKabiMs: med(again.kabi) }));
