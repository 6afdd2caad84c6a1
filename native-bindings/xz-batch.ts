import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, fstatSync, ftruncateSync, openSync, readSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KabiError } from '../src/errors.js';
import { findTool, toolEnv } from './cli.js';
import { corrupt, tooLarge, tooSlow, type Where } from './common.js';

/*
 * Many whole .xz files decoded by one xz(1) process. A tree of .ko.xz modules is hundreds of
 * megabytes of LZMA2, which liblzma (the xz program, as kmod links it) decodes faster than the
 * WASM XZ Embedded build; one process per file costs more than it saves, one per batch does
 * not. `xz -dc` decodes concatenated streams into one output, and each file's share of it is
 * the uncompressed size its own index gives (walkXzFile, which the per-file decoder checks the
 * same way), so the output is cut back into files by those sizes.
 *
 * xz verifies every block against its index and every check value, and exits non-zero on any
 * fault (naming a stream of the batch, never one of our files): anything but exit 0 with
 * exactly the sizes' sum of bytes leaves the batch to be decoded file by file, which names the
 * file at fault.
 *
 * How xz is run is what makes this pay:
 * - Not forked from here: libuv forks, and forking a process of a few hundred MiB (a reader's
 *   heap, the WASM decoder's memory) costs 15 ms of system time and more of wall time. A
 *   small shell, started once per thread, starts each xz.
 * - Input and output are unlinked scratch files, which xz opens through /proc/<pid>/fd: through
 *   a pipe, each of xz's 8 KiB writes wakes the reading thread, which costs more CPU than the
 *   faster decoding saves. liblzma never writes more than the walked sizes (each LZMA2 chunk
 *   and each block must decode to exactly its stated size), and the output's size is checked
 *   while xz runs as well.
 */

/** Whether a batch can be tried at all (PATH read now: tests change it). */
export function xzBatchAvailable(): boolean {
  return !broken && findTool('xz') !== undefined && findTool('sh') !== undefined && existsSync(`/proc/${process.pid}/fd`);
}

/** How often the output's size is checked against the batch's total. */
const WATCH_MS = 50;
/** A shell left idle this long is ended (a later batch starts another). */
const IDLE_MS = 2000;
/**
 * Batches failing for a reason other than their data (xz or the shell missing, a scratch file
 * that cannot be made) one after another: past this, batching stops for this thread.
 */
const MAX_FAILURES = 3;

let failures = 0;
let broken = false;

/** Memory-backed where there is such a place (the output is read back at once), else the temp dir. */
function scratchDirs(): string[] {
  try {
    if (statSync('/dev/shm').isDirectory()) return ['/dev/shm', tmpdir()];
  } catch {
    // none here
  }
  return [tmpdir()];
}

