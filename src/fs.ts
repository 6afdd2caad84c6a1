import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { KabiError } from './errors.js';

/**
 * The filesystem kabi works through. Every layer that does I/O takes one of these
 * (defaulting to node:fs/promises), so tests can run against a fixture root and inject
 * faults into any single call without touching this machine's /lib/modules or /boot.
 */
export type KabiFs = Pick<
  typeof fsp,
  | 'readFile'
  | 'writeFile'
  | 'readdir'
  | 'lstat'
  | 'stat'
  | 'readlink'
  | 'symlink'
  | 'rename'
  | 'mkdir'
  | 'rmdir'
  | 'unlink'
  | 'rm'
  | 'link'
  | 'chmod'
  | 'chown'
  | 'realpath'
  | 'open'
  | 'copyFile'
  | 'utimes'
  | 'lutimes'
  | 'access'
  | 'mkdtemp'
  | 'opendir'
>;

export const nodeFs: KabiFs = fsp;

/** True if the path exists (without following a final symlink). */
export async function lexists(fs: KabiFs, path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** True if the path exists and, following symlinks, is a regular file. */
export async function isFile(fs: KabiFs, path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isFile();
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

export async function isDirectory(fs: KabiFs, path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isDirectory();
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

export function isNotFound(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/** A file's text, or undefined when it does not exist (other errors are thrown). */
export async function readTextIfExists(fs: KabiFs, path: string): Promise<string | undefined> {
  try {
    return new TextDecoder().decode(await fs.readFile(path));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/**
 * The most bytes kabi reads, or decompresses to, for each kind of input (README "Limits").
 * Every figure is many times the largest real file of its kind (amdgpu.ko, the largest
 * stripped module Debian ships, is 19 MB; a Module.symvers about 2 MB; a System.map 6 MB),
 * and each is small enough that a hostile input stopped at it costs well under a second and
 * a few hundred MB of memory.
 */
export interface ReadBudget {
  /** What the file is, for the error message ("module", "symvers"…). */
  readonly what: string;
  /** Most bytes of the file itself, and of its contents once decompressed. */
  readonly maxBytes: number;
}

const MiB = 1024 * 1024;

export const READ_BUDGETS = {
  /** A .ko, .ko.xz, .ko.zst or .ko.gz: the file and the ELF inside it. */
  module: { what: 'module', maxBytes: 256 * MiB },
  /** Module.symvers / symvers-K.gz and System.map (depmod -E / -F): the file and its text. */
  symbols: { what: 'kernel symbol list', maxBytes: 64 * MiB },
  /** Other text and index files a run reads whole: depmod.d, modules.order, modules.builtin, kernel config, depmod's outputs. */
  text: { what: 'file', maxBytes: 64 * MiB },
  /** kabi's depmod cache (a file past this is not used, and is written anew). */
  cache: { what: 'depmod cache', maxBytes: 1024 * MiB },
} as const satisfies Record<string, ReadBudget>;

// O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused by its type);
// it changes nothing for a regular file. O_NOCTTY: a terminal never becomes ours.
/** open(2) flags for reading an input: never blocks on a FIFO, never takes a terminal. */
export const OPEN_FOR_READ = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;

export function formatBytes(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

function fileTypeName(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export function notAFile(path: string, budget: ReadBudget, st: Parameters<typeof fileTypeName>[0]): KabiError {
  return new KabiError('NOT_A_FILE', `refusing to read ${fileTypeName(st)} as a ${budget.what}: only regular files are read`, { file: path });
}

export function overBudget(path: string, budget: ReadBudget, decompressed = false): KabiError {
  return new KabiError('LIMIT', `${decompressed ? 'decompresses to' : 'is'} more than the ${formatBytes(budget.maxBytes)} limit for a ${budget.what}`, { file: path });
}

/**
 * Filesystems whose files are already in memory and do not change while they are read (an
 * image's tree for its depmod run): a reader that only parses may take a file's bytes from
 * here without a copy. The view must never be written to.
 */
const views = new WeakMap<KabiFs, (path: string) => Uint8Array | undefined>();

export function offerFileViews(fs: KabiFs, view: (path: string) => Uint8Array | undefined): void {
  views.set(fs, view);
}

/**
 * A regular file's bytes without a copy, when `fs` offers them (offerFileViews), within the
 * budget (LIMIT past it); undefined otherwise, and for anything but a regular file: read it
 * the general way, which refuses what it must.
 */
export function fileView(fs: KabiFs, path: string, budget: ReadBudget): Uint8Array | undefined {
  const bytes = views.get(fs)?.(path);
  if (bytes !== undefined && bytes.length > budget.maxBytes) throw overBudget(path, budget);
  return bytes;
}

type OpenFile = Awaited<ReturnType<KabiFs['open']>>;

/**
 * `path` opened for reading without blocking (a FIFO without a writer cannot hang it) and
 * refused unless it is a regular file (NOT_A_FILE); `use` gets its descriptor and size.
 */
function withRegularFileSync<T>(path: string, budget: ReadBudget, use: (fd: number, size: number) => T): T {
  const fd = openSync(path, OPEN_FOR_READ);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw notAFile(path, budget, st);
    return use(fd, st.size);
  } finally {
    closeSync(fd);
  }
}

/**
 * withRegularFileSync through any KabiFs: on node:fs synchronously (`sync`; callers read
 * thousands of files, and the synchronous calls cost a tenth of the promise round trips),
 * through a file handle otherwise (`other`).
 */
async function withRegularFile<T>(fs: KabiFs, path: string, budget: ReadBudget, sync: (fd: number, size: number) => T, other: (h: OpenFile, size: number) => Promise<T>): Promise<T> {
  if (fs === nodeFs) return withRegularFileSync(path, budget, sync);
  const h = await fs.open(path, OPEN_FOR_READ);
  try {
    const st = await h.stat();
    if (!st.isFile()) throw notAFile(path, budget, st);
    return await other(h, st.size);
  } finally {
    await h.close();
  }
}

function withinBudget(path: string, size: number, budget: ReadBudget): number {
  if (size > budget.maxBytes) throw overBudget(path, budget);
  return size;
}

/**
 * A regular file's bytes, at most `budget.maxBytes` of them: a FIFO, device, socket or
 * directory is refused without blocking (NOT_A_FILE), and a file larger than the budget,
 * or one that grows past it while being read, is refused (LIMIT) before its bytes are
 * held. Errors from the system (ENOENT, EACCES…) pass through as they are. The buffer is
 * the file's own (never a slice of a shared pool), as readFile's is.
 */
export async function readRegularFile(fs: KabiFs, path: string, budget: ReadBudget): Promise<Buffer> {
  return withRegularFile(
    fs,
    path,
    budget,
    (fd, size) => readAllSync((buf, at) => readSync(fd, buf, at, buf.length - at, null), withinBudget(path, size, budget), path, budget),
    (h, size) => readAll((buf, at) => h.read(buf, at, buf.length - at, null).then((r) => r.bytesRead), withinBudget(path, size, budget), path, budget),
  );
}

/** readRegularFile on node:fs, synchronously (thousands of module files are read this way). */
export function readRegularFileSync(path: string, budget: ReadBudget): Buffer {
  return withRegularFileSync(path, budget, (fd, size) => readAllSync((buf, at) => readSync(fd, buf, at, buf.length - at, null), withinBudget(path, size, budget), path, budget));
}

/**
 * The first `n` bytes of a regular file (fewer if it is shorter), refused as readRegularFile
 * refuses a FIFO, device or directory, without blocking; synchronous on node:fs, where
 * callers sniff thousands of files.
 */
export async function readRegularFileHead(fs: KabiFs, path: string, n: number, budget: ReadBudget): Promise<Buffer> {
  const buf = Buffer.alloc(n);
  return withRegularFile(
    fs,
    path,
    budget,
    (fd) => buf.subarray(0, readSync(fd, buf, 0, n, 0)),
    async (h) => buf.subarray(0, (await h.read(buf, 0, n, 0)).bytesRead),
  );
}

/** Bytes fileEquals reads at a time, into a buffer kept for the process. */
const COMPARE_PIECE = 1 << 20;
/** The kept buffer while no comparison holds it; one running meanwhile reads into its own. */
let idleCompareBuffer: Buffer | undefined;

/**
 * Whether a regular file holds exactly `expected`, refused as readRegularFile refuses a FIFO,
 * device, directory or a file over the budget. The file is read a piece at a time into a
 * buffer reused across calls: an initramfs check compares a hundred installed modules with
 * their image copies, mostly equal, and reading each into new memory cost more than the
 * reading itself where first-touched pages are slow.
 */
export async function fileEquals(fs: KabiFs, path: string, expected: Uint8Array, budget: ReadBudget): Promise<boolean> {
  const buf = idleCompareBuffer ?? Buffer.allocUnsafeSlow(COMPARE_PIECE);
  idleCompareBuffer = undefined;
  // The last read asks for one byte more than expected: a file that grew since fstat differs.
  const want = (at: number) => Math.min(buf.length, expected.length - at + 1);
  try {
    return await withRegularFile(
      fs,
      path,
      budget,
      (fd, size) => {
        if (withinBudget(path, size, budget) !== expected.length) return false;
        for (let at = 0, n; ; at += n) {
          n = readSync(fd, buf, 0, want(at), at);
          const verdict = comparePiece(buf, n, at, expected);
          if (verdict !== undefined) return verdict;
        }
      },
      async (h, size) => {
        if (withinBudget(path, size, budget) !== expected.length) return false;
        for (let at = 0, n; ; at += n) {
          n = (await h.read(buf, 0, want(at), at)).bytesRead;
          const verdict = comparePiece(buf, n, at, expected);
          if (verdict !== undefined) return verdict;
        }
      },
    );
  } finally {
    idleCompareBuffer = buf;
  }
}

/** The verdict after `n` bytes were read at `at` into `buf`, or undefined to read on. */
function comparePiece(buf: Buffer, n: number, at: number, expected: Uint8Array): boolean | undefined {
  if (n === 0) return at === expected.length;
  if (at + n > expected.length || Buffer.compare(buf.subarray(0, n), expected.subarray(at, at + n)) !== 0) return false;
  return undefined;
}

/** One read(2) the loop asks for: into `buf` from `at`, as much as fits. */
type ReadRequest = readonly [buf: Buffer, at: number];

/**
 * The reading loop, the same for the synchronous and the promise-based readers: it asks for
 * reads (yield) and is told how many bytes each gave. Once the size fstat gave is read, a
 * one-byte probe tells the end from a file that grew, without copying the whole buffer into a
 * larger one first.
 */
function* readLoop(size: number, path: string, budget: ReadBudget): Generator<ReadRequest, Buffer, number> {
  let buf: Buffer = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (;;) {
    if (at === buf.length) {
      if (at > budget.maxBytes) throw overBudget(path, budget);
      const probe = Buffer.allocUnsafe(1);
      if (at > 0 && (yield [probe, 0]) === 0) return buf;
      buf = grow(buf, at, path, budget);
      if (at > 0) buf[at++] = probe[0]!;
    }
    const n: number = yield [buf, at];
    if (n === 0) return buf.subarray(0, at);
    at += n;
  }
}

function readAllSync(read: (buf: Buffer, at: number) => number, size: number, path: string, budget: ReadBudget): Buffer {
  const loop = readLoop(size, path, budget);
  for (let step = loop.next(); ; step = loop.next(read(...step.value))) if (step.done) return step.value;
}

async function readAll(read: (buf: Buffer, at: number) => Promise<number>, size: number, path: string, budget: ReadBudget): Promise<Buffer> {
  const loop = readLoop(size, path, budget);
  for (let step = loop.next(); ; step = loop.next(await read(...step.value))) if (step.done) return step.value;
}

/**
 * Room for more once the size fstat gave is read: the file grew, or has no size (a /proc
 * file). One byte past the budget is room enough to tell that it is over.
 */
function grow(buf: Buffer, at: number, path: string, budget: ReadBudget): Buffer {
  if (at > budget.maxBytes) throw overBudget(path, budget);
  const grown = Buffer.allocUnsafeSlow(Math.min(Math.max(buf.length * 2, 65536), budget.maxBytes + 1));
  buf.copy(grown, 0, 0, at);
  return grown;
}
