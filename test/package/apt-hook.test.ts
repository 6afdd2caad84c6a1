import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { INTEGRATIONS } from '../integrations/host.js';
import { tempDir } from './helpers.js';

/*
 * The apt hook's side of the protocol (apt's own side is exercised in a chroot by
 * test/real/kernel-package-apt.test.ts): which packages reach kabi, how the refusal setting is
 * read, and that kabi's failures never stop the upgrade. `kabi` here is a stand-in that records
 * its arguments and exits as told.
 */

const HOOK = join(INTEGRATIONS, 'apt/apt-pre-install');

function runHook(stdin: string, kabiExit: number | 'missing') {
  const dir = tempDir();
  const log = join(dir, 'args');
  if (kabiExit !== 'missing') {
    writeFileSync(join(dir, 'kabi'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${log}\necho "kabi says hello"\nexit ${kabiExit}\n`);
    chmodSync(join(dir, 'kabi'), 0o755);
  }
  // Stand-in packages: the hook only passes files that exist.
  for (const f of ['linux-image-6.1.0-99-amd64_6.1.1-1_amd64.deb', 'linux-headers-6.1.0-99-amd64_6.1.1-1_amd64.deb', 'libc6_2.36-9_amd64.deb', 'proxmox-kernel-6.8_6.8.1_amd64.deb']) {
    writeFileSync(join(dir, f), 'x');
  }
  const r = spawnSync('sh', [HOOK], { input: stdin.replaceAll('@', dir), encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin` } });
  let args: string[] | undefined;
  try {
    args = readFileSync(log, 'utf8').trim().split('\n');
  } catch {
    args = undefined;
  }
  return { status: r.status, stderr: r.stderr, stdout: r.stdout, args, dir };
}

const V2 = (config: string[], packages: string[]) => ['VERSION 2', 'APT::Architecture=amd64', ...config, '', ...packages, ''].join('\n');
const PKGS = [
  'libc6 2.36-8 < 2.36-9 @/libc6_2.36-9_amd64.deb',
  'linux-image-6.1.0-99-amd64 - < 6.1.1-1 @/linux-image-6.1.0-99-amd64_6.1.1-1_amd64.deb',
  'linux-headers-6.1.0-99-amd64 - < 6.1.1-1 @/linux-headers-6.1.0-99-amd64_6.1.1-1_amd64.deb',
  'proxmox-kernel-6.8 - < 6.8.1 @/proxmox-kernel-6.8_6.8.1_amd64.deb',
  'linux-image-6.1.0-98-amd64 6.1.0-1 > - **REMOVE**',
  'libc-bin 2.36-9 = 2.36-9 **CONFIGURE**',
];

describe('apt Pre-Install-Pkgs hook', () => {
  it('hands kabi the kernel packages only, and warns without stopping apt', () => {
    const r = runHook(V2([], PKGS), 1);
    expect(r.status).toBe(0);
    expect(r.args).toEqual([
      'status',
      '--incoming',
      '--kernel-package',
      `${r.dir}/linux-image-6.1.0-99-amd64_6.1.1-1_amd64.deb`,
      '--kernel-package',
      `${r.dir}/linux-headers-6.1.0-99-amd64_6.1.1-1_amd64.deb`,
      '--kernel-package',
      `${r.dir}/proxmox-kernel-6.8_6.8.1_amd64.deb`,
    ]);
    expect(r.stderr).toBe('kabi says hello\nkabi: going ahead; apt-get -o Kabi::Refuse-Incompatible=true stops here instead\n');
  });

  it('stops apt when Kabi::Refuse-Incompatible is true in apt configuration, whatever its spelling of true', () => {
    for (const v of ['true', 'yes', '1', 'on']) {
      const r = runHook(V2([`Kabi::Refuse-Incompatible=${v}`], PKGS), 1);
      expect(r.status, v).toBe(1);
      expect(r.stderr).toContain('kabi: stopping before the packages are unpacked (Kabi::Refuse-Incompatible is set)');
    }
    expect(runHook(V2(['Kabi::Refuse-Incompatible=false'], PKGS), 1).status).toBe(0);
    // Nothing wrong found: apt goes on even when refusal is asked for.
    expect(runHook(V2(['Kabi::Refuse-Incompatible=true'], PKGS), 0)).toMatchObject({ status: 0, stderr: 'kabi says hello\n' });
  });

  it('never stops apt for its own failures, a missing kabi, or a transaction without a kernel', () => {
    const broken = runHook(V2(['Kabi::Refuse-Incompatible=true'], PKGS), 2);
    expect(broken.status).toBe(0);
    expect(broken.stderr).toContain('kabi: could not check the incoming kernel (exit status 2, see above); going ahead');
    expect(runHook(V2(['Kabi::Refuse-Incompatible=true'], PKGS), 'missing').status).toBe(0);
    const none = runHook(V2([], [PKGS[0]!, PKGS[5]!]), 1);
    expect(none).toMatchObject({ status: 0, args: undefined, stderr: '' });
  });

  it('understands protocol version 1 (bare file names) as well', () => {
    const r = runHook('@/libc6_2.36-9_amd64.deb\n@/linux-image-6.1.0-99-amd64_6.1.1-1_amd64.deb\n', 0);
    expect(r.args).toEqual(['status', '--incoming', '--kernel-package', `${r.dir}/linux-image-6.1.0-99-amd64_6.1.1-1_amd64.deb`]);
  });

  it('the apt.conf snippet names the hook with the protocol version it speaks', () => {
    const conf = readFileSync(join(INTEGRATIONS, 'apt/50kabi'), 'utf8');
    const hook = /DPkg::Pre-Install-Pkgs \{ "([^"]+)"; \};/.exec(conf)?.[1];
    expect(hook).toBe('/usr/libexec/kabi/apt-pre-install');
    expect(conf).toContain(`DPkg::Tools::Options::${hook}::Version "2";`);
  });
});
