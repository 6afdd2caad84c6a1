import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSymvers } from '../../src/symvers/parse.js';
import { KabiError } from '../../src/errors.js';
import { loadCorpus } from './corpus.js';
import { capture, chunks, kabiJson, moduleFiles, perFile } from './util.js';

interface InspectJson {
  file: string;
  vermagic: string | null;
  license: string | null;
  depends: string[];
  modinfo: Record<string, string[]>;
  versions: { symbol: string; crc: string }[];
  exports: { symbol: string; crc: string | null; gpl: boolean; namespace: string | null }[];
}

const corpus = loadCorpus();

// The newest ABI of each series, suite and architecture: bookworm 6.1 (.ko) and 6.12 (.ko.xz),
// trixie 6.12, 7.x, s390x, i386 and armhf. The older ABIs of a series are the same code built again;
// every module of each of these seven is read against kmod (28,600 modules).
const kernels = corpus.kernels().filter((k) => k.role === 'newest');

describe.each(kernels.map((k) => [`${k.krel} (${k.arch}, ${k.compression === 'xz' ? '.ko.xz' : '.ko'})`, k] as const))('module reader vs kmod on %s', (_label, k) => {
  const files = moduleFiles(k.moduleDir);
  let inspected: InspectJson[] = [];

  it('kabi inspect --json reads every module', () => {
    expect(files.length).toBe(k.moduleCount);
    inspected = chunks(files, 1500).flatMap((c) => kabiJson<InspectJson[]>(['inspect', '--json', ...c]));
    expect(inspected.map((j) => j.file)).toEqual(files);
  });

  it('agrees with modprobe --dump-modversions for every module (symbols and CRCs)', async () => {
    const mismatches: string[] = [];
    const dumps = await perFile('modprobe', ['--dump-modversions'], files);
    files.forEach((f, i) => {
      const ours = inspected[i]!.versions.map((v) => `${v.crc}\t${v.symbol}\n`).join('');
      // modprobe fails (status 1, no output) for a module without __versions; so must we have none.
      if (dumps[i] !== ours) mismatches.push(`${f}: modprobe ${JSON.stringify(dumps[i]!.slice(0, 80))} vs kabi ${JSON.stringify(ours.slice(0, 80))}`);
    });
    const entries = inspected.reduce((n, j) => n + j.versions.length, 0);
    console.log(`${k.krel}: ${files.length} modules, ${entries} modversion entries checked against modprobe, ${mismatches.length} disagreements`);
    expect(mismatches).toEqual([]);
  });

  for (const field of ['vermagic', 'license', 'depends'] as const) {
    it(`agrees with modinfo -F ${field} for every module`, async () => {
      let kmodLines: string[] = [];
      for (const c of chunks(files, 1500)) {
        const r = await capture('modinfo', ['-F', field, ...c]);
        expect(r.status, r.stderr).toBe(0);
        kmodLines = kmodLines.concat(r.stdout.split('\n').slice(0, -1));
      }
      const ours = inspected.flatMap((j) => j.modinfo[field] ?? []);
      expect(ours.length).toBe(kmodLines.length);
      const diffs = ours.map((v, i) => (v === kmodLines[i] ? null : `${i}: ${v} != ${kmodLines[i]}`)).filter(Boolean);
      expect(diffs).toEqual([]);
      // The top-level fields are the first value (the one the loader reads), split for depends.
      for (const j of inspected) {
        const first = j.modinfo[field]?.[0];
        if (field === 'vermagic') expect(j.vermagic).toBe(first ?? null);
        if (field === 'license') expect(j.license).toBe(first ?? null);
        if (field === 'depends') expect(j.depends).toEqual(first ? first.split(',') : []);
      }
    });
  }

  it('exports of every in-tree module agree with the headers’ Module.symvers (CRC, GPL flag, namespace)', () => {
    const symvers = parseSymvers(readFileSync(k.symvers, 'utf8'), { file: k.symvers });
    const byModule = symvers.byModule();
    let checked = 0;
    let exportsSeen = 0;
    const diffs: string[] = [];
    for (const j of inspected) {
      const rel = j.file.slice(k.moduleDir.length + 1);
      if (!rel.startsWith('kernel/')) continue;
      checked++;
      const kbuild = rel.slice('kernel/'.length).replace(/\.ko(\.xz)?$/, '');
      const want = (byModule.get(kbuild) ?? []).map((e) => `${e.symbol} 0x${e.crc.toString(16).padStart(8, '0')} ${e.exportType === 'EXPORT_SYMBOL_GPL'} ${e.namespace ?? ''}`).sort();
      // Without modversions (7.x) the module has no CRCs and Module.symvers writes 0 for each.
      const got = j.exports.map((e) => `${e.symbol} ${e.crc ?? (k.modversions ? null : '0x00000000')} ${e.gpl} ${e.namespace ?? ''}`).sort();
      exportsSeen += got.length;
      if (JSON.stringify(want) !== JSON.stringify(got)) diffs.push(`${rel}: symvers ${want.length} vs kabi ${got.length}: ${want.filter((w) => !got.includes(w)).slice(0, 2)} | ${got.filter((g) => !want.includes(g)).slice(0, 2)}`);
    }
    const moduleLines = symvers.entries.filter((e) => e.module !== 'vmlinux').length;
    console.log(`${k.krel}: ${checked} in-tree modules, ${exportsSeen} exports compared with ${moduleLines} module lines of Module.symvers, ${diffs.length} disagreements`);
    expect(diffs).toEqual([]);
    expect(exportsSeen).toBe(moduleLines);
  });

  it('parses the headers’ Module.symvers with the expected line count, and names the line of a corrupt one', () => {
    const text = readFileSync(k.symvers, 'utf8');
    const lines = text.split('\n').filter((l) => l !== '').length;
    const t = parseSymvers(text, { file: k.symvers });
    expect(t.size).toBe(lines);
    expect(t.format).toBe('ns-last');
    const all = text.split('\n');
    const n = Math.floor(all.length / 2);
    all[n] = all[n]!.replace(/^0x[0-9a-f]+/, '0xZZ');
    let err: unknown;
    try {
      parseSymvers(all.join('\n'), { file: k.symvers });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KabiError);
    expect((err as KabiError).message).toMatch(new RegExp(`^${k.symvers.replace(/[.+]/g, '\\$&')}:${n + 1}: `));
    console.log(`${k.krel}: Module.symvers ${lines} lines parsed`);
  });
});
