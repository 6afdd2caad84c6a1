import { afterEach, describe, expect, it, vi } from 'vitest';

/*
 * The flavor is probed once per process, so each test loads kmod-flavor.ts anew.
 */
afterEach(() => {
  vi.doUnmock('node:child_process');
  vi.resetModules();
});

describe('installedKmodFlavorSoon', () => {
  it('answers what installedKmodFlavor answers, from one probe, and the later synchronous call runs nothing', async () => {
    const sync = (await import('../../src/depmod/kmod-flavor.js')).installedKmodFlavor();
    vi.resetModules();
    const cp = await vi.importActual<typeof import('node:child_process')>('node:child_process');
    const spawnSync = vi.fn(cp.spawnSync);
    const execFile = vi.fn(cp.execFile);
    vi.doMock('node:child_process', () => ({ ...cp, spawnSync, execFile }));
    const m = await import('../../src/depmod/kmod-flavor.js');
    const [a, b] = await Promise.all([m.installedKmodFlavorSoon(), m.installedKmodFlavorSoon()]);
    expect(a).toEqual(sync);
    expect(b).toEqual(sync);
    expect(execFile).toHaveBeenCalledTimes(1);
    expect(m.installedKmodFlavor()).toEqual(sync);
    expect(spawnSync).not.toHaveBeenCalled();
  });

  it('falls back to the kmod 30 default when no depmod answers, trying each place once', async () => {
    const cp = await vi.importActual<typeof import('node:child_process')>('node:child_process');
    const execFile = vi.fn((_cmd: string, _args: string[], _opts: object, done: (e: Error | null, out: string) => void) => {
      done(Object.assign(new Error('spawn depmod ENOENT'), { code: 'ENOENT' }), '');
    });
    vi.doMock('node:child_process', () => ({ ...cp, execFile }));
    const m = await import('../../src/depmod/kmod-flavor.js');
    const f = await m.installedKmodFlavorSoon();
    expect(f).toMatchObject({ version: 30, source: 'default (no depmod found)', layout: 'post-order' });
    expect(f.extensions).toEqual(['.ko', '.ko.gz', '.ko.xz', '.ko.zst']);
    expect(execFile.mock.calls.map((c) => c[0])).toEqual(['depmod', '/usr/sbin/depmod', '/sbin/depmod']);
  });

  it('a spawn that throws at once (E2BIG, ENOMEM) is no answer, not a rejection', async () => {
    const cp = await vi.importActual<typeof import('node:child_process')>('node:child_process');
    const execFile = vi.fn(() => {
      throw Object.assign(new Error('spawn E2BIG'), { code: 'E2BIG' });
    });
    vi.doMock('node:child_process', () => ({ ...cp, execFile }));
    const m = await import('../../src/depmod/kmod-flavor.js');
    expect(await m.installedKmodFlavorSoon()).toMatchObject({ version: 30, source: 'default (no depmod found)' });
    expect(execFile).toHaveBeenCalledTimes(3);
  });

  it('reads the version and features of the first depmod that prints them', async () => {
    const cp = await vi.importActual<typeof import('node:child_process')>('node:child_process');
    const execFile = vi.fn((cmd: string, _args: string[], _opts: object, done: (e: Error | null, out: string) => void) => {
      if (cmd === 'depmod') done(null, 'not kmod\n');
      else done(null, 'kmod version 34\n+ZSTD +XZ -ZLIB +LIBCRYPTO -EXPERIMENTAL\n');
    });
    vi.doMock('node:child_process', () => ({ ...cp, execFile }));
    const m = await import('../../src/depmod/kmod-flavor.js');
    expect(await m.installedKmodFlavorSoon()).toMatchObject({ version: 34, layout: 'pre-order', weakdep: true, extensions: ['.ko', '.ko.xz', '.ko.zst'] });
    expect(execFile).toHaveBeenCalledTimes(2);
  });
});
