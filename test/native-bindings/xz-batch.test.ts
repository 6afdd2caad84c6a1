import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { maybeDecompress, maybeDecompressEach, xzBatchClock, type DecompressResult } from '../../native-bindings/index.js';
import { crc32 } from '../../native-bindings/crc32.js';
import { xzDecodeConcatenated } from '../../native-bindings/xz-batch.js';
import { KabiError } from '../../src/errors.js';
import { expectSame, realisticPayload, tool } from './helpers.js';

// Whole .xz files decoded many per xz process (xz-batch.ts), and what happens when a batch
// cannot be: every file still gets exactly what decoding it on its own gives.

const payloads = Array.from({ length: 6 }, (_, i) => realisticPayload(200_000 + i * 37_000, i + 3));
/** kbuild's flags, as .ko.xz files are made. */
const kbuild = (p: Uint8Array) => tool('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c'], p);
const files = () => payloads.map((p) => ({ bytes: kbuild(p), file: `m${payloads.indexOf(p)}.ko.xz` }));

async function decodeEach(inputs: readonly { bytes: Uint8Array; file?: string }[], opts = {}): Promise<DecompressResult[]> {
  const out: DecompressResult[] = [];
  const seen = new Set<number>();
  await maybeDecompressEach(inputs, opts, (i, r) => {
    expect(seen.has(i)).toBe(false);
    seen.add(i);
    out[i] = r;
  });
  expect(seen.size).toBe(inputs.length);
  return out;
}

function dataOf(r: DecompressResult | undefined): Uint8Array {
  if (r === undefined || 'error' in r) throw new Error(`no data: ${r && 'error' in r ? String(r.error) : 'no result'}`);
  return r.data;
}

/** What decoding the one file on its own throws. */
async function aloneError(bytes: Uint8Array, file: string, opts = {}): Promise<KabiError> {
  const e = await maybeDecompress(bytes, { file, ...opts }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KabiError);
  return e as KabiError;
}

function scratchLeft(): string[] {
  return ['/dev/shm', tmpdir()].flatMap((d) => {
    try {
      return readdirSync(d).filter((n) => n.startsWith('kabi-xz-'));
    } catch {
      return [];
    }
  });
}

