// kill -9 at every write of `kabi initramfs update`: the image is always wholly the old one or
// wholly the new one, and the next run removes what the killed one left, reaches the same
// result as a run that was never interrupted, and leaves nothing else beside the image or in
// the temporary directory.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseImage } from '../../src/initramfs/image.js';
import { ImageTree } from '../../src/initramfs/image-tree.js';
import { cleanupTemps, tempDir } from '../initramfs/helpers.js';
import { beta, K, makeImageSystem } from '../initramfs/image-system.js';

afterAll(cleanupTemps);

const DRIVER = join(import.meta.dirname, 'initramfs-kill-driver.mjs');

function kabi(args: string[], env: Record<string, string>) {
  if (!existsSync(join(import.meta.dirname, '../../dist/src/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  return spawnSync(process.execPath, [DRIVER, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000, killSignal: 'SIGKILL' });
}

function betaInImage(bytes: Uint8Array): Promise<Uint8Array | undefined> {
  return parseImage(bytes).then((img) => new ImageTree(img).readFile(`usr/lib/modules/${K}/kernel/drivers/beta.ko`));
}

describe('kill -9 at every write of kabi initramfs update', () => {
  it.each(['zstd', 'gzip'] as const)('%s image: old or new, never anything else; the next run finishes the job and leaves nothing', async (compression) => {
    const s = makeImageSystem({ compression, early: true });
    const newBeta = beta(K, '5');
    s.install(`/lib/modules/${K}/kernel/drivers/beta.ko`, newBeta);
    const pristine = tempDir('kabi-kill-pristine-');
    cpSync(s.root, pristine, { recursive: true, verbatimSymlinks: true });
    const oldBytes = readFileSync(s.imageHost);
    // TMPDIR is private to the test, so anything a run leaves there is seen.
    const tmp = mkdtempSync(join(tmpdir(), 'kabi-kill-tmp-'));
    const env = { TMPDIR: tmp };
    const args = ['initramfs', 'update', '--root', s.root, K];

    const count = kabi(args, { ...env, KABI_KILL_AT: '0' });
    expect(count.status, count.stderr).toBe(0);
    const writes = Number(/kabi-test-writes=(\d+)/.exec(count.stderr)?.[1]);
    expect(writes).toBeGreaterThan(5);
    const serial = await betaInImage(readFileSync(s.imageHost));
    expect(Buffer.from(serial!).equals(Buffer.from(newBeta))).toBe(true);

    for (let at = 1; at <= writes; at++) {
      rmSync(s.root, { recursive: true, force: true });
      cpSync(pristine, s.root, { recursive: true, verbatimSymlinks: true });
      const killed = kabi(args, { ...env, KABI_KILL_AT: String(at) });
      expect(killed.signal, `write ${at}: ${killed.stderr}`).toBe('SIGKILL');
      const what = /kabi-test-killed-at=\d+ (.*)/.exec(killed.stderr)?.[1] ?? '?';
      const now = readFileSync(s.imageHost);
      if (!Buffer.from(now).equals(Buffer.from(oldBytes))) {
        // Not the old image: then wholly the new one.
        const b = await betaInImage(now);
        expect(b !== undefined && Buffer.from(b).equals(Buffer.from(newBeta)), `killed at write ${at} (${what}): the image is neither old nor new`).toBe(true);
      }
      const again = kabi(args, env);
      expect(again.status, `rerun after write ${at} (${what}): ${again.stderr}`).toBe(0);
      const b = await betaInImage(readFileSync(s.imageHost));
      expect(b !== undefined && Buffer.from(b).equals(Buffer.from(newBeta)), `rerun after write ${at}`).toBe(true);
      expect(readdirSync(dirname(s.imageHost)).filter((n) => n.includes('kabi')), `left beside the image after write ${at} (${what})`).toEqual([]);
      expect(readdirSync(tmp), `left in TMPDIR after write ${at} (${what})`).toEqual([]);
    }
    rmSync(tmp, { recursive: true, force: true });
  });
});
