import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildModuleBytes } from '../../corpus/fixtures/module-builder.js';
import { readModuleFile } from '../../src/module/read-module.js';

describe('reading modules on worker threads', () => {
  it('gives the same modules (and the same typed errors) as reading in-process', async () => {
    // The built pool, since workers run the compiled worker script (npm test builds first).
    expect(existsSync('dist/src/module/read-worker.js'), 'run npm run build first').toBe(true);
    const { ModuleCache } = (await import(new URL('../../dist/src/compat/kernel-model.js', import.meta.url).href)) as typeof import('../../src/compat/kernel-model.js');
    const dir = mkdtempSync(join(tmpdir(), 'kabi-pool-'));
    const files: string[] = [];
    for (let i = 0; i < 150; i++) {
      const f = join(dir, `m${i}.ko`);
      writeFileSync(f, buildModuleBytes({ name: `m${i}`, versions: [{ symbol: 'module_layout', crc: i }], modinfo: [['alias', `a${i}`]], exports: [{ symbol: `f${i}`, crc: i, gpl: i % 2 === 0 }] }));
      files.push(f);
    }
    // .ko.xz ones (with a long description: a burst of them is decoded by xz processes), one
    // of them damaged inside its LZMA2 data.
    for (let i = 150; i < 190; i++) {
      const f = join(dir, `m${i}.ko.xz`);
      const elf = buildModuleBytes({ name: `m${i}`, versions: [{ symbol: 'module_layout', crc: i }], modinfo: [['alias', `a${i}`], ['description', `module ${i} `.repeat(20_000)]], exports: [{ symbol: `f${i}`, crc: i, gpl: false }] });
      const xz = spawnSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c'], { input: elf }).stdout;
      if (i === 170) xz[xz.length >> 1] = xz[xz.length >> 1]! ^ 0x40;
      writeFileSync(f, xz);
      files.push(f);
    }
    const bad = join(dir, 'bad.ko');
    writeFileSync(bad, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 9]));
    const cache = new ModuleCache();
    const pooled = await Promise.allSettled(files.map((f) => cache.read(f)));
    for (let i = 0; i < files.length; i++) {
      const direct = await readModuleFile(files[i]!).then((m) => ({ status: 'fulfilled' as const, value: m }), (e: unknown) => ({ status: 'rejected' as const, reason: e }));
      const got = pooled[i]!;
      expect(got.status).toBe(direct.status);
      if (got.status === 'rejected' || direct.status === 'rejected') {
        expect(i).toBe(170);
        expect((got as PromiseRejectedResult).reason).toMatchObject({ code: 'COMPRESSION', file: files[i], message: ((direct as PromiseRejectedResult).reason as Error).message });
        continue;
      }
      expect({ ...got.value, modinfo: got.value.modinfo.entries }).toEqual({ ...direct.value, modinfo: direct.value.modinfo.entries });
      expect(got.value.modinfo.get('alias')).toBe(`a${i}`);
    }
    await expect(cache.read(bad)).rejects.toMatchObject({ code: 'ELF_FORMAT', file: bad });
  });
});

describe('the worker pool never holds the process', () => {
  it('a process that read many modules in bursts exits by itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kabi-pool-exit-'));
    for (let i = 0; i < 200; i++) writeFileSync(join(dir, `m${i}.ko`), buildModuleBytes({ name: `m${i}`, versions: [{ symbol: 'module_layout', crc: i }] }));
    const url = new URL('../../dist/src/compat/kernel-model.js', import.meta.url).href;
    // Two bursts with an idle gap between them: the pool closes after the first and a new one
    // serves the second; then the script simply ends, without closing anything. (A worker
    // that was started but never given a read kept the process alive.)
    const script = `
      const { ModuleCache } = await import(${JSON.stringify(url)});
      const cache = new ModuleCache();
      const path = (i) => ${JSON.stringify(dir)} + '/m' + i + '.ko';
      // One read at a time, as a plan does: only one worker is ever given work.
      const read = async (from, to) => {
        const out = [];
        for (let i = from; i < to; i++) out.push(await cache.read(path(i)));
        return out;
      };
      const a = await read(0, 120);
      await new Promise((r) => setTimeout(r, 50));
      const b = await read(120, 200);
      console.log(a.length + b.length, b[0].name);
    `;
    const file = join(dir, 'bursts.mjs');
    writeFileSync(file, script);
    const started = Date.now();
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.error, 'the process did not exit by itself').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('200 m120');
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