describe('xz files decoded many per process', () => {
  it('decodes every file of a batch with one xz process, byte for byte', async () => {
    const before = xzBatchClock.processes;
    const got = await decodeEach(files());
    payloads.forEach((p, i) => expectSame(dataOf(got[i]), p));
    expect(got.every((r) => 'format' in r && r.format === 'xz')).toBe(true);
    expect(xzBatchClock.processes - before).toBe(1);
    expect(xzBatchClock.cpuMs).toBeGreaterThanOrEqual(0);
    expect(scratchLeft()).toEqual([]);
  });

  it('batches decoded at the same time each get their own xz', async () => {
    const before = xzBatchClock.processes;
    const got = await Promise.all([decodeEach(files()), decodeEach(files()), decodeEach(files())]);
    for (const g of got) payloads.forEach((p, i) => expectSame(dataOf(g[i]), p));
    expect(xzBatchClock.processes - before).toBe(3);
  });

  it('multi-block files, multi-stream files with stream padding, and plain files, side by side', async () => {
    const multiBlock = tool('xz', ['-c', '-0', '-T2', '--block-size=64KiB', '--check=crc32'], payloads[0]!);
    const padded = Buffer.concat([kbuild(payloads[1]!), Buffer.alloc(8), tool('xz', ['-c', '-1'], payloads[2]!), Buffer.alloc(4)]);
    const plain = Buffer.from(payloads[3]!);
    const before = xzBatchClock.processes;
    const got = await decodeEach([
      { bytes: multiBlock, file: 'a' },
      { bytes: plain, file: 'plain' },
      { bytes: padded, file: 'b' },
      { bytes: kbuild(payloads[4]!), file: 'c' },
    ]);
    expectSame(dataOf(got[0]), payloads[0]!);
    expectSame(dataOf(got[1]), payloads[3]!);
    expect((got[1] as { format: unknown }).format).toBeUndefined();
    expectSame(dataOf(got[2]), Buffer.concat([payloads[1]!, payloads[2]!]));
    expectSame(dataOf(got[3]), payloads[4]!);
    expect(xzBatchClock.processes - before).toBe(1);
  });

  it('a corrupt file in a batch: every other file decoded, the corrupt one gets its own error', async () => {
    const inputs = files();
    // A byte of LZMA2 data changed: the container still walks, the data does not decode.
    const bad = Buffer.from(inputs[2]!.bytes);
    const mid = bad.length >> 1;
    bad[mid] = bad[mid]! ^ 0x55;
    inputs[2] = { bytes: bad, file: 'bad.ko.xz' };
    const got = await decodeEach(inputs);
    payloads.forEach((p, i) => {
      if (i !== 2) expectSame(dataOf(got[i]), p);
    });
    const e = (got[2] as { error: unknown }).error;
    expect(e).toBeInstanceOf(KabiError);
    const alone = await aloneError(bad, 'bad.ko.xz');
    expect((e as KabiError).message).toBe(alone.message);
    expect((e as KabiError).file).toBe('bad.ko.xz');
    expect(scratchLeft()).toEqual([]);
  });

  it('a truncated file and a file whose index lies are not batched, and get their own errors', async () => {
    const inputs = files();
    const truncated = inputs[1]!.bytes.subarray(0, inputs[1]!.bytes.length - 20);
    // The index's uncompressed size one more than the blocks hold (CRC32s made right again).
    const lying = lieAboutSize(inputs[4]!.bytes);
    inputs[1] = { bytes: truncated, file: 'short.ko.xz' };
    inputs[4] = { bytes: lying, file: 'liar.ko.xz' };
    const got = await decodeEach(inputs);
    for (const i of [0, 2, 3, 5]) expectSame(dataOf(got[i]), payloads[i]!);
    for (const [i, name, bytes] of [[1, 'short.ko.xz', truncated], [4, 'liar.ko.xz', lying]] as const) {
      const e = (got[i] as { error: KabiError }).error;
      expect(e.file).toBe(name);
      expect(e.message).toBe((await aloneError(bytes, name)).message);
    }
  });

  it('sizes that do not add up fail the batch, as does a size the data does not have', async () => {
    const inputs = files().slice(0, 3);
    const sizes = payloads.slice(0, 3).map((p) => p.length);
    const where = { file: undefined, base: 0, timeoutMs: 60_000, deadline: performance.now() + 60_000 };
    const got = await xzDecodeConcatenated(inputs.map((f) => f.bytes), sizes, where);
    got.forEach((d, i) => expectSame(d, payloads[i]!));
    // The same total, cut differently: no check here can tell, which is why the sizes come from
    // each file's own index (walkXzFile) and never from the caller's guess.
    await expect(xzDecodeConcatenated(inputs.map((f) => f.bytes), [sizes[0]! + 1, sizes[1]!, sizes[2]!], where)).rejects.toThrow(/decoded to|exceed/);
    await expect(xzDecodeConcatenated(inputs.map((f) => f.bytes), [sizes[0]! - 1, sizes[1]!, sizes[2]!], where)).rejects.toThrow(/decoded to|exceed/);
    expect(scratchLeft()).toEqual([]);
  });

  it('batches after a bigger one, through the same scratch files: nothing of the earlier output shows, and a short output is still caught', async () => {
    const inputs = files();
    const sizes = payloads.map((p) => p.length);
    const where = { file: undefined, base: 0, timeoutMs: 60_000, deadline: performance.now() + 60_000 };
    const all = await xzDecodeConcatenated(inputs.map((f) => f.bytes), sizes, where);
    all.forEach((d, i) => expectSame(d, payloads[i]!));
    // The output file still holds the six files' bytes: a batch claiming one byte more than
    // its two files give must not find that byte there.
    const two = [inputs[4]!.bytes, inputs[1]!.bytes];
    await expect(xzDecodeConcatenated(two, [sizes[4]!, sizes[1]! + 1], where)).rejects.toThrow(/decoded to/);
    const got = await xzDecodeConcatenated(two, [sizes[4]!, sizes[1]!], where);
    expectSame(got[0]!, payloads[4]!);
    expectSame(got[1]!, payloads[1]!);
    // And bigger again.
    const again = await xzDecodeConcatenated(inputs.map((f) => f.bytes).reverse(), [...sizes].reverse(), where);
    again.forEach((d, i) => expectSame(d, payloads[payloads.length - 1 - i]!));
    expect(scratchLeft()).toEqual([]);
  });

  it('a batch past its time is stopped, with the xz it started', async () => {
    const inputs = files();
    const where = { file: undefined, base: 0, timeoutMs: 1, deadline: performance.now() };
    // Shells left idle by the tests before (each ends after a while): the batch takes one of them.
    const shellsNow = () => execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).split('\n').filter((l) => /while read/.test(l)).map((l) => l.trim().split(' ')[0]);
    const before = shellsNow();
    await expect(xzDecodeConcatenated(inputs.map((f) => f.bytes), payloads.map((p) => p.length), where)).rejects.toThrow(/longer than/);
    await new Promise((r) => setTimeout(r, 200));
    const after = shellsNow();
    // Its shell is gone (an idle one left by an earlier test may end meanwhile too, on its timer).
    expect(after.length).toBeLessThanOrEqual(Math.max(0, before.length - 1));
    expect(after.every((pid) => before.includes(pid))).toBe(true);
    // Its xz went with it: no batch xz is left without its shell (other test files' batches may be running).
    const procs = execFileSync('ps', ['-o', 'pid=,ppid=,args=', '-e'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
      .filter((m) => m !== null)
      .map((m) => ({ pid: m[1]!, ppid: m[2]!, args: m[3]! }));
    const shells = new Set(procs.filter((p) => /while read/.test(p.args)).map((p) => p.pid));
    expect(procs.filter((p) => /^xz -dc --format=xz\b/.test(p.args) && !shells.has(p.ppid))).toEqual([]);
    // The next batch starts a new shell.
    const got = await decodeEach(files());
    payloads.forEach((p, i) => expectSame(dataOf(got[i]), p));
  });

  it('files past the output limit are not batched and get the limit error', async () => {
    const inputs = files();
    const limit = payloads[2]!.length;
    const got = await decodeEach(inputs, { maxOutputBytes: limit });
    for (let i = 0; i < payloads.length; i++) {
      if (i <= 2) expectSame(dataOf(got[i]), payloads[i]!);
      else expect((got[i] as { error: KabiError }).error.message).toBe((await aloneError(inputs[i]!.bytes, inputs[i]!.file, { maxOutputBytes: limit })).message);
    }
  });
});

describe('without the xz program', () => {
  const savedPath = process.env['PATH'];
  let dir: string | undefined;
  afterEach(() => {
    process.env['PATH'] = savedPath;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('every file is decoded on its own, with the same bytes', async () => {
    const inputs = files();
    dir = mkdtempSync(join(tmpdir(), 'kabi-noxz-'));
    symlinkSync(execFileSync('sh', ['-c', 'command -v sh'], { encoding: 'utf8' }).trim(), join(dir, 'sh'));
    process.env['PATH'] = dir;
    const before = xzBatchClock.processes;
    const got = await decodeEach(inputs);
    payloads.forEach((p, i) => expectSame(dataOf(got[i]), p));
    expect(xzBatchClock.processes).toBe(before);
  });
});

/**
 * The same file with its index (and the footer's view of it) claiming one byte more of output
 * for the last block: the CRC32s are made right, so only the sizes lie.
 */
function lieAboutSize(xz: Uint8Array): Buffer {
  const b = Buffer.from(xz);
  const footer = b.length - 12;
  const indexSize = (b.readUInt32LE(footer + 4) + 1) * 4;
  const index = footer - indexSize;
  // Index: indicator, count, then (unpadded, uncompressed) VLIs; kbuild's files have one block.
  let p = index + 2;
  while (b[p]! & 0x80) p++;
  p++;
  // The uncompressed size's first byte: bump its low 7 bits (no carry for these sizes' low byte).
  const low = b[p]! & 0x7f;
  if (low === 0x7f) throw new Error('pick another payload size');
  b[p] = (b[p]! & 0x80) | (low + 1);
  b.writeUInt32LE(crc32(b, index, footer - 4), footer - 4);
  return b;
}

describe('xz batches and the environment they run in', () => {
  const script = (name: string) => fileURLToPath(new URL(`./scripts/${name}`, import.meta.url));
  const bindings = fileURLToPath(new URL('../../dist/native-bindings/index.js', import.meta.url));

  it('XZ_DEFAULTS / XZ_OPT never reach xz: a damaged check value is an error, batched or not', () => {
    for (const v of ['XZ_DEFAULTS', 'XZ_OPT']) {
      const out = execFileSync(process.execPath, [script('procns-inner.mjs'), '-', bindings, 'badcheck'], { encoding: 'utf8', env: { ...process.env, [v]: '--ignore-check' } });
      expect(JSON.parse(out)).toMatchObject({ right: 7, of: 8, failed: [3] });
    }
  });

  it('a /dev/shm too full for a batch\'s output: every file still decoded, and batching stops after three such batches (the machine\'s fault, not the data\'s)', () => {
    const batching = fileURLToPath(new URL('../../dist/native-bindings/xz-batch.js', import.meta.url));
    const out = execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=600k none /dev/shm && exec "$0" "$@"', process.execPath, script('full-shm.mjs'), bindings, batching], { encoding: 'utf8' });
    const r = JSON.parse(out) as { rounds: { right: number; processes: number }[]; batching: boolean };
    expect(r.rounds.map((x) => x.right)).toEqual([8, 8, 8, 8, 8]);
    expect(r.rounds.map((x) => x.processes)).toEqual([1, 1, 1, 0, 0]);
    expect(r.batching).toBe(false);
  });

  it('where /proc is another PID namespace\'s, no batch runs (its /proc/<pid>/fd names another process\'s files) and no file of that process is touched', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kabi-xz-procns-'));
    try {
      const out = execFileSync('unshare', ['--mount', '--pid', '--fork', '--mount-proc', process.execPath, script('procns-outer.mjs'), dir, script('procns-inner.mjs'), bindings], { encoding: 'utf8' });
      const r = JSON.parse(out) as { status: number; changed: number; inner: string };
      expect(r).toMatchObject({ status: 0, changed: 0 });
      expect(JSON.parse(r.inner)).toMatchObject({ pid: 1, right: 8, of: 8, batches: 0 });
      // Outside such a sandbox the same files are batched.
      expect(JSON.parse(execFileSync(process.execPath, [script('procns-inner.mjs'), '-', bindings], { encoding: 'utf8' }))).toMatchObject({ right: 8, batches: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
