import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileEquals, nodeFs, READ_BUDGETS, readRegularFile, readRegularFileSync, type KabiFs } from '../../src/fs.js';
import { confinedPath, hostPath, readSystemFile, resolveEntryInRoot, resolveInRoot } from '../../src/kernel/paths.js';
import { KabiError } from '../../src/errors.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function root(): string {
  const r = mkdtempSync(join(tmpdir(), 'kabi-paths-'));
  dirs.push(r);
  return r;
}

/** A KabiFs that is not node:fs itself (the promise-based paths of the readers). */
const proxied: KabiFs = new Proxy(nodeFs, {});

/** A KabiFs whose file handles say every file is `size` bytes long (as if it grew after fstat). */
function sizeSaying(size: number): KabiFs {
  return new Proxy(nodeFs, {
    get: (t, k) =>
      k === 'open'
        ? async (...a: Parameters<KabiFs['open']>) => {
            const h = await nodeFs.open(...a);
            const tell = async () => Object.assign(await h.stat(), { size });
            return new Proxy(h, {
              get: (ht, hk) => {
                if (hk === 'stat') return tell;
                const v: unknown = Reflect.get(ht, hk);
                return typeof v === 'function' ? v.bind(ht) : v;
              },
            });
          }
        : Reflect.get(t, k),
  });
}

describe('hostPath', () => {
  it('never climbs out of the root by its spelling', () => {
    expect(hostPath('/r', '/../../etc/passwd')).toBe('/r/etc/passwd');
    expect(hostPath('/r', 'lib/../../x')).toBe('/r/x');
    expect(hostPath('/', '/lib/modules')).toBe('/lib/modules');
  });
});

describe('confinedPath', () => {
  it('resolves links on the way inside the root, absolute ones from the root', async () => {
    const r = root();
    mkdirSync(join(r, 'usr/lib/modules/K'), { recursive: true });
    mkdirSync(join(r, 'lib/modules'), { recursive: true });
    symlinkSync('/usr/lib/modules/K', join(r, 'lib/modules/K'));
    expect(await confinedPath(nodeFs, r, '/lib/modules/K/modules.dep')).toBe(join(r, 'usr/lib/modules/K/modules.dep'));
    expect(await confinedPath(nodeFs, r, '/lib/modules/K')).toBe(join(r, 'usr/lib/modules/K'));
  });

  it('an absolute link to a host directory leads to that path inside the root, never to the host', async () => {
    const r = root();
    const host = root();
    mkdirSync(join(r, 'lib/modules'), { recursive: true });
    symlinkSync(host, join(r, 'lib/modules/K'));
    expect(await confinedPath(nodeFs, r, '/lib/modules/K/modules.dep')).toBe(join(r, host, 'modules.dep'));
    symlinkSync('../../../../../../../../..' + host, join(r, 'lib/modules/K2'));
    expect(await confinedPath(nodeFs, r, '/lib/modules/K2/x')).toBe(join(r, host, 'x'));
  });

  it('keeps a missing tail as spelled, and leaves a final link alone with followLast: false', async () => {
    const r = root();
    mkdirSync(join(r, 'var'), { recursive: true });
    symlinkSync('/elsewhere', join(r, 'var/cache'));
    expect(await confinedPath(nodeFs, r, '/var/cache/kabi/depmod')).toBe(join(r, 'elsewhere/kabi/depmod'));
    expect(await confinedPath(nodeFs, r, '/var/cache', { followLast: false })).toBe(join(r, 'var/cache'));
    expect(await confinedPath(nodeFs, r, '/nope/../var/x')).toBe(join(r, 'var/x'));
  });

  it('a link loop is an error, not a hang', async () => {
    const r = root();
    symlinkSync('b', join(r, 'a'));
    symlinkSync('a', join(r, 'b'));
    await expect(confinedPath(nodeFs, r, '/a/x')).rejects.toMatchObject({ code: 'UNSAFE_PATH' });
  });
});

