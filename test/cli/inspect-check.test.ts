import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC } from '../../corpus/fixtures/system-root.js';
import { buildModuleBytes } from '../../corpus/fixtures/module-builder.js';
import { main } from '../../src/cli/main.js';
import { memoryIo } from '../../src/cli/io.js';

async function run(argv: string[], init: Parameters<typeof memoryIo>[0] = {}) {
  const io = memoryIo(init);
  const status = await main(argv, io);
  return { status, out: io.out(), err: io.err() };
}

const K = '6.1.0-99-amd64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };

describe('kabi inspect', () => {
  const fx = makeRoot();
  const file = fx.write('/m/demo.ko', buildModuleBytes({
    name: 'demo',
    versions: [LAYOUT, { symbol: 'printk', crc: 0x1234 }],
    undefinedSymbols: ['printk', { name: 'maybe', weak: true }],
    exports: [{ symbol: 'demo_fn', crc: 0xabc, gpl: true, namespace: 'DEMO' }],
    modinfo: [['alias', 'pci:v1d2*']],
    signature: { signer: 'Demo key' },
  }));

  it('prints the JSON shape of the README', async () => {
    const r = await run(['inspect', '--json', file]);
    expect(r.status).toBe(0);
    const [j] = JSON.parse(r.out);
    expect(j).toMatchObject({
      file,
      name: 'demo',
      vermagic: '6.1.0-99-amd64 SMP preempt mod_unload modversions ',
      license: 'GPL',
      depends: [],
      versions: [
        { symbol: 'module_layout', crc: '0x9060323f' },
        { symbol: 'printk', crc: '0x00001234' },
      ],
      undefined: ['printk', 'maybe'],
      exports: [{ symbol: 'demo_fn', crc: '0x00000abc', gpl: true, namespace: 'DEMO' }],
      signed: true,
    });
    expect(j.modinfo.alias).toEqual(['pci:v1d2*']);
    expect(j.signature.signer).toBe('Demo key');
  });

  it('prints modinfo-like text with the modversions list', async () => {
    const r = await run(['inspect', file]);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`filename:       ${file}\n`);
    expect(r.out).toContain('alias:          pci:v1d2*\n');
    expect(r.out).toContain('signer:         Demo key\n');
    expect(r.out).toMatch(/modversions \(2\):\n\t0x9060323f\tmodule_layout\n\t0x00001234\tprintk\n/);
  });

  it('exits 2 and names the file for a bad module, still printing the good ones', async () => {
    const bad = fx.write('/m/bad.ko', new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));
    const r = await run(['inspect', '--json', file, bad]);
    expect(r.status).toBe(2);
    expect(r.err).toContain(bad);
    expect(JSON.parse(r.out)).toHaveLength(1);
    const missing = await run(['inspect', '/nonexistent/x.ko']);
    expect(missing.status).toBe(2);
    expect(missing.err).toMatch(/\/nonexistent\/x\.ko.*cannot read/);
  });

  it('reads compressed modules (the same answer for .ko, .ko.xz, .ko.zst, .ko.gz)', async () => {
    const plain = await run(['inspect', '--json', file]);
    for (const [ext, cmd] of [['xz', ['xz', '-c', '--check=crc32']], ['zst', ['zstd', '-q', '-c']], ['gz', ['gzip', '-n', '-c']]] as const) {
      const c = fx.write(`/m/demo.ko.${ext}`, execFileSync(cmd[0], cmd.slice(1), { input: buildModuleBytes({
        name: 'demo',
        versions: [LAYOUT, { symbol: 'printk', crc: 0x1234 }],
        undefinedSymbols: ['printk', { name: 'maybe', weak: true }],
        exports: [{ symbol: 'demo_fn', crc: 0xabc, gpl: true, namespace: 'DEMO' }],
        modinfo: [['alias', 'pci:v1d2*']],
        signature: { signer: 'Demo key' },
      }) }));
      const r = await run(['inspect', '--json', c]);
      expect(r.status).toBe(0);
      const [j] = JSON.parse(r.out);
      const [p] = JSON.parse(plain.out);
      expect({ ...j, file: '', compression: null }).toEqual({ ...p, file: '' });
      expect(j.compression).toBe(ext === 'zst' ? 'zstd' : ext === 'gz' ? 'gzip' : 'xz');
    }
  });
});

describe('kabi check', () => {
  const fx = makeRoot();
  addKernel(fx, { release: K, vmlinux: [{ symbol: 'printk', crc: 0x11 }] });
  addKernel(fx, { release: '6.1.0-100-amd64', vmlinux: [{ symbol: 'printk', crc: 0x22 }] });
  const good = fx.write('/m/good.ko', externalModule(K, { name: 'good', versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }], undefinedSymbols: ['printk'], thisModuleSize: 0x500 }));

  it('prints a module × kernel table and exits 1 when a pair is incompatible', async () => {
    const r = await run(['check', '--root', fx.root, good]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/^module\s+6\.1\.0-99-amd64\s+6\.1\.0-100-amd64\s*\ngood\.ko\s+ok\s+incompatible\s*\n/);
    expect(r.out).toContain('good.ko on 6.1.0-100-amd64:\n  good: disagrees about version of symbol printk\n');
  });

  it('exits 0 when every pair is compatible and prints JSON verdicts', async () => {
    const r = await run(['check', '--root', fx.root, '--kernel', K, '--json', good]);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toEqual([
      {
        module: good,
        name: 'good',
        kernel: K,
        compatible: true,
        reasons: [
          { kind: 'taint', severity: 'warning', message: 'good: module verification failed: signature and/or required key missing - tainting kernel' },
          { kind: 'taint', severity: 'warning', message: 'good: loading out-of-tree module taints kernel.' },
        ],
      },
    ]);
  });

  it('uses depmod wording with --semantics depmod', async () => {
    const r = await run(['check', '--root', fx.root, '--semantics', 'depmod', '--json', '--kernel', '6.1.0-100-amd64', good]);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.out)[0].reasons).toEqual([{ kind: 'crc-mismatch', severity: 'error', symbol: 'printk', message: `${good} disagrees about version of symbol printk` }]);
  });

  it('exits 2 on usage errors and bad input', async () => {
    expect((await run(['check', '--root', fx.root])).status).toBe(2);
    expect((await run(['check', '--semantics', 'maybe', good])).status).toBe(2);
    expect((await run(['check', '--bogus', good])).status).toBe(2);
    const r = await run(['check', '--root', fx.root, '--kernel', '1.2.3', good]);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/kernel 1\.2\.3 is not installed/);
    const bad = fx.write('/m/trunc.ko', buildModuleBytes({ name: 'trunc' }).subarray(0, 100));
    const t = await run(['check', '--root', fx.root, bad]);
    expect(t.status).toBe(2);
    expect(t.err).toContain(bad);
  });
});

describe('the bundled bin', () => {
  it('runs kabi --help from dist/ (npm test builds first)', () => {
    const bin = 'dist/bin/kabi.js';
    expect(existsSync(bin), 'run npm run build first').toBe(true);
    const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Usage: kabi <command>/);
    expect(r.stdout).toMatch(/check\s+decide whether modules load/);
  });
});
