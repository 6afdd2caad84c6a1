import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { imageNeedsUpdate } from '../../src/initramfs/check.js';
import { listDeferred } from '../../src/initramfs/deferred.js';
import { allEntries, readImageFile } from '../../src/initramfs/image.js';
import { nodeFs } from '../../src/fs.js';
import { delta, K, K2, makeImageSystem } from '../initramfs/image-system.js';
import { snapshot, weakLinks } from '../linker/helpers.js';
import { INTEGRATIONS, installedBins, integrationFile, runSh } from './host.js';
import { expandMacros, sampleMacros } from './rpm-macros.js';

/** Kernels with a deferred initramfs refresh recorded (each call leaves its own record file). */
async function recordedKernels(root: string): Promise<string[]> {
  return (await listDeferred({ root })).map((r) => r.release);
}

/*
 * macros.kabi driven as rpm drives a kmod package's scriptlets: each body expanded for a sample
 * package (kmod-delta, whose module is /lib/modules/K2/extra/delta.ko), written to a file and
 * run with /bin/sh and the instance count rpm passes as $1, in the order of an upgrade:
 * new %post, old %postun, new %posttrans.
 */

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

/** The package's libexec dir as kabi.spec installs it: weak-modules and the helpers under kabi/. */
function libexec(withTrigger = false): string {
  const d = mkdtempSync(join(tmpdir(), 'kabi-libexec-'));
  temps.push(d);
  mkdirSync(join(d, 'kabi'));
  symlinkSync(join(installedBins(), 'weak-modules'), join(d, 'kabi/weak-modules'));
  copyFileSync(join(INTEGRATIONS, 'rpm/kabi-defer-initramfs'), join(d, 'kabi/kabi-defer-initramfs'));
  if (withTrigger) copyFileSync(join(INTEGRATIONS, 'rpm/kabi-rpm-trigger'), join(d, 'kabi/kabi-rpm-trigger'));
  return d;
}

function scriptlet(spec: string, version: string, withTrigger = false): string {
  const macros = sampleMacros(integrationFile('rpm/macros.kabi'), {
    name: 'kmod-delta',
    version,
    release: '1.el9',
    kverrel: K2,
    _bindir: installedBins(),
    _libexecdir: libexec(withTrigger),
  });
  return expandMacros(spec, macros);
}

function rpmRun(body: string, count: number, root: string) {
  const d = mkdtempSync(join(tmpdir(), 'kabi-scriptlet-'));
  temps.push(d);
  const file = join(d, 'scriptlet.sh');
  writeFileSync(file, body);
  return runSh([file, String(count)], { KABI_ROOT: root });
}

const POST = `%kabi_kmod_post /lib/modules/%{kverrel}/extra/delta.ko\n`;
const POSTUN = `%kabi_kmod_postun /lib/modules/%{kverrel}/extra/delta.ko\n`;
const POSTTRANS = `%kabi_kmod_posttrans\n`;

