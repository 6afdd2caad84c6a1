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
    const bad = join(dir, 'bad.ko');
    writeFileSync(bad, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 9]));
    const cache = new ModuleCache();
    const pooled = await Promise.all(files.map((f) => cache.read(f)));
    for (let i = 0; i < files.length; i++) {
      const direct = await readModuleFile(files[i]!);
      expect({ ...pooled[i], modinfo: pooled[i]!.modinfo.entries }).toEqual({ ...direct, modinfo: direct.modinfo.entries });
      expect(pooled[i]!.modinfo.get('alias')).toBe(`a${i}`);
    }
    await expect(cache.read(bad)).rejects.toMatchObject({ code: 'ELF_FORMAT', file: bad });
  });
});
