import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryIo } from '../../src/cli/io.js';
import { statusCommand } from '../../src/cli/commands/status.js';
import type { FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { everyStateRoot, K1, K2, K3, STORE } from './fixture.js';

type CellJson = {
  kernel: string;
  state: string;
  active: boolean;
  loads: boolean | null;
  file: string | null;
  link: string | null;
  target: string | null;
  builtFor: string | null;
  version: string | null;
  notes: { kind: string; message: string; by: string | null }[];
  reasons: { kind: string; severity: string; symbol: string | null; message: string }[];
};
type StatusJson = {
  format: string;
  version: number;
  root: string;
  running: string | null;
  kernels: { release: string; running: boolean }[];
  modules: { name: string; copies: { path: string; origin: string; builtFor: string | null; dkms: unknown }[]; cells: CellJson[] }[];
};

const roots: FixtureRoot[] = [];
afterAll(() => {
  for (const fx of roots) rmSync(fx.root, { recursive: true, force: true });
});

async function status(argv: string[], env: Record<string, string> = {}) {
  const io = memoryIo({ env });
  const code = await statusCommand.run(argv, io);
  return { code, out: io.out(), err: io.err() };
}

let cached: { fx: FixtureRoot; json: StatusJson } | undefined;
async function report() {
  if (!cached) {
    const fx = everyStateRoot();
    roots.push(fx);
    const r = await status(['--root', fx.root, '--store', STORE, '--json'], { KABI_KERNEL: K2 });
    expect(r.code).toBe(0);
    cached = { fx, json: JSON.parse(r.out) as StatusJson };
  }
  return cached;
}

function cell(j: StatusJson, name: string, kernel: string): CellJson {
  const row = j.modules.find((m) => m.name === name);
  if (!row) throw new Error(`no row ${name}`);
  const c = row.cells.find((x) => x.kernel === kernel);
  if (!c) throw new Error(`no cell ${name}/${kernel}`);
  return c;
}

const kinds = (c: CellJson) => c.notes.map((n) => n.kind);

describe('kabi status --json', () => {
  it('lists every kernel (running one marked) and every out-of-tree module, each with one cell per kernel', async () => {
    const { json } = await report();
    expect(json.format).toBe('kabi-status');
    expect(json.version).toBe(1);
    expect(json.kernels.map((k) => k.release)).toEqual([K1, K2, K3]);
    expect(json.kernels.map((k) => k.running)).toEqual([false, true, false]);
    expect(json.modules.map((m) => m.name)).toEqual(['chg', 'dk', 'drv', 'fwd', 'gone', 'net', 'shadow', 'vers']);
    for (const m of json.modules) expect(m.cells.map((c) => c.kernel)).toEqual([K1, K2, K3]);
  });

  it('built: a module in the kernel’s own tree, in extra/ or updates/dkms/', async () => {
    const { json } = await report();
    expect(cell(json, 'drv', K2)).toMatchObject({ state: 'built', active: true, loads: true, file: `/lib/modules/${K2}/extra/drv/drv.ko`, builtFor: K2 });
    expect(cell(json, 'dk', K1)).toMatchObject({ state: 'built', active: true, loads: true, file: `/lib/modules/${K1}/updates/dkms/dk.ko` });
  });

  it('weak-linked: says where the target was built and that it loads', async () => {
    const { json } = await report();
    expect(cell(json, 'drv', K1)).toMatchObject({
      state: 'weak-linked',
      active: true,
      loads: true,
      link: `/lib/modules/${K1}/weak-updates/drv/drv.ko`,
      target: `/lib/modules/${K2}/extra/drv/drv.ko`,
      builtFor: K2,
    });
    expect(cell(json, 'net', K3)).toMatchObject({ state: 'weak-linked', builtFor: K1 });
  });

  it('incompatible: the first reasons name the symbol', async () => {
    const { json } = await report();
    const c = cell(json, 'drv', K3);
    expect(c).toMatchObject({ state: 'incompatible', loads: false, active: false });
    expect(c.reasons[0]).toMatchObject({ kind: 'crc-mismatch', severity: 'error', symbol: 'printk' });
    expect(cell(json, 'chg', K3).reasons[0]).toMatchObject({ kind: 'unknown-symbol', symbol: 'k1_only' });
  });

  it('stale: a dangling link, and a link whose target changed so that it no longer loads', async () => {
    const { json } = await report();
    expect(cell(json, 'gone', K3)).toMatchObject({ state: 'stale', file: null, loads: null, target: `/lib/modules/${K1}/extra/gone.ko` });
    expect(kinds(cell(json, 'gone', K3))).toEqual(['target-gone']);
    const chg = cell(json, 'chg', K2);
    expect(chg).toMatchObject({ state: 'stale', loads: false, link: `/lib/modules/${K2}/weak-updates/chg.ko` });
    expect(kinds(chg)).toEqual(['target-changed']);
    expect(chg.reasons[0]).toMatchObject({ kind: 'unknown-symbol', symbol: 'k1_only' });
    // Kernels without any copy of `gone` say so instead of inventing reasons.
    expect(cell(json, 'gone', K1)).toMatchObject({ state: 'incompatible', file: null });
    expect(kinds(cell(json, 'gone', K1))).toEqual(['no-copy']);
  });

  it('compatible but not linked: shadowed by an in-tree module under the search order', async () => {
    const { json } = await report();
    const c = cell(json, 'shadow', K2);
    expect(c).toMatchObject({ state: 'compatible', loads: true, active: false, link: `/lib/modules/${K2}/weak-updates/shadow.ko` });
    expect(c.notes).toEqual([expect.objectContaining({ kind: 'shadowed', by: `/lib/modules/${K2}/kernel/drivers/misc/shadow.ko` })]);
  });

  it('compatible but not linked: an older version is the one that loads', async () => {
    const { json } = await report();
    for (const k of [K1, K2]) {
      const c = cell(json, 'vers', k);
      expect(c).toMatchObject({ state: 'compatible', version: '1.0', file: `${STORE}/vers/1.0/vers.ko` });
      expect(kinds(c)).toEqual(['older-version']);
    }
    expect(cell(json, 'vers', K3)).toMatchObject({ state: 'compatible', version: '2.0' });
    expect(kinds(cell(json, 'vers', K3))).toEqual(['not-linked']);
  });

  it('compatible but not linked: built for a newer kernel (forward-only policy), or plainly never linked', async () => {
    const { json } = await report();
    for (const k of [K1, K2]) expect(kinds(cell(json, 'fwd', k))).toEqual(['newer-build']);
    expect(cell(json, 'fwd', K3).state).toBe('built');
    expect(cell(json, 'net', K2)).toMatchObject({ state: 'compatible', builtFor: K1 });
    expect(kinds(cell(json, 'net', K2))).toEqual(['not-linked']);
  });

  it('DKMS: a build for this kernel that was never installed, and the copies of its tree', async () => {
    const { json } = await report();
    const c = cell(json, 'dk', K2);
    expect(c).toMatchObject({ state: 'compatible', file: `/var/lib/dkms/dk/1.0/${K2}/x86_64/module/dk.ko` });
    expect(kinds(c)).toEqual(['not-installed']);
    const origins = json.modules.find((m) => m.name === 'dk')!.copies.map((x) => [x.origin, x.dkms]);
    expect(origins).toEqual([
      ['tree', null],
      ['dkms', { module: 'dk', version: '1.0', kernel: K1, arch: 'x86_64' }],
      ['dkms', { module: 'dk', version: '1.0', kernel: K2, arch: 'x86_64' }],
    ]);
  });

  it('reads only: the tree is byte-for-byte the same afterwards', async () => {
    const { snapshot } = await import('../linker/helpers.js');
    const fx = everyStateRoot();
    roots.push(fx);
    const before = snapshot(fx.root);
    expect((await status(['--root', fx.root, '--store', STORE])).code).toBe(0);
    expect(snapshot(fx.root)).toEqual(before);
  });

  it('judges with depmod semantics on request (what weak-modules decides)', async () => {
    const { fx } = await report();
    const r = await status(['--root', fx.root, '--semantics', 'depmod', '--json']);
    const j = JSON.parse(r.out) as StatusJson;
    expect(cell(j, 'drv', K3).reasons[0]).toMatchObject({ kind: 'crc-mismatch', symbol: 'printk' });
    expect(cell(j, 'drv', K3).reasons[0]!.message).toMatch(/disagrees about version of symbol printk/);
  });
});

describe('kabi status (human)', () => {
  it('prints a matrix whose cells agree with the JSON, and explains what is not plainly fine', async () => {
    const { fx, json } = await report();
    const r = await status(['--root', fx.root, '--store', STORE], { KABI_KERNEL: K2 });
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('\x1b['); // not a terminal: no colour
    const lines = r.out.split('\n');
    expect(lines).toContain(`  [2] ${K2}  (running)`);
    const label: Record<string, (c: CellJson) => string> = {
      built: (c) => (c.active ? 'built' : 'built*'),
      'weak-linked': (c) => `linked<-[${[K1, K2, K3].indexOf(c.builtFor!) + 1}]`,
      compatible: () => 'compatible*',
      incompatible: () => 'incompatible',
      stale: () => 'stale!',
    };
    for (const m of json.modules) {
      const row = lines.find((l) => l.startsWith(m.name + ' '));
      expect(row, m.name).toBeDefined();
      const words = row!.trim().split(/\s+/);
      expect(words.slice(-3)).toEqual(m.cells.map((c) => label[c.state]!(c)));
    }
    expect(r.out).toContain(`drv on [3] ${K3}: incompatible`);
    expect(r.out).toContain(`/lib/modules/${K2}/kernel/drivers/misc/shadow.ko wins under this kernel's depmod search order`);
  });

  it('colours cells on a terminal only', async () => {
    const { fx } = await report();
    const io = memoryIo({ stdoutIsTTY: true });
    await statusCommand.run(['--root', fx.root], io);
    expect(io.out()).toContain('\x1b[32m');
  });

  it('--why explains one cell: every reason and the provider chain', async () => {
    const { fx } = await report();
    const r = await status(['--root', fx.root, '--why', 'drv', '--kernel', K3, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ format: 'kabi-status-why', module: 'drv', kernel: K3, cell: { state: 'incompatible' } });
    const vm = j.providers.find((p: { provider: string }) => p.provider === 'vmlinux');
    expect(vm.symbols).toContainEqual({ symbol: 'printk', wanted: '0x00000011', provided: '0x00000099', weak: false });
    const text = (await status(['--root', fx.root, '--why', `/lib/modules/${K2}/extra/drv/drv.ko`, '--kernel', K3])).out;
    expect(text).toMatch(/printk wants 0x00000011, gets 0x00000099 +<-- mismatch/);
    expect(text).toContain('Known copies:');
  });

  it('--why follows out-of-tree providers through weak-updates links', async () => {
    const { addKernel, makeRoot } = await import('../../corpus/fixtures/system-root.js');
    const { mod, link } = await import('./fixture.js');
    const fx = makeRoot('kabi-status-chain-');
    roots.push(fx);
    for (const r of [K1, K2]) addKernel(fx, { release: r, symvers: 'boot-gz', vmlinux: [{ symbol: 'printk', crc: 0x11 }], moduleStructSize: 0x380 });
    fx.write(`/lib/modules/${K1}/extra/prov.ko`, mod(K1, 'prov', { printk: 0x11 }, { exports: [{ symbol: 'prov_fn', crc: 0x55 }] }));
    fx.write(`/lib/modules/${K1}/extra/cons.ko`, mod(K1, 'cons', { prov_fn: 0x55 }));
    link(fx, `/lib/modules/${K2}/weak-updates/prov.ko`, `/lib/modules/${K1}/extra/prov.ko`);
    link(fx, `/lib/modules/${K2}/weak-updates/cons.ko`, `/lib/modules/${K1}/extra/cons.ko`);
    const j = JSON.parse((await status(['--root', fx.root, '--why', 'cons', '--kernel', K2, '--json'])).out);
    expect(j.cell.state).toBe('weak-linked');
    const prov = j.providers.find((p: { provider: string }) => p.provider === 'prov');
    expect(prov.path).toBe(`/lib/modules/${K2}/weak-updates/prov.ko`);
    expect(prov.providers[0]).toMatchObject({ provider: 'vmlinux', symbols: [expect.objectContaining({ symbol: 'printk' })] });
  });

  it('refuses --why without --kernel, an unknown kernel and an unknown module with exit 2', async () => {
    const { fx } = await report();
    const direct = async (argv: string[]) => {
      const io = memoryIo();
      try {
        return { code: await statusCommand.run(argv, io), err: io.err() };
      } catch (e) {
        return { code: 2, err: (e as Error).message };
      }
    };
    expect((await direct(['--root', fx.root, '--why', 'drv'])).code).toBe(2);
    expect((await direct(['--root', fx.root, '--why', 'drv', '--kernel', 'nope'])).err).toMatch(/kernel nope is not installed/);
    expect((await direct(['--root', fx.root, '--why', 'nope', '--kernel', K1])).err).toMatch(/no out-of-tree module called nope/);
  });
});
