// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi's `strip -g` (how dracut stores unsigned modules) against this machine's binutils
// strip, byte for byte: the test modules built with debug info, and a seeded sample of Debian's
// own modules of each architecture binutils here reads (their ELF part, signature cut off).

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { maybeDecompress } from '../../native-bindings/index.js';
import { compareModules } from '../../src/initramfs/module-compare.js';
import { isDebugSection, stripDebug } from '../../src/initramfs/strip-debug.js';
import { parseElf } from '../../src/elf/index.js';
import { splitSignature } from '../../src/module/signature.js';
import { cleanupTemps, tempDir } from '../initramfs/helpers.js';
import { loadCorpus } from './corpus.js';
import { moduleFiles } from './util.js';

afterAll(cleanupTemps);

/** A deterministic sample: every n-th file. */
function sample<T>(items: readonly T[], n: number): T[] {
  const step = Math.max(1, Math.floor(items.length / n));
  return items.filter((_, i) => i % step === 0).slice(0, n);
}

describe("kabi's strip -g is binutils' strip -g", () => {
  const corpus = loadCorpus();
  const dir = tempDir('kabi-strip-');
  const check = async (file: string) => {
    const elf = splitSignature((await maybeDecompress(readFileSync(file))).data).elf;
    const input = join(dir, 'in.ko');
    const ref = join(dir, 'ref.ko');
    writeFileSync(input, elf);
    execFileSync('strip', ['-g', '-o', ref, input]);
    const ours = stripDebug(elf, file);
    return { same: Buffer.from(ours).equals(readFileSync(ref)), loaderSame: compareModules(elf, ours) !== 'different', hadDebug: parseElf(elf).sections.some((s) => isDebugSection(s.name)) };
  };

  it('on the test modules (built with debug info): byte for byte, and what the loader reads is untouched', async () => {
    const files = corpus.kernels({ arch: 'amd64', built: true }).flatMap((k) => Object.values(k.builtModules!));
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      const r = await check(f);
      expect(r, f).toEqual({ same: true, loaderSame: true, hadDebug: true });
    }
  });

  it.each(['amd64', 'i386'] as const)("on a sample of Debian's %s modules", async (arch) => {
    const k = corpus.kernels({ arch, series: '6.1' })[0]!;
    for (const f of sample(moduleFiles(k.moduleDir), 150)) {
      const r = await check(f);
      expect(r.same && r.loaderSame, f).toBe(true);
    }
  });
});
