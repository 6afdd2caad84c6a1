// The high-level API (src/api/, exported from src/index.ts) does what the kabi commands do,
// with the same defaults: the loader's rules, links as the installed system sees them, depmod
// finished in the same run, and a root that does not exist is an error, never an empty answer.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { memoryIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { apply, check, explain, initramfs, inspect, isKabiError, plan, preserve, status } from '../../src/index.js';
import { weakLinks } from '../linker/helpers.js';

const OLD = '6.1.0-10-amd64';
const NEW = '6.1.0-30-amd64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };

function root(): FixtureRoot {
  const fx = makeRoot('kabi-api-');
  for (const r of [OLD, NEW]) addKernel(fx, { release: r, symvers: 'debian-headers', vmlinux: [{ symbol: 'printk', crc: 0x11 }, { symbol: 'gpl_fn', crc: 0x22, gpl: true }], moduleStructSize: 0x380 });
  return fx;
}

const mod = (fx: FixtureRoot, name: string, extra: object = {}) =>
  fx.write(`/lib/modules/${OLD}/updates/dkms/${name}.ko`, externalModule(OLD, { name, versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }], undefinedSymbols: ['printk'], thisModuleSize: 0x380, ...extra }));
/** Loads as depmod (and weak-modules) judges, but not as the loader does: a proprietary module using a GPL-only symbol. */
const proprietary = (fx: FixtureRoot) => mod(fx, 'prop', { license: 'Proprietary', versions: [LAYOUT, { symbol: 'gpl_fn', crc: 0x22 }], undefinedSymbols: ['gpl_fn'] });