describe('RPM scriptlets from macros.kabi', () => {
  it('expand to plain sh with every macro resolved', () => {
    for (const spec of [POST, POSTUN, POSTTRANS]) {
      const body = scriptlet(spec, '2');
      expect(body).not.toMatch(/%[{A-Za-z_*]/);
      // kabi's programs by absolute path (rpm's PATH would find RHEL's weak-modules first), -x guarded.
      expect(body).toMatch(spec === POSTTRANS ? /^  "\/\S+\/kabi" initramfs flush /m : /^    "\/\S+\/kabi\/weak-modules" \$\{KABI_ROOT:\+--basedir "\$KABI_ROOT"\} --(add|remove)-modules --check-initramfs-prog "\/\S+\/kabi\/kabi-defer-initramfs"/m);
      expect(body).toMatch(/^if \[ ! -x "\/\S+\/kabi\/kabi-rpm-trigger" \] && \[ -x "\/\S+" \]; then$/m);
    }
    expect(scriptlet(POST, '2')).toContain(`for kabi_module in /lib/modules/${K2}/extra/delta.ko; do`);
  });

  it('do nothing where kabi carries file triggers, or is not installed, and never fail the scriptlet', () => {
    const sys = makeImageSystem({ compression: 'gzip' });
    temps.push(sys.root);
    const before = snapshot(sys.root);
    for (const spec of [POST, POSTUN, POSTTRANS]) expect(rpmRun(scriptlet(spec, '2', true), 1, sys.root)).toMatchObject({ status: 0, stderr: '' });
    const absent = expandMacros(POST, sampleMacros(integrationFile('rpm/macros.kabi'), { kverrel: K2, _bindir: '/nonexistent', _libexecdir: '/nonexistent' }));
    expect(rpmRun(absent, 1, sys.root)).toMatchObject({ status: 0, stderr: '' });
    expect(snapshot(sys.root)).toEqual(before);
  });

  it('an upgrade relinks, records the initramfs once, and %posttrans refreshes it', async () => {
    const sys = makeImageSystem({ compression: 'gzip' });
    temps.push(sys.root);
    const module = `/lib/modules/${K2}/extra/delta.ko`;
    // rpm unpacks the new package's file over the old one (a new inode, new bytes).
    const v2 = delta(K2, '2');
    rmSync(sys.fx.path(module));
    writeFileSync(sys.fx.path(module), v2);

    const post = rpmRun(scriptlet(POST, '2'), 2, sys.root);
    expect(post, post.stderr).toMatchObject({ status: 0 });
    // The link still leads to the module (by the path the installed system knows it by), and
    // K's image (which holds delta 1) is recorded, once.
    expect(readlinkSync(join(sys.root, 'lib/modules', K, 'weak-updates/delta.ko'))).toBe(module);
    expect(await recordedKernels(sys.root)).toEqual([K]); // K2 has no image
    const imageBefore = readFileSync(sys.imageHost);

    const postun = rpmRun(scriptlet(POSTUN, '1'), 1, sys.root);
    expect(postun, postun.stderr).toMatchObject({ status: 0 });
    expect(Object.keys(weakLinks(sys.root, K))).toEqual(['delta.ko']); // the file is there: the link stays
    expect(readFileSync(sys.imageHost)).toEqual(imageBefore); // nothing rebuilt before %posttrans
    expect((await imageNeedsUpdate({ root: sys.root, release: K })).needsUpdate).toBe(true);

    const posttrans = rpmRun(scriptlet(POSTTRANS, '2'), 0, sys.root);
    expect(posttrans, posttrans.stderr).toMatchObject({ status: 0 });
    expect(await recordedKernels(sys.root)).toEqual([]);
    expect((await imageNeedsUpdate({ root: sys.root, release: K })).needsUpdate).toBe(false);
    const image = await readImageFile(nodeFs, sys.imageHost);
    const inImage = [...allEntries(image)].map((l) => l.entry).filter((e) => e.name.endsWith('/delta.ko') && e.data.length > 0);
    expect(inImage.map((e) => Buffer.from(e.data).equals(Buffer.from(v2)))).toContain(true);
  });

  it('an erase drops the link to the removed module and records the kernel whose image holds it', async () => {
    const sys = makeImageSystem({ compression: 'gzip' });
    temps.push(sys.root);
    // Installed by the same scriptlets (with --basedir, weak-modules writes links as it was given the paths).
    expect(rpmRun(scriptlet(POST, '1'), 1, sys.root)).toMatchObject({ status: 0 });
    expect(Object.keys(weakLinks(sys.root, K))).toEqual(['delta.ko']);
    rmSync(sys.fx.path(`/run/kabi`), { recursive: true, force: true });
    rmSync(sys.fx.path(`/lib/modules/${K2}/extra/delta.ko`));
    const postun = rpmRun(scriptlet(POSTUN, '1'), 0, sys.root);
    expect(postun, postun.stderr).toMatchObject({ status: 0 });
    expect(weakLinks(sys.root, K)).toEqual({});
    expect(await recordedKernels(sys.root)).toEqual([K]);
  });
});
