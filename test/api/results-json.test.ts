// Every result of the public API goes through JSON.stringify: CRCs as the `0x…` strings the CLI
// prints, Maps as objects; and a root that does not exist is an error, not an empty answer.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC } from '../../corpus/fixtures/system-root.js';
import * as kabi from '../../src/index.js';

const K = '6.1.0-99-amd64';
const K2 = '6.1.0-100-amd64';
const fx = makeRoot();
for (const release of [K, K2]) addKernel(fx, { release, vmlinux: [{ symbol: 'printk', crc: 0x11111111 }, { symbol: 'wide', crc: 0x0abc }], dirs: ['extra', 'weak-updates'] });
const spec = (name: string) => ({
  name,
  versions: [
    { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC },
    { symbol: 'printk', crc: 0x11111111 },
  ],
  undefinedSymbols: ['printk'],
  exports: [{ symbol: `${name}_api`, crc: 5 }],
});
const MOD = fx.write(`/lib/modules/${K}/extra/m.ko`, externalModule(K, spec('m')));

const roundTrip = (v: unknown): any => JSON.parse(JSON.stringify(v));

describe('results as JSON', () => {
  it('a module: CRCs as 0x strings of at least 8 digits, modinfo as key → values', async () => {
    for (const mod of [await kabi.readModuleFile(MOD), kabi.readModule(readFileSync(MOD), { file: MOD }), await kabi.readModuleBytes(readFileSync(MOD))]) {
      const j = roundTrip(mod);
      expect(j.versions).toEqual([
        { symbol: 'module_layout', crc: '0x9060323f' },
        { symbol: 'printk', crc: '0x11111111' },
      ]);
      expect(j.exports[0]).toMatchObject({ symbol: 'm_api', crc: '0x00000005', gplOnly: false });
      expect(j.crcSymbols).toEqual([{ symbol: 'm_api', crc: '0x00000005' }]);
      expect(j.modinfo.name).toEqual(['m']);
      expect(j.name).toBe('m');
      // Nothing else changed: the JSON form is the data, field for field.
      expect(Object.keys(j).sort()).toEqual(Object.keys(mod).filter((k) => (mod as unknown as Record<string, unknown>)[k] !== undefined).sort());
      expect(kabi.toJsonValue(mod)).toBe(mod); // it has its own toJSON, which JSON.stringify calls
    }
  });

  it('a symvers table: its entries with CRCs as strings, not its index', () => {
    const t = kabi.parseSymvers('0x0000abcd\tfoo\tvmlinux\tEXPORT_SYMBOL_GPL\tNS\n', { file: 'Module.symvers' });
    expect(roundTrip(t)).toEqual({
      file: 'Module.symvers',
      format: 'ns-last',
      entries: [{ crc: '0x0000abcd', symbol: 'foo', module: 'vmlinux', exportType: 'EXPORT_SYMBOL_GPL', namespace: 'NS', line: 1 }],
    });
  });

  it('checkModules: verdicts, kernels, and the notes per kernel as an object', async () => {
    const r = await kabi.checkModules([MOD], { root: fx.root });
    const j = roundTrip(r);
    expect(j.verdicts).toEqual(roundTrip(r.verdicts));
    expect(j.verdicts.map((v: kabi.Verdict) => [v.kernel, v.compatible])).toEqual([
      [K, true],
      [K2, true],
    ]);
    expect(Object.keys(j.notes)).toEqual([K, K2]);
    expect(j.kernels.map((k: kabi.InstalledKernel) => k.release)).toEqual([K, K2]);
  });

  it('a kernel model: exports keyed by symbol with CRCs as strings, modules keyed by name', async () => {
    const [k] = await kabi.discoverKernels({ root: fx.root });
    const j = roundTrip(await kabi.loadKernelModel(k!));
    expect(j.vmlinux.printk).toMatchObject({ symbol: 'printk', crc: '0x11111111', owner: 'vmlinux' });
    expect(j.vmlinux.wide.crc).toBe('0x00000abc');
    expect(j.depmodVmlinux.printk).toBe('0x11111111');
    expect(j.modules.m).toMatchObject({ name: 'm', path: `/lib/modules/${K}/extra/m.ko` });
    expect(j.symversTable.entries.length).toBeGreaterThan(0);
    expect(j.release).toBe(K);
  });

  it('a module tree: the chosen file per name as an object', async () => {
    const config = await kabi.loadDepmodConfig(kabi.nodeFs, fx.root, K);
    const j = roundTrip(await kabi.scanModuleTree(kabi.nodeFs, fx.root, `/lib/modules/${K}`, config));
    expect(j.chosen.m).toMatchObject({ name: 'm', path: `/lib/modules/${K}/extra/m.ko` });
  });

  it('plain-data results (kernels, plans) come back unchanged', async () => {
    const kernels = await kabi.discoverKernels({ root: fx.root });
    expect(roundTrip(kernels)).toEqual(kernels);
    const plan = await kabi.planAddModules([MOD], { root: fx.root });
    expect(roundTrip(plan)).toEqual(roundTrip(kabi.toJsonValue(plan)));
    expect(plan.kernels.length).toBe(2);
  });

  it('modules read on worker threads (the built library, many files) have the same JSON form', async () => {
    expect(existsSync('dist/lib/index.js'), 'run npm run build first').toBe(true);
    const built = (await import(new URL('../../dist/lib/index.js', import.meta.url).href)) as typeof kabi;
    const files = Array.from({ length: 80 }, (_, i) => fx.write(`/opt/many/m${i}.ko`, externalModule(K, spec(`m${i}`))));
    const cache = new built.ModuleCache();
    const mods = await Promise.all(files.map((f) => cache.read(f)));
    for (const [i, m] of mods.entries()) expect(roundTrip(m).exports[0]).toMatchObject({ symbol: `m${i}_api`, crc: '0x00000005' });
  });
});

describe('a root that does not exist', () => {
  it('checkModules throws KabiError ROOT_NOT_FOUND naming it (not zero verdicts)', async () => {
    for (const root of ['/nonexistent-kabi-root', MOD]) {
      const e = await kabi.checkModules([MOD], { root }).catch((x: unknown) => x);
      expect(kabi.isKabiError(e), String(e)).toBe(true);
      expect(e).toMatchObject({ code: 'ROOT_NOT_FOUND', file: root });
      expect((e as Error).message).toBe(`${root}: the system root does not exist or is not a directory`);
    }
  });
});
