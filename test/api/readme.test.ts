// Every example of the README's "Library" section runs, as written, against the built package
// (dist/lib/index.js, what `import … from 'kabi'` loads) in a Node process with a timeout: the
// image path it names is a fixture root, its module files fixture modules.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC } from '../../corpus/fixtures/system-root.js';
import { buildModuleBytes } from '../../corpus/fixtures/module-builder.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const LIB = pathToFileURL(new URL('../../dist/lib/index.js', import.meta.url).pathname).href;
const OLD = '6.1.0-18-amd64';
const NEW = '6.1.0-20-amd64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };

function librarySection(): string[] {
  const start = README.indexOf('\n## Library\n');
  const end = README.indexOf('\n## ', start + 1);
  expect(start).toBeGreaterThan(0);
  return [...README.slice(start, end).matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

function runExample(code: string, cwd: string) {
  const file = join(cwd, `example-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, code.replaceAll("from 'kabi'", `from '${LIB}'`));
  const r = spawnSync(process.execPath, [file], { cwd, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('the README’s library examples', () => {
  it('each runs as written (the image a fixture root) and does what its comments say', () => {
    const blocks = librarySection();
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    const fx = makeRoot('kabi-readme-');
    for (const r of [OLD, NEW]) addKernel(fx, { release: r, symvers: 'debian-headers', vmlinux: [{ symbol: 'printk', crc: 0x11 }], moduleStructSize: 0x380 });
    fx.write(`/lib/modules/${OLD}/updates/dkms/zfs.ko`, externalModule(OLD, { name: 'zfs', versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }], undefinedSymbols: ['printk'], thisModuleSize: 0x380 }));
    const cwd = mkdtempSync(join(tmpdir(), 'kabi-readme-cwd-'));
    writeFileSync(join(cwd, 'acme_nic.ko'), buildModuleBytes({ name: 'acme_nic', versions: [LAYOUT] }));

    const outputs: string[] = [];
    for (const block of blocks) {
      const r = runExample(block.replaceAll("'/mnt/image", `'${fx.root}`), cwd);
      expect(r, block).toMatchObject({ code: 0, err: '' });
      outputs.push(r.out);
    }
    // The high-level example planned a link into the other kernel whose target is the image's own
    // path of the module, applied it, ran depmod there, and printed the status as JSON.
    const target = `/lib/modules/${OLD}/updates/dkms/zfs.ko`;
    expect(outputs[0]).toContain(`'/lib/modules/${NEW}/weak-updates/dkms/zfs.ko -> ${target}'`);
    expect(readlinkSync(fx.path(`/lib/modules/${NEW}/weak-updates/dkms/zfs.ko`))).toBe(target);
    expect(readFileSync(fx.path(`/lib/modules/${NEW}/modules.dep`), 'utf8')).toContain('weak-updates/dkms/zfs.ko:');
    expect(outputs[0]).toContain('"state": "weak-linked"');
  });
});
