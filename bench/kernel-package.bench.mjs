// Issue 18: judging one module against a kernel package that is not installed, against what
// the question costs without kabi: unpacking the package (dpkg-deb -x, rpm2cpio | cpio).
//   - Debian 6.12 (linux-image 107 MB + linux-headers): kabi check --kernel-package vs dpkg-deb -x of both
//   - the same image alone (no Module.symvers: every in-tree module is read), vs dpkg-deb -x of it
//   - a RHEL-style kernel-core RPM of the same kernel (symvers.xz inside): kabi vs rpm2cpio | cpio -id
// Whole commands, timed by hyperfine (wall-clock median); CPU time (user + system, children
// included: kabi's xz(1), dpkg-deb's tar) from the same runs.
import { execFileSync, spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corpus, fmtMs, quick, ratio, table } from './lib.mjs';

const c = corpus();
const k = c.kernels.find((x) => x.arch === 'amd64' && x.series === '6.12' && x.role === 'newest');
const debs = join(c.cacheDir, 'debs');
const image = join(debs, k.packages.image.file);
const headers = join(debs, k.packages.headers.file);
const module = k.builtModules.kabi_minimal;
const work = mkdtempSync(join(tmpdir(), 'kabi-bench-pkg-'));
const empty = join(work, 'root');
const out = join(work, 'unpacked');
mkdirSync(empty);
const kabi = `${process.execPath} dist/bin/kabi.js`;
const runs = quick ? 2 : 5;

/** hyperfine's median wall time and mean CPU time (ms) of a shell command. */
function measure(cmd, { prepare } = {}) {
  const json = join(work, 'h.json');
  const args = ['--runs', String(runs), '--warmup', '1', '--export-json', json, '-i'];
  if (prepare) args.push('--prepare', prepare);
  const r = spawnSync('hyperfine', [...args, cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr}`);
  const res = JSON.parse(readFileSync(json, 'utf8')).results[0];
  return { wall: res.median * 1000, cpu: (res.user + res.system) * 1000 };
}

const rows = [];
const json = { kernel: k.krel, imageBytes: statSync(image).size };
const row = (what, ours, ref, refName) => {
  rows.push({ what, kabi: `${fmtMs(ours.wall)} (CPU ${fmtMs(ours.cpu)})`, reference: `${refName}: ${fmtMs(ref.wall)} (CPU ${fmtMs(ref.cpu)})`, ratio: ratio(ref.wall, ours.wall) });
};

// The check must come out right before it is timed.
const verdict = spawnSync(process.execPath, ['dist/bin/kabi.js', 'check', '--json', '--root', empty, '--kernel-package', image, '--kernel-package', headers, module], { encoding: 'utf8' });
if (verdict.status !== 0 || !JSON.parse(verdict.stdout)[0]?.compatible) throw new Error(`kabi check did not pass kabi_minimal on its own kernel: ${verdict.stdout}${verdict.stderr}`);

const unpack = `rm -rf ${out} && mkdir ${out}`;
const oursDeb = measure(`${kabi} check --root ${empty} --kernel-package ${image} --kernel-package ${headers} ${module}`);
const dpkg = measure(`sh -c 'dpkg-deb -x ${image} ${out} && dpkg-deb -x ${headers} ${out}'`, { prepare: unpack });
row(`1 module vs ${k.krel} image (${(json.imageBytes / 1e6).toFixed(0)} MB) + headers .deb`, oursDeb, dpkg, 'dpkg-deb -x both');
json.deb = { kabiMs: oursDeb.wall, kabiCpuMs: oursDeb.cpu, dpkgDebMs: dpkg.wall, dpkgDebCpuMs: dpkg.cpu };

if (!quick) {
  const oursImage = measure(`${kabi} check --root ${empty} --kernel-package ${image} ${module}`);
  const dpkgImage = measure(`dpkg-deb -x ${image} ${out}`, { prepare: unpack });
  row(`1 module vs the image alone (no Module.symvers: every module is read)`, oursImage, dpkgImage, 'dpkg-deb -x');
  json.imageOnly = { kabiMs: oursImage.wall, kabiCpuMs: oursImage.cpu, dpkgDebMs: dpkgImage.wall, dpkgDebCpuMs: dpkgImage.cpu };

  // kernel-core as RHEL 9 builds it: the tree, config, System.map and symvers.xz under /lib/modules/K.
  const src = join(work, 'rpmsrc');
  const mod = join(src, 'lib/modules', k.krel);
  mkdirSync(join(src, 'lib/modules'), { recursive: true });
  execFileSync('cp', ['-al', k.moduleDir, join(src, 'lib/modules')]);
  linkSync(k.config, join(mod, 'config'));
  linkSync(k.systemMap, join(mod, 'System.map'));
  writeFileSync(join(mod, 'symvers.xz'), execFileSync('xz', ['-c', '-T0', k.symvers], { maxBuffer: 1 << 28 }));
  const top = join(work, 'rpmtop');
  const files = [];
  const walk = (d) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) {
        files.push(`%dir "${p.slice(src.length)}"`);
        walk(p);
      } else files.push(`"${p.slice(src.length)}"`);
    }
  };
  walk(join(src, 'lib/modules', k.krel));
  mkdirSync(top);
  writeFileSync(
    join(top, 'kernel-core.spec'),
    `Name: kernel-core\nVersion: 5.14.0\nRelease: 1\nSummary: bench\nLicense: GPL-2.0-only\nBuildArch: noarch\nAutoReqProv: no\n%global debug_package %{nil}\n%global __os_install_post %{nil}\n%description\nbench\n%install\nmkdir -p %{buildroot}\ncp -a ${src}/. %{buildroot}/\n%files\n${files.join('\n')}\n`,
  );
  execFileSync('rpmbuild', ['-bb', '--nodeps', '--define', `_topdir ${top}`, '--define', '_binary_payload w2T.xzdio', '--define', '__spec_install_post %{nil}', '--define', '_build_id_links none', join(top, 'kernel-core.spec')], { stdio: 'ignore' });
  const rpm = execFileSync('find', [join(top, 'RPMS'), '-name', '*.rpm'], { encoding: 'utf8' }).trim();
  const oursRpm = measure(`${kabi} check --root ${empty} --kernel-package ${rpm} ${module}`);
  const rpm2cpio = measure(`sh -c 'cd ${out} && rpm2cpio ${rpm} | cpio -idm --quiet'`, { prepare: unpack });
  row(`1 module vs the same kernel as a kernel-core RPM (${(statSync(rpm).size / 1e6).toFixed(0)} MB, xz)`, oursRpm, rpm2cpio, 'rpm2cpio | cpio -idm');
  json.rpm = { rpmBytes: statSync(rpm).size, kabiMs: oursRpm.wall, kabiCpuMs: oursRpm.cpu, rpm2cpioMs: rpm2cpio.wall, rpm2cpioCpuMs: rpm2cpio.cpu };
}

rmSync(work, { recursive: true, force: true });
console.log(table(rows));
console.log('BENCH-JSON ' + JSON.stringify(json));
