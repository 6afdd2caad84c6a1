import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildModuleBytes } from '../../corpus/fixtures/module-builder.js';

describe('the package', () => {
  it('exports the library API from dist (what `import … from "kabi"` loads), with types', async () => {
    expect(existsSync('dist/src/index.d.ts')).toBe(true);
    // The built file, typed by its source (dist/ exists once `npm test` has built).
    const kabi = (await import(new URL('../../dist/src/index.js', import.meta.url).href)) as typeof import('../../src/index.js');
    for (const name of ['readModule', 'readModuleFile', 'parseSymvers', 'discoverKernels', 'checkModules', 'planAddModules', 'applyPlan', 'rpmvercmp', 'KabiError', 'maybeDecompress']) {
      expect(typeof (kabi as Record<string, unknown>)[name], name).toBe('function');
    }
    const mod = kabi.readModule(buildModuleBytes({ name: 'api', versions: [{ symbol: 'module_layout', crc: 7 }] }));
    expect(mod.name).toBe('api');
    expect(kabi.formatCrc(mod.versions![0]!.crc)).toBe('0x00000007');
  });
});