async function kabi(argv: string[], env: Record<string, string> = {}) {
  const io = memoryIo({ env });
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

describe('the high-level API has the CLI’s defaults', () => {
  it('plan() and check() judge with the loader’s rules, as kabi link and kabi check do (depmod’s only when asked)', async () => {
    const fx = root();
    const m = proprietary(fx);
    const p = await plan({ add: [m] }, { root: fx.root });
    expect(p.kernels.flatMap((k) => k.ops)).toEqual([]);
    const cli = JSON.parse((await kabi(['link', '--root', fx.root, '--add', '--dry-run', '--json', m])).out) as { kernels: { ops: unknown[] }[] };
    expect(cli.kernels.flatMap((k) => k.ops)).toEqual([]);
    expect((await plan({ add: [m] }, { root: fx.root, semantics: 'depmod' })).kernels.find((k) => k.release === NEW)!.ops.map((o) => o.target)).toEqual([`/lib/modules/${OLD}/updates/dkms/prop.ko`]);

    const c = await check([m], { root: fx.root });
    expect(c.verdicts.map((v) => v.compatible)).toEqual([false, false]);
    const cliCheck = await kabi(['check', '--root', fx.root, '--json', m]);
    expect(cliCheck.code).toBe(1);
    expect((await check([m], { root: fx.root, semantics: 'depmod' })).verdicts.every((v) => v.compatible)).toBe(true);
  });

  it('apply() with { root: image } writes link targets as the installed system sees them, and finishes depmod', async () => {
    const fx = root();
    const m = mod(fx, 'drv');
    const r = await apply({ add: [m] }, { root: fx.root });
    expect(r.failed).toEqual([]);
    expect(r.interrupted).toBeUndefined();
    // The target is the system's path, not fx.root's: it resolves inside the image once booted.
    expect(weakLinks(fx.root, NEW)).toEqual({ 'dkms/drv.ko': `/lib/modules/${OLD}/updates/dkms/drv.ko` });
    // depmod ran for the changed kernel in the same call: modprobe finds the link.
    const dep = readFileSync(fx.path(`/lib/modules/${NEW}/modules.dep`), 'utf8');
    expect(dep).toContain('weak-updates/dkms/drv.ko:');
    expect(existsSync(fx.path(`/lib/modules/${NEW}/modules.dep.bin`))).toBe(true);
    // Its result prints as JSON (no bigint left in it).
    expect(() => JSON.stringify(r)).not.toThrow();
    expect(JSON.parse(JSON.stringify(r)).plan.mode).toBe('add-modules');
  });

  it('apply() of a plan made earlier does the same as apply() of the request; a dry run changes nothing', async () => {
    const fx = root();
    const m = mod(fx, 'drv');
    const p = await plan({ add: [m] }, { root: fx.root });
    const dry = await apply(p, { dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(weakLinks(fx.root, NEW)).toEqual({});
    expect(existsSync(fx.path(`/lib/modules/${NEW}/modules.dep`))).toBe(false);
    await apply(p, {});
    expect(Object.keys(weakLinks(fx.root, NEW))).toEqual(['dkms/drv.ko']);
    expect(readFileSync(fx.path(`/lib/modules/${NEW}/modules.dep`), 'utf8')).toContain('weak-updates/dkms/drv.ko:');
  });

  it('apply({ removeKernel }) takes kabi\'s depmod cache of that kernel with it, as kabi link --remove-kernel', async () => {
    const fx = root();
    mkdirSync(fx.path('/var/cache'), { recursive: true });
    await apply({ add: [mod(fx, 'drv')] }, { root: fx.root });
    const cache = (k: string) => fx.path(`/var/cache/kabi/depmod/${k}`);
    expect(existsSync(cache(NEW))).toBe(true);
    await apply({ removeKernel: NEW }, { root: fx.root });
    expect(weakLinks(fx.root, NEW)).toEqual({});
    expect(existsSync(cache(NEW))).toBe(false);
    expect((await kabi(['link', '--root', fx.root, '--remove-kernel', OLD])).code).toBe(0);
    expect(existsSync(cache(OLD))).toBe(false);
  });

  it('kernels: only those kernels change, as kabi link --kernel', async () => {
    const fx = root();
    addKernel(fx, { release: '6.1.0-40-amd64', symvers: 'debian-headers', vmlinux: [{ symbol: 'printk', crc: 0x11 }], moduleStructSize: 0x380 });
    const m = mod(fx, 'drv');
    await apply({ add: [m] }, { root: fx.root, kernels: [NEW] });
    expect(Object.keys(weakLinks(fx.root, NEW))).toEqual(['dkms/drv.ko']);
    expect(weakLinks(fx.root, '6.1.0-40-amd64')).toEqual({});
    await expect(apply({ add: [m] }, { root: fx.root, kernels: ['9.9.9'] })).rejects.toMatchObject({ code: 'KERNEL_NOT_FOUND' });
  });

  it('status() is kabi status --json, with --kernel', async () => {
    const fx = root();
    await apply({ add: [mod(fx, 'drv')] }, { root: fx.root });
    const s = await status({ root: fx.root, kernels: [NEW] });
    expect(s.kernels.map((k) => k.release)).toEqual([NEW]);
    const cli = await kabi(['status', '--root', fx.root, '--kernel', NEW, '--json']);
    expect(cli.code).toBe(0);
    expect(JSON.parse(JSON.stringify(s))).toEqual(JSON.parse(cli.out));
    expect((await explain('drv', NEW, { root: fx.root })).cell.state).toBe('weak-linked');
  });

  it('inspect() reads files and looks names up in the root’s kernel, as kabi inspect does', async () => {
    const fx = root();
    const m = mod(fx, 'my-drv');
    const [byFile, byName] = await inspect([m, 'my_drv'], { root: fx.root, kernel: OLD });
    expect(byFile!.module!.name).toBe('my-drv');
    // By name: the system's path of the file, as the installed system sees it.
    expect(byName!.file).toBe(`/lib/modules/${OLD}/updates/dkms/my-drv.ko`);
    const errors: string[] = [];
    const found = await inspect(['nosuch', m], { root: fx.root, kernel: OLD, onError: (e, t) => errors.push(`${t}: ${e.code}`) });
    expect(found.map((f) => f.target)).toEqual([m]);
    expect(errors).toEqual(['nosuch: IO']);
  });

  it('preserve and initramfs calls are kabi preserve and kabi initramfs, and print as their --json', async () => {
    const fx = root();
    mod(fx, 'drv');
    const saved = await preserve.save({ root: fx.root, kernel: OLD });
    expect(saved.saved).toBe(true);
    const list = await preserve.list({ root: fx.root });
    expect(list.map((x) => x.release)).toEqual([OLD]);
    expect(JSON.parse(JSON.stringify(list))).toEqual(JSON.parse((await kabi(['preserve', 'list', '--root', fx.root, '--json'])).out));
    // Another root has no running kernel of its own: it must be named.
    await expect(preserve.save({ root: fx.root })).rejects.toMatchObject({ code: 'USAGE' });
    const img = await initramfs.check(NEW, { root: fx.root });
    expect(img.exists).toBe(false);
    // The CLI spells an absent value null where the JSON form leaves it out.
    const cli = JSON.parse((await kabi(['initramfs', 'check', '--root', fx.root, '--json', NEW])).out, (_k, v: unknown) => (v === null ? undefined : v));
    expect(JSON.parse(JSON.stringify(img))).toEqual(cli);
    // An image that was never built is not created.
    expect((await initramfs.update(NEW, { root: fx.root })).action).toBe('none');
  });

  it('a root that does not exist is ROOT_NOT_FOUND from every call, as from every command (dry runs too)', async () => {
    const missing = join(makeRoot('kabi-api-gone-').root, 'typo');
    const calls: [string, () => Promise<unknown>][] = [
      ['check', () => check(['/x.ko'], { root: missing })],
      ['plan', () => plan({ add: ['/x.ko'] }, { root: missing })],
      ['apply', () => apply({ add: ['/x.ko'] }, { root: missing, dryRun: true })],
      ['status', () => status({ root: missing })],
      ['explain', () => explain('x', 'k', { root: missing })],
      ['inspect', () => inspect(['x'], { root: missing, kernel: 'k' })],
      ['initramfs.check', () => initramfs.check('k', { root: missing })],
      ['initramfs.update', () => initramfs.update('k', { root: missing, dryRun: true })],
      ['preserve.save', () => preserve.save({ root: missing, kernel: 'k' })],
      ['preserve.list', () => preserve.list({ root: missing })],
    ];
    for (const [name, call] of calls) {
      const e = await call().then(() => undefined, (x: unknown) => x);
      expect(isKabiError(e) && e.code, name).toBe('ROOT_NOT_FOUND');
    }
    for (const argv of [
      ['link', '--root', missing, '--add', '--dry-run', '/x.ko'],
      ['check', '--root', missing, '/x.ko'],
      ['status', '--root', missing],
      ['initramfs', 'check', '--root', missing, 'k'],
      ['preserve', 'list', '--root', missing],
      ['inspect', '--root', missing, '-k', 'k', 'x'],
    ]) {
      const r = await kabi(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toContain(missing);
    }
    // $KABI_ROOT is the same root for every command, and is named as where it came from.
    for (const argv of [['link', '--add', '--dry-run', '/x.ko'], ['check', '/x.ko'], ['status'], ['initramfs', 'check', 'k'], ['preserve', 'list']]) {
      const r = await kabi(argv, { KABI_ROOT: missing });
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toContain('$KABI_ROOT');
    }
  });

  it('a root without kernels is KERNEL_NOT_FOUND from check(), not zero verdicts', async () => {
    const fx = makeRoot('kabi-api-empty-');
    const m = fx.write('/opt/x.ko', externalModule(OLD, { name: 'x', versions: [LAYOUT] }));
    await expect(check([m], { root: fx.root })).rejects.toMatchObject({ code: 'KERNEL_NOT_FOUND' });
  });
});