describe('resolveEntryInRoot', () => {
  it('follows one entry of a resolved directory as resolveInRoot follows the whole path', async () => {
    const r = root();
    mkdirSync(join(r, 'a/b'), { recursive: true });
    writeFileSync(join(r, 'a/f'), '');
    symlinkSync('../f', join(r, 'a/b/rel'));
    symlinkSync('/a/f', join(r, 'a/b/abs'));
    symlinkSync('/nowhere', join(r, 'a/b/dangling'));
    for (const name of ['rel', 'abs', 'dangling']) {
      expect(await resolveEntryInRoot(nodeFs, r, join(r, 'a/b'), name)).toBe(await resolveInRoot(nodeFs, r, join(r, 'a/b', name)));
    }
    expect(await resolveEntryInRoot(nodeFs, r, join(r, 'a/b'), 'abs')).toBe(join(r, 'a/f'));
    // With "/" as the root (kmod's depmod -b), an absolute target is the host's.
    expect(await resolveEntryInRoot(nodeFs, '/', join(r, 'a/b'), 'dangling')).toBeUndefined();
  });
});

describe('readRegularFile', () => {
  const budget = { what: 'test file', maxBytes: 1000 };
  for (const [name, fs] of [['node:fs', nodeFs], ['another KabiFs', proxied]] as const) {
    it(`${name}: refuses a FIFO without waiting on it, and a device`, async () => {
      const r = root();
      execFileSync('mkfifo', [join(r, 'fifo')]);
      await expect(readRegularFile(fs, join(r, 'fifo'), budget)).rejects.toMatchObject({ code: 'NOT_A_FILE', file: join(r, 'fifo'), detail: 'refusing to read a FIFO as a test file: only regular files are read' });
      await expect(readRegularFile(fs, '/dev/zero', budget)).rejects.toMatchObject({ code: 'NOT_A_FILE' });
      await expect(readRegularFile(fs, r, budget)).rejects.toMatchObject({ code: 'NOT_A_FILE', detail: expect.stringMatching(/a directory/) });
    });

    it(`${name}: refuses a file past the budget before reading it, reads one at the budget`, async () => {
      const r = root();
      truncateSync((writeFileSync(join(r, 'big'), ''), join(r, 'big')), 1001);
      writeFileSync(join(r, 'ok'), Buffer.alloc(1000, 7));
      await expect(readRegularFile(fs, join(r, 'big'), budget)).rejects.toMatchObject({ code: 'LIMIT', detail: 'is more than the 1000 bytes limit for a test file' });
      expect((await readRegularFile(fs, join(r, 'ok'), budget)).equals(Buffer.alloc(1000, 7))).toBe(true);
      await expect(readRegularFile(fs, join(r, 'missing'), budget)).rejects.toMatchObject({ code: 'ENOENT' });
    });
  }

  it('a file longer than its size said (it grew meanwhile) is read whole, and refused once past the budget', async () => {
    const r = root();
    writeFileSync(join(r, 'grew'), Buffer.alloc(900, 5));
    // fstat says 100 bytes: the reader finds the rest after the size it was told.
    const shrunk = sizeSaying(100);
    expect((await readRegularFile(shrunk, join(r, 'grew'), budget)).equals(Buffer.alloc(900, 5))).toBe(true);
    writeFileSync(join(r, 'grew'), Buffer.alloc(1001, 5));
    await expect(readRegularFile(shrunk, join(r, 'grew'), budget)).rejects.toMatchObject({ code: 'LIMIT' });
    writeFileSync(join(r, 'exact'), Buffer.alloc(100, 6));
    expect((await readRegularFile(shrunk, join(r, 'exact'), budget)).equals(Buffer.alloc(100, 6))).toBe(true);
  });

  it('reads a file with no size (/proc) up to the budget', () => {
    expect(readRegularFileSync('/proc/self/status', READ_BUDGETS.text).toString()).toMatch(/^Name:/);
    expect(() => readRegularFileSync('/proc/self/maps', { what: 'map', maxBytes: 10 })).toThrow(KabiError);
  });
});

