import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript module without types
import { copyChroot, ensureChroot, runInChroot, TEST_CHROOTS } from '../../corpus/debian/chroot.mjs';
import { INTEGRATIONS, REPO } from '../integrations/host.js';
import { buildDeb } from '../package/helpers.js';
import { loadCorpus } from './corpus.js';

/*
 * Acceptance: real apt and dpkg, in a bookworm chroot, upgrading to a kernel on which a module
 * of the system cannot load. apt runs kabi's Pre-Install-Pkgs hook (integrations/apt) with the
 * .deb it is about to install; the hook names the module and the loader's reason before dpkg
 * unpacks anything, and, when Kabi::Refuse-Incompatible is set, apt stops there.
 *
 * The system: kernel 6.1.0-47 installed by dpkg, kabi_minimal built for it in its extra/
 * (module_layout differs on 6.1.0-57: it will not load there), and kabi_provider built by
 * DKMS for 6.1.0-57 already (it will load: it must not be reported). kabi runs in the chroot
 * from this checkout (node copied in, the repository bind-mounted at /opt/kabi).
 */

type ChrootResult = { status: number | null; stdout: string; stderr: string; timedOut: boolean };
const run = runInChroot as (dir: string, argv: string[], opts?: { env?: Record<string, string>; timeoutMs?: number; binds?: Record<string, string> }) => ChrootResult;

const corpus = loadCorpus();
const OLD = corpus.kernel('6.1.0-47-amd64');
const NEW = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'newest' })[0]!;
const debs = join(corpus.manifest.cacheDir, 'debs');

let root: string;
let work: string;
const binds = () => ({ [REPO]: '/opt/kabi', [debs]: '/debs' });

function sh(script: string, env: Record<string, string> = {}): ChrootResult {
  return run(root, ['sh', '-c', `${script} 2>&1`], { binds: binds(), timeoutMs: 900_000, env: { DEBIAN_FRONTEND: 'noninteractive', ...env } });
}

beforeAll(() => {
  const pristine = ensureChroot(TEST_CHROOTS.initramfsTools) as string;
  work = mkdtempSync(join(tmpdir(), 'kabi-apt-chroot-'));
  root = copyChroot(pristine, join(work, 'root')) as string;
  // kabi as a package would install it: the bin on PATH, the hook and the apt snippet.
  copyFileSync(process.execPath, join(root, 'usr/local/bin/node'));
  writeFileSync(join(root, 'usr/local/bin/kabi'), '#!/bin/sh\nexec /usr/local/bin/node /opt/kabi/dist/bin/kabi.js "$@"\n');
  chmodSync(join(root, 'usr/local/bin/kabi'), 0o755);
  mkdirSync(join(root, 'usr/libexec/kabi'), { recursive: true });
  copyFileSync(join(INTEGRATIONS, 'apt/apt-pre-install'), join(root, 'usr/libexec/kabi/apt-pre-install'));
  chmodSync(join(root, 'usr/libexec/kabi/apt-pre-install'), 0o755);
  copyFileSync(join(INTEGRATIONS, 'apt/50kabi'), join(root, 'etc/apt/apt.conf.d/50kabi'));
  // Building initramfs images is not what is tested here, and takes minutes.
  const divert = sh('dpkg-divert --local --rename --add /usr/sbin/update-initramfs && ln -s /bin/true /usr/sbin/update-initramfs');
  expect(divert.status, divert.stdout).toBe(0);
  const old = sh(`dpkg -i /debs/${OLD.packages.image!.file}`);
  expect(old.status, old.stdout).toBe(0);
  const extra = join(root, 'lib/modules', OLD.krel, 'extra');
  mkdirSync(extra, { recursive: true });
  copyFileSync(corpus.builtModule(OLD, 'kabi_minimal'), join(extra, 'kabi_minimal.ko'));
  const dkms = join(root, 'var/lib/dkms/kabi_provider/1.0', NEW.krel, 'x86_64/module');
  mkdirSync(dkms, { recursive: true });
  copyFileSync(corpus.builtModule(NEW, 'kabi_provider'), join(dkms, 'kabi_provider.ko'));
}, 1_800_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const install = (extraOpts = '') => `apt-get install -y --no-install-recommends ${extraOpts} /debs/${NEW.packages.image!.file}`;
const installedVersion = () => sh(`dpkg-query -W -f '\${Status}' ${NEW.packages.image!.name} || true`).stdout;

describe('apt upgrade to a kernel where a module of the system cannot load', () => {
  it('with Kabi::Refuse-Incompatible: the hook names the module and why, and apt stops before unpacking', () => {
    const r = sh(install('-o Kabi::Refuse-Incompatible=true'));
    expect(r.status, r.stdout).not.toBe(0);
    expect(r.stdout).toContain(`kabi: after installing ${NEW.packages.image!.name}: 1 out-of-tree module will not load on ${NEW.krel}:`);
    expect(r.stdout).toContain(`kabi:   kabi_minimal (/lib/modules/${OLD.krel}/extra/kabi_minimal.ko, built for ${OLD.krel})`);
    expect(r.stdout).toContain('kabi:     kabi_minimal: disagrees about version of symbol module_layout');
    expect(r.stdout).not.toContain('kabi_provider');
    expect(r.stdout).toContain('kabi: stopping before the packages are unpacked (Kabi::Refuse-Incompatible is set)');
    expect(r.stdout).toMatch(/E: Sub-process \/usr\/libexec\/kabi\/apt-pre-install returned an error code \(1\)/);
    expect(r.stdout).not.toContain('Unpacking');
    expect(installedVersion()).not.toContain('install ok installed');
    expect(sh(`test -e /lib/modules/${NEW.krel}/kernel`).status).not.toBe(0);
  });

  it('by default: the same warning, printed before dpkg unpacks the kernel, and the upgrade goes on', () => {
    const r = sh(install());
    expect(r.status, r.stdout).toBe(0);
    const warning = r.stdout.indexOf('kabi:     kabi_minimal: disagrees about version of symbol module_layout');
    const unpacking = r.stdout.indexOf(`Unpacking ${NEW.packages.image!.name}`);
    expect(warning, r.stdout).toBeGreaterThan(-1);
    expect(unpacking, r.stdout).toBeGreaterThan(warning);
    expect(r.stdout).toContain('kabi: going ahead; apt-get -o Kabi::Refuse-Incompatible=true stops here instead');
    expect(installedVersion()).toContain('install ok installed');
    // Installed now: kabi status agrees with what the hook said from the package alone.
    const after = sh(`kabi status --json`);
    expect(after.status, after.stdout).toBe(0);
    const report = JSON.parse(after.stdout) as { kernels: { release: string }[]; modules: { name: string; cells: { kernel: string; state: string }[] }[] };
    const cell = (m: string) => report.modules.find((x) => x.name === m)!.cells.find((c) => c.kernel === NEW.krel)!.state;
    expect(cell('kabi_minimal')).toBe('incompatible');
    expect(cell('kabi_provider')).toBe('compatible');
  });

  it('a transaction without a kernel package reads nothing and says nothing', () => {
    const deb = buildDeb(join(root, 'tmp'), [{ path: 'usr/share/doc/kabi-hello/README', data: 'hello\n' }], { name: 'kabi-hello' });
    const r = sh(`apt-get install -y /tmp/${basename(deb)}`);
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toContain('Unpacking kabi-hello');
    expect(r.stdout).not.toContain('kabi:');
  });
});
