import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildModuleBytes } from '../../corpus/fixtures/module-builder.js';
import { nodeFs, READ_BUDGETS, type KabiFs } from '../../src/fs.js';
import { readModuleFile } from '../../src/module/read-module.js';

// Issue 12 item 5: a module is a regular file within READ_BUDGETS.module (256 MiB) as stored
// and as decompressed, or refused with a typed error naming the file and the limit.

const dir = mkdtempSync(join(tmpdir(), 'kabi-read-budget-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);
const proxied: KabiFs = new Proxy(nodeFs, {});

execFileSync('mkfifo', [at('fifo.ko')]);
writeFileSync(at('sparse.ko'), '');
truncateSync(at('sparse.ko'), READ_BUDGETS.module.maxBytes + 1);
// Streamed (no declared size), and from a file (zstd declares it).
execFileSync('sh', ['-c', `head -c 300M /dev/zero | zstd -q -1 -c > ${at('streamed.ko.zst')}`]);
writeFileSync(at('zeros'), '');
truncateSync(at('zeros'), 300 << 20);
execFileSync('sh', ['-c', `zstd -q -1 -c ${at('zeros')} > ${at('declared.ko.zst')} && rm ${at('zeros')}`]);
writeFileSync(at('good.ko'), buildModuleBytes({ name: 'good' }));

describe('readModuleFile budgets', () => {
  for (const [name, fs] of [['node:fs', undefined], ['another KabiFs', proxied]] as const) {
    it(`${name}: a FIFO and a device are refused at once`, async () => {
      await expect(readModuleFile(at('fifo.ko'), { fs })).rejects.toMatchObject({ code: 'NOT_A_FILE', file: at('fifo.ko'), detail: 'refusing to read a FIFO as a module: only regular files are read' });
      await expect(readModuleFile('/dev/zero', { fs })).rejects.toMatchObject({ code: 'NOT_A_FILE', file: '/dev/zero' });
    });

    it(`${name}: a file past the budget is refused before it is read`, async () => {
      await expect(readModuleFile(at('sparse.ko'), { fs })).rejects.toMatchObject({ code: 'LIMIT', file: at('sparse.ko'), detail: 'is more than the 256 MiB limit for a module' });
    });
  }

  it.each(['streamed.ko.zst', 'declared.ko.zst'])('a bomb stops at the budget: %s', { timeout: 20_000 }, async (name) => {
    await expect(readModuleFile(at(name))).rejects.toMatchObject({ code: 'LIMIT', file: at(name), detail: 'decompresses to more than the 256 MiB limit for a module' });
  });

  it('the reader pool’s workers report the same typed errors', { timeout: 20_000 }, async () => {
    // The built pool: workers run the compiled worker script (npm test builds first).
    const { ModuleReaderPool } = (await import(new URL('../../dist/src/module/reader-pool.js', import.meta.url).href)) as typeof import('../../src/module/reader-pool.js');
    const pool = ModuleReaderPool.create(2)!;
    try {
      await expect(pool.read(at('fifo.ko'))).rejects.toMatchObject({ code: 'NOT_A_FILE', file: at('fifo.ko') });
      await expect(pool.read(at('streamed.ko.zst'))).rejects.toMatchObject({ code: 'LIMIT', file: at('streamed.ko.zst') });
      expect((await pool.read(at('good.ko'))).name).toBe('good');
    } finally {
      pool.close();
    }
  });
});