describe('fileEquals', () => {
  const budget = { what: 'test file', maxBytes: 4 << 20 };
  /** 2.5 MiB of varied bytes: the file is read in 1 MiB pieces. */
  const big = Buffer.from(Array.from({ length: (5 << 20) / 2 }, (_, i) => (i * 7 + (i >> 11)) & 255));
  for (const [name, fs] of [['node:fs', nodeFs], ['another KabiFs', proxied]] as const) {
    it(`${name}: true only for the same bytes, wherever they differ`, async () => {
      const r = root();
      const f = join(r, 'm.ko');
      writeFileSync(f, big);
      expect(await fileEquals(fs, f, big, budget)).toBe(true);
      for (const at of [0, (1 << 20) - 1, 1 << 20, big.length - 1]) {
        const other = Buffer.from(big);
        other[at] = (other[at]! + 1) & 255;
        expect(await fileEquals(fs, f, other, budget), `byte ${at}`).toBe(false);
      }
      expect(await fileEquals(fs, f, big.subarray(0, big.length - 1), budget)).toBe(false);
      expect(await fileEquals(fs, f, Buffer.concat([big, Buffer.from([0])]), budget)).toBe(false);
      // The buffer kept between calls holds nothing over: a shorter file after a longer one.
      writeFileSync(join(r, 'small'), big.subarray(0, 300));
      expect(await fileEquals(fs, join(r, 'small'), big.subarray(0, 300), budget)).toBe(true);
      expect(await fileEquals(fs, join(r, 'small'), big.subarray(1, 301), budget)).toBe(false);
      writeFileSync(join(r, 'empty'), '');
      expect(await fileEquals(fs, join(r, 'empty'), new Uint8Array(0), budget)).toBe(true);
    });

    it(`${name}: refuses what readRegularFile refuses`, async () => {
      const r = root();
      execFileSync('mkfifo', [join(r, 'fifo')]);
      await expect(fileEquals(fs, join(r, 'fifo'), big, budget)).rejects.toMatchObject({ code: 'NOT_A_FILE', file: join(r, 'fifo') });
      await expect(fileEquals(fs, '/dev/zero', big, budget)).rejects.toMatchObject({ code: 'NOT_A_FILE' });
      await expect(fileEquals(fs, r, big, budget)).rejects.toMatchObject({ code: 'NOT_A_FILE' });
      await expect(fileEquals(fs, join(r, 'missing'), big, budget)).rejects.toMatchObject({ code: 'ENOENT' });
      truncateSync((writeFileSync(join(r, 'huge'), ''), join(r, 'huge')), (4 << 20) + 1);
      await expect(fileEquals(fs, join(r, 'huge'), big, budget)).rejects.toMatchObject({ code: 'LIMIT' });
    });
  }

  it('comparisons running at once each read into their own buffer', async () => {
    const r = root();
    const other = Buffer.from(big).reverse();
    writeFileSync(join(r, 'a'), big);
    writeFileSync(join(r, 'b'), other);
    for (const fs of [nodeFs, proxied]) {
      const got = await Promise.all([fileEquals(fs, join(r, 'a'), big, budget), fileEquals(fs, join(r, 'b'), other, budget), fileEquals(fs, join(r, 'a'), big, budget), fileEquals(fs, join(r, 'b'), big, budget)]);
      expect(got).toEqual([true, true, true, false]);
    }
  });

  it('a file longer than its size said is not equal to bytes of that size', async () => {
    const r = root();
    writeFileSync(join(r, 'grew'), Buffer.alloc(900, 5));
    const shrunk = sizeSaying(100);
    expect(await fileEquals(shrunk, join(r, 'grew'), Buffer.alloc(100, 5), budget)).toBe(false);
    writeFileSync(join(r, 'exact'), Buffer.alloc(100, 6));
    expect(await fileEquals(shrunk, join(r, 'exact'), Buffer.alloc(100, 6), budget)).toBe(true);
  });
});

describe('readSystemFile', () => {
  it('reads through links inside the root only, regular files only', async () => {
    const r = root();
    mkdirSync(join(r, 'etc'), { recursive: true });
    writeFileSync(join(r, 'etc/real'), 'inside');
    symlinkSync('/etc/real', join(r, 'etc/link'));
    symlinkSync('/etc/hostname', join(r, 'etc/host'));
    execFileSync('mkfifo', [join(r, 'etc/fifo')]);
    expect(Buffer.from(await readSystemFile(nodeFs, r, '/etc/link')).toString()).toBe('inside');
    await expect(readSystemFile(nodeFs, r, '/etc/host')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readSystemFile(nodeFs, r, '/etc/fifo')).rejects.toMatchObject({ code: 'NOT_A_FILE' });
  });
});
