// SPDX-License-Identifier: GPL-2.0-or-later
//
// The Debian corpus is what the other real tests stand on: check that it is complete and that
// the manifest tells the truth about it.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCorpus, TEST_MODULES, type CorpusKernel, type TestModuleName } from './corpus.js';

const corpus = loadCorpus();
const all = corpus.kernels();
const built = corpus.kernels({ built: true });

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

/**
 * The release the header set builds for. (Not include/config/kernel.release: in Debian's 6.1
 * header packages that holds the upstream version, e.g. "6.1.170".)
 */
function headersRelease(k: CorpusKernel): string {
  const h = fs.readFileSync(path.join(k.headersDir, 'include', 'generated', 'utsrelease.h'), 'utf8');
  const m = /^#define UTS_RELEASE "([^"]+)"$/m.exec(h);
  if (!m?.[1]) throw new Error(`no UTS_RELEASE in ${k.headersDir}/include/generated/utsrelease.h`);
  return m[1];
}

function modinfoField(file: string, field: string): string {
  return sh('modinfo', ['-F', field, file]).trim();
}

/** ABIs in Debian's order (6.1.0-47 < 6.1.0-57, 7.2.6+deb13 < 7.2.12+deb13). */
const abiOrder = (a: CorpusKernel, b: CorpusKernel) => a.abi.localeCompare(b.abi, 'en', { numeric: true });

describe('corpus manifest', () => {
  it('holds the full set of kernels', () => {
    expect(corpus.manifest.version).toBe(2);
    expect(corpus.manifest.only).toBeNull();
    expect(all).toHaveLength(13);

    const groups = [
      ['bookworm', '6.1', ['newest', 'oldest', 'twin'], /^6\.1\.0-\d+$/],
      ['bookworm', '6.12', ['newest', 'oldest'], /^6\.12\.\d+\+deb12$/],
      ['trixie', '6.12', ['newest', 'oldest'], /^6\.12\.\d+\+deb13$/],
      ['trixie-backports', '7.x', ['newest', 'oldest', 'previous'], /^7\.\d+\.\d+\+deb13$/],
    ] as const;
    for (const [suite, series, roles, abi] of groups) {
      const ks = corpus.kernels({ arch: 'amd64', suite, series });
      expect(ks.map((k) => k.role).sort(), `amd64 ${suite} ${series}`).toEqual([...roles]);
      const sorted = [...ks].sort(abiOrder);
      expect(sorted[0]!.role, `${suite} ${series}: the oldest ABI is oldest`).toBe('oldest');
      expect(sorted[sorted.length - 1]!.role).toBe('newest');
      for (const k of ks) {
        expect(k.abi).toMatch(abi);
        expect(k.flavour).toBe('amd64');
        expect(k.krel).toBe(`${k.abi}-amd64`);
        expect(k.mergedUsr).toBe(suite !== 'bookworm');
        expect(k.layout).toBe(series === '7.x' ? 'split' : 'image');
        expect(k.toolchain ?? null, k.krel).toBe(k.role === 'twin' ? null : suite === 'bookworm' ? 'host' : 'trixie');
        // The twin stands in for a kernel the modules were not built for.
        if (k.role === 'twin') expect(k.builtModules, k.krel).toBeUndefined();
        else expect(k.builtModules, k.krel).toBeDefined();
      }
    }

    const foreign: Array<[CorpusKernel['arch'], string]> = [
      ['s390x', 's390x'],
      ['i386', '686-pae'],
      ['armhf', 'armmp'],
    ];
    for (const [arch, flavour] of foreign) {
      const ks = corpus.kernels({ arch });
      expect(ks, arch).toHaveLength(1);
      expect(ks[0]!.series).toBe('6.1');
      expect(ks[0]!.flavour).toBe(flavour);
      expect(ks[0]!.krel).toBe(`${ks[0]!.abi}-${flavour}`);
    }
  });

  it('the 6.1 twin agrees with the newest ABI on every symbol the test modules import, and that list is complete', () => {
    const [newest] = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'newest' });
    const [twin] = corpus.kernels({ arch: 'amd64', series: '6.1', role: 'twin' });
    expect(twin!.abi).not.toBe(newest!.abi);
    const listed = fs.readFileSync('corpus/modules/imports.txt', 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    const crcs = (file: string) => new Map(fs.readFileSync(file, 'utf8').split('\n').map((l) => l.split('\t')).filter((f) => f.length > 2).map((f) => [f[1]!, f[0]!]));
    const a = crcs(newest!.symvers);
    const b = crcs(twin!.symvers);
    for (const n of listed) {
      expect(a.get(n), n).toBeDefined();
      expect(b.get(n), n).toBe(a.get(n));
    }
    // Every kernel symbol a module built for bookworm imports is on the list.
    for (const k of built.filter((x) => x.suite === 'bookworm')) {
      for (const name of TEST_MODULES) {
        const imported = sh('modprobe', ['--dump-modversions', corpus.builtModule(k, name)]).split('\n').filter(Boolean).map((l) => l.split('\t')[1]!);
        for (const sym of imported) if (sym !== 'kabi_provider_value') expect(listed, `${name} on ${k.krel} imports ${sym}`).toContain(sym);
      }
    }
  });

  it('krels are unique and every path is absolute', () => {
    expect(new Set(all.map((k) => k.krel)).size).toBe(all.length);
    for (const k of all) {
      for (const p of [k.treeRoot, k.moduleDir, k.systemMap, k.config, k.headersDir, k.symvers]) {
        expect(path.isAbsolute(p), p).toBe(true);
      }
      expect(k.moduleDir).toBe(path.join(k.treeRoot, k.mergedUsr ? 'usr/lib' : 'lib', 'modules', k.krel));
      if (k.mergedUsr) expect(fs.readlinkSync(path.join(k.treeRoot, 'lib'))).toBe('usr/lib');
    }
  });
});