function openScratch(): { fd: number; dir: string } {
  let fd: number | undefined;
  let error: unknown;
  for (const dir of scratchDirs()) {
    const path = join(dir, `kabi-xz-${process.pid}-${randomBytes(8).toString('hex')}`);
    try {
      // O_EXCL: never a file or link someone put there; removed at once, so nothing is left behind.
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (e) {
      error = e; // read-only or full: the next place
      continue;
    }
    try {
      unlinkSync(path);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return { fd, dir };
  }
  throw error;
}

/**
 * Whether the output's file system has no room for what xz has still to write: xz exits 1
 * then too (ENOSPC), which is the machine's doing, not the data's.
 */
function outOfSpace(dir: string, out: number, total: number): boolean {
  try {
    const st = statfsSync(dir);
    return st.bavail * st.bsize < total - fstatSync(out).size;
  } catch {
    return false;
  }
}

/**
 * Whether the shell, opening /proc/<our pid>/fd/<fd>, opens this very file. Not so where /proc
 * belongs to another PID namespace (a sandbox sharing its parent's /proc): there that path
 * names another process's file, which the redirection would read or truncate.
 */
function procShowsOurs(fd: number): boolean {
  try {
    const ours = fstatSync(fd);
    const seen = statSync(`/proc/${process.pid}/fd/${fd}`);
    return ours.dev === seen.dev && ours.ino === seen.ino;
  } catch {
    return false;
  }
}

/** Output memory kept for the next batch when the caller lends it back (see `borrowed`). */
const KEPT_OUTPUT = 16 << 20;
let kept: Buffer | undefined;

/**
 * The decoded bytes of each input (whole .xz files whose decoded sizes are `sizes`), in order;
 * rejects on any failure of the batch, without saying which input was at fault. `borrowed`:
 * the bytes are used up before the next batch starts, so its memory is reused (no fresh pages
 * to fault in, no garbage for the collector at every batch).
 */
export async function xzDecodeConcatenated(inputs: readonly Uint8Array[], sizes: readonly number[], where: Where, borrowed = false): Promise<Uint8Array[]> {
  if (inputs.length !== sizes.length) throw new RangeError(`${inputs.length} inputs, ${sizes.length} sizes`);
  const total = sizes.reduce((n, s) => n + s, 0);
  try {
    const sh = idleShell();
    const { input, out, outDir } = sh.scratch();
    let at = 0;
    for (const b of inputs) at = writeAll(input, b, at);
    ftruncateSync(input, at);
    // The output file keeps its pages from one batch to the next (xz writes over them, see
    // SHELL), cut to less than this batch's size: it is exactly `total` bytes long afterwards
    // only if xz wrote all of them, and longer if it wrote more.
    ftruncateSync(out, Math.max(0, Math.min(fstatSync(out).size, total - 1)));
    await runXz(sh, input, out, total, where, () => outOfSpace(outDir, out, total));
    const size = fstatSync(out).size;
    if (size !== total) throw corrupt('xz', `a batch decoded to ${size} bytes, its files' indexes say ${total}`, where);
    // Every byte is read over below: no need to zero them first.
    let data: Buffer;
    if (borrowed && total <= KEPT_OUTPUT) data = (kept = kept !== undefined && kept.length >= total ? kept : Buffer.allocUnsafe(Math.max(total, 4 << 20))).subarray(0, total);
    else data = Buffer.allocUnsafe(total);
    for (let at = 0; at < total; ) {
      const n = readSync(out, data, at, total - at, at);
      if (n <= 0) throw corrupt('xz', `a batch's output ended at ${at} of ${total} bytes`, where);
      at += n;
    }
    let from = 0;
    return sizes.map((s) => data.subarray(from, (from += s)));
  } catch (e) {
    // A batch past its time is the environment's fault too (an xz that hangs): the files are
    // decoded one by one, and three such batches end batching here.
    if ((!(e instanceof KabiError) || e.code === 'LIMIT') && ++failures >= MAX_FAILURES) broken = true;
    throw e;
  }
}

/** Writes `b` at `position`; returns the position after it. */
function writeAll(fd: number, b: Uint8Array, position: number): number {
  for (let at = 0; at < b.length; ) at += writeSync(fd, b, at, b.length - at, position + at);
  return position + b.length;
}

/**
 * The shell that starts this thread's xz processes, one per line it is given ("IN OUT", the
 * descriptors to decode from and to), answering each with xz's exit status. It is its own
 * process group, so a batch past its time is ended with everything it started.
 */
const SHELL = `while read -r i o; do xz -dc --format=xz <"/proc/$PPID/fd/$i" 1<>"/proc/$PPID/fd/$o" 2>/dev/null; echo "$?"; times; done`;

/**
 * CPU time of this thread's xz processes, and how many ran, since it started (a depmod run's
 * stats report it: the processes are the shell's children, not this process's).
 */
export const xzBatchClock = { cpuMs: 0, processes: 0 };

/** `times`' second line: the shell's children's user and system time, added up so far. */
function childCpuMs(fields: readonly string[]): number {
  let ms = 0;
  for (const f of fields) {
    const m = /^(\d+)m([\d.]+)s$/.exec(f);
    if (m) ms += (Number(m[1]) * 60 + Number(m[2])) * 1000;
  }
  return ms;
}

class XzShell {
  private readonly child: ChildProcess;
  private text = '';
  private waiting: ((status: string | undefined) => void) | undefined;
  private idle: NodeJS.Timeout | undefined;
  /** Its children's CPU time so far, as it last reported it. */
  private cpu = 0;
  /** Its batches' input and output files, kept while it lives (unlinked: nothing is left behind), and the output's directory. */
  private files: { input: number; out: number; outDir: string } | undefined;
  ended = false;

  constructor() {
    this.child = spawn('sh', ['-c', SHELL], { stdio: ['pipe', 'pipe', 'ignore'], detached: true, env: toolEnv() });
    this.child.on('error', () => this.end());
    this.child.on('close', () => this.end());
    this.child.stdin!.on('error', () => this.end());
    this.child.stdout!.setEncoding('latin1');
    this.child.stdout!.on('data', (s: string) => {
      this.text += s;
      // Three lines a batch: xz's exit status, then `times`: the shell's own, its children's.
      for (;;) {
        const lines = this.text.split('\n', 4);
        if (lines.length < 4) return;
        this.text = this.text.slice(lines[0]!.length + lines[1]!.length + lines[2]!.length + 3);
        const cpu = childCpuMs(lines[2]!.split(' '));
        xzBatchClock.cpuMs += cpu - this.cpu;
        xzBatchClock.processes++;
        this.cpu = cpu;
        this.answer(lines[0]!);
      }
    });
    this.hold(false);
  }

  get busy(): boolean {
    return this.waiting !== undefined;
  }

  /** The scratch files for its next batch, made at its first. */
  scratch(): { input: number; out: number; outDir: string } {
    if (this.files !== undefined) return this.files;
    let input: number;
    let out: { fd: number; dir: string };
    try {
      input = openScratch().fd;
    } catch (e) {
      this.end(); // no batch for it to run
      throw e;
    }
    try {
      out = openScratch();
    } catch (e) {
      closeSync(input);
      this.end();
      throw e;
    }
    this.files = { input, out: out.fd, outDir: out.dir };
    if (!procShowsOurs(input) || !procShowsOurs(out.fd)) {
      broken = true;
      this.end();
      throw new Error(`/proc/${process.pid}/fd does not show this process's files`);
    }
    return this.files;
  }

  /** xz's exit status for one batch (undefined: the shell ended first). */
  run(input: number, output: number): Promise<string | undefined> {
    if (this.ended || this.busy) return Promise.resolve(undefined);
    clearTimeout(this.idle);
    this.hold(true);
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.child.stdin!.write(`${input} ${output}\n`);
    });
  }

  private answer(status: string | undefined): void {
    const w = this.waiting;
    this.waiting = undefined;
    this.hold(false);
    if (!this.ended) this.idle = setTimeout(() => this.end(), IDLE_MS).unref();
    w?.(status);
  }

  /** Keeps the process alive only while a batch is being decoded. */
  private hold(on: boolean): void {
    for (const h of [this.child, this.child.stdin, this.child.stdout] as { ref(): void; unref(): void }[]) {
      if (on) h.ref();
      else h.unref();
    }
  }

  /** Ends the shell and any xz it is running. */
  end(): void {
    if (!this.ended) {
      this.ended = true;
      clearTimeout(this.idle);
      try {
        if (this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      this.child.stdin!.destroy();
      this.child.stdout!.destroy();
      if (this.files !== undefined) {
        closeSync(this.files.input);
        closeSync(this.files.out);
        this.files = undefined;
      }
    }
    this.answer(undefined);
  }
}

/** This thread's shells: one, unless batches are decoded at the same time (each ends when idle). */
let shells: XzShell[] = [];

/** A shell of this thread not running a batch (a new one if all are). */
function idleShell(): XzShell {
  shells = shells.filter((s) => !s.ended);
  let sh = shells.find((s) => !s.busy);
  if (sh === undefined) shells.push((sh = new XzShell()));
  return sh;
}

function runXz(sh: XzShell, input: number, out: number, total: number, where: Where, noRoom: () => boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(watch);
      if (err === undefined) return resolve();
      sh.end();
      reject(err);
    };
    const { deadline } = where;
    const timer = deadline === undefined ? undefined : setTimeout(() => finish(tooSlow('xz', where.timeoutMs ?? 0, where)), Math.max(0, deadline - performance.now()));
    const watch = setInterval(() => {
      if (fstatSync(out).size > total) finish(tooLarge('xz', total, where));
    }, WATCH_MS);
    void sh.run(input, out).then((status) => {
      // 1: xz found a fault in the data, or could not write its output. Anything else is not the data's doing.
      const full = status === '1' && noRoom();
      if (status === '0' || (status === '1' && !full)) failures = 0;
      if (status === '0') finish();
      else if (full) finish(new Error('xz exit status 1: no room left for the output'));
      else if (status === '1') finish(corrupt('xz', 'xz exit status 1', where));
      else finish(new Error(status === undefined ? 'the shell running xz ended' : `xz exit status ${status}`));
    });
  });
}