describe.each(all.map((k) => [k.krel, k] as const))('kernel %s', (_krel, k) => {
  it('module count and compression match the tree', () => {
    const found = sh('find', [k.moduleDir, '-name', '*.ko*']).split('\n').filter(Boolean);
    expect(k.moduleCount).toBe(found.length);
    expect(found.length).toBeGreaterThan(500);
    const ext = k.compression === 'xz' ? '.ko.xz' : '.ko';
    expect(found.filter((f) => !f.endsWith(ext))).toEqual([]);
    expect(k.compression).toBe(k.series === '6.1' ? 'none' : 'xz');
  });

  it('has System.map, config, modules.order and modules.builtin', () => {
    // Debian ships a one-line stub System.map (the real one is in the -dbg package); the
    // manifest says so, and kernel exports must come from `symvers` instead.
    const map = fs.readFileSync(k.systemMap, 'utf8');
    expect(map).toMatch(/^[0-9a-f]+ [A-Za-z] \S+/m);
    expect(k.systemMapIsStub).toBe(/The real System\.map is in/.test(map));
    const config = fs.readFileSync(k.config, 'utf8');
    expect(config).toMatch(/^CONFIG_MODULES=y$/m);
    // 7.x dropped modversions: only a module built for the very release loads there.
    expect(config).toMatch(k.series === '7.x' ? /^# CONFIG_MODVERSIONS is not set$/m : /^CONFIG_MODVERSIONS=y$/m);
    expect(k.modversions).toBe(k.series !== '7.x');
    if (k.layout === 'split') for (const f of [k.systemMap, k.config, k.vmlinuz!]) expect(path.dirname(f)).toBe(k.moduleDir);
    if (k.arch === 'amd64') expect(fs.existsSync(k.vmlinuz!)).toBe(true);
    for (const f of ['modules.order', 'modules.builtin']) expect(fs.existsSync(path.join(k.moduleDir, f)), f).toBe(true);
  });

  it('has a self-contained header set with Module.symvers', () => {
    expect(headersRelease(k)).toBe(k.krel);
    const symvers = fs.readFileSync(k.symvers, 'utf8');
    if (k.modversions) expect(symvers).toMatch(/^0x[0-9a-f]{8}\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t/m);
    // Without modversions every CRC is 0.
    else expect(symvers.split('\n').filter((l) => l !== '' && !l.startsWith('0x00000000\t'))).toEqual([]);
    expect(symvers.split('\n').length).toBeGreaterThan(10_000);
    // No symlink may point at the machine's own /usr/src or /usr/lib.
    expect(sh('find', [k.headersRoot, k.treeRoot, '-lname', '/*'])).toBe('');
  });
});

describe.each(built.map((k) => [k.krel, k] as const))('test modules built against %s', (_krel, k) => {
  it.each([...TEST_MODULES])('%s exists and its vermagic is the header set release', (name: TestModuleName) => {
    const ko = corpus.builtModule(k, name);
    expect(fs.existsSync(ko), ko).toBe(true);
    expect(modinfoField(ko, 'vermagic').split(/\s+/)[0]).toBe(headersRelease(k));
    expect(modinfoField(ko, 'name')).toBe(name);
  });

  it('the modules carry the properties the tests rely on', () => {
    const ko = (n: TestModuleName) => corpus.builtModule(k, n);
    expect(modinfoField(ko('kabi_nongpl'), 'license')).toBe('Proprietary');
    for (const n of TEST_MODULES.filter((x) => x !== 'kabi_nongpl')) expect(modinfoField(ko(n), 'license'), n).toBe('GPL');
    expect(modinfoField(ko('kabi_consumer'), 'depends')).toBe('kabi_provider');
    expect(modinfoField(ko('kabi_ns_ok'), 'import_ns')).toBe('USB_STORAGE');
    expect(modinfoField(ko('kabi_ns_ok'), 'depends')).toBe('usb-storage');
    expect(modinfoField(ko('kabi_ns_missing'), 'import_ns')).toBe('');
    expect(modinfoField(ko('kabi_ns_missing'), 'depends')).toBe('usb-storage');

    const versions = (n: TestModuleName) => sh('modprobe', ['--dump-modversions', ko(n)]);
    if (!k.modversions) {
      // 7.x: no __versions section at all, and the vermagic says so.
      for (const n of TEST_MODULES) expect(sh('readelf', ['-SW', ko(n)]), n).not.toMatch(/__versions/);
      expect(modinfoField(ko('kabi_minimal'), 'vermagic')).not.toMatch(/modversions/);
    } else {
      expect(versions('kabi_nongpl')).toMatch(/^0x[0-9a-f]{8}\tktime_get_mono_fast_ns$/m);
      expect(versions('kabi_consumer')).toMatch(/^0x[0-9a-f]{8}\tkabi_provider_value$/m);
      // The CRCs the modules recorded are the ones the header set (and the provider) export.
      const symvers = fs.readFileSync(k.symvers, 'utf8');
      const crc = /^(0x[0-9a-f]{8})\tktime_get_mono_fast_ns\tvmlinux\tEXPORT_SYMBOL_GPL\t/m.exec(symvers)?.[1];
      expect(crc).toBeDefined();
      expect(versions('kabi_nongpl')).toContain(`${crc}\tktime_get_mono_fast_ns`);
    }
    expect(fs.readFileSync(k.builtSymvers!, 'utf8')).toMatch(/\tkabi_provider_value\t\S*kabi_provider\tEXPORT_SYMBOL_GPL\t/);
  });
});

describe('DKMS packages built against the corpus kernels', () => {
  const sources = corpus.manifest.dkmsSources;

  it('several versions of v4l2loopback, acpi-call and two more packages, each tried on every kernel the test modules are built for', () => {
    const versions = (name: string) => sources.filter((s) => s.name === name).map((s) => s.version);
    expect(versions('v4l2loopback-dkms').map((v) => v.split('.').slice(0, 2).join('.'))).toEqual(expect.arrayContaining(['0.12', '0.13', '0.15']));
    expect(versions('acpi-call-dkms').length).toBeGreaterThanOrEqual(1);
    expect(new Set(sources.map((s) => s.name)).size).toBeGreaterThanOrEqual(4);
    for (const k of built) {
      expect(k.dkms!.map((d) => `${d.source} ${d.version}`).sort(), k.krel).toEqual(sources.map((s) => `${s.name} ${s.version}`).sort());
    }
  });

  it.each(built.map((k) => [k.krel, k] as const))('on %s: what must build did, and every built module is for that kernel', (_krel, k) => {
    for (const d of k.dkms!) {
      if (d.expected) expect(d.status, `${d.source} ${d.version}: ${d.error ?? ''}`).toBe('built');
      if (d.status !== 'built') {
        expect(d.error, `${d.source} ${d.version}`).toBeTruthy();
        continue;
      }
      expect(Object.keys(d.modules).length).toBeGreaterThan(0);
      for (const [name, file] of Object.entries(d.modules)) {
        expect(fs.existsSync(file), file).toBe(true);
        // dkms build leaves them uncompressed (only dkms install compresses).
        expect(file.endsWith('.ko'), file).toBe(true);
        expect(modinfoField(file, 'vermagic').split(/\s+/)[0], file).toBe(k.krel);
        expect(modinfoField(file, 'name').replace(/-/g, '_'), file).toBe(name.replace(/-/g, '_'));
      }
    }
  });
});
