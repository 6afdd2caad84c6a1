import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { notAFile, OPEN_FOR_READ, overBudget, READ_BUDGETS } from '../fs.js';

/**
 * A plain (uncompressed) module file on node:fs, read whole and handed to `use` at once;
 * undefined, having called nothing, for a compressed name (not even opened: it is read the
 * general way), or when it does not start with the ELF magic (compressed under a .ko name). A FIFO or device is refused without
 * blocking (NOT_A_FILE), and a file over READ_BUDGETS.module is LIMIT, as readRegularFile
 * refuses them.
 *
 * Every file is read into a buffer kept for the next file, so `use` must copy what it keeps.
 * A tree is thousands of such files: on the 6.1 tree (4023 modules, page cache warm) whole
 * reads into the one buffer took about 100 ms, against 190-230 ms for picking out only the
 * sections the parsers look at (ten reads a file, and their bookkeeping).
 */
export function withPlainModuleSync<T>(path: string, use: (image: Uint8Array) => T): T | undefined {
  if (isCompressedName(path)) return undefined;
  const fd = openSync(path, OPEN_FOR_READ);
  let image: Buffer | undefined;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw notAFile(path, READ_BUDGETS.module, st);
    if (st.size > READ_BUDGETS.module.maxBytes) throw overBudget(path, READ_BUDGETS.module);
    const buf = st.size <= SCRATCH_BYTES ? scratch.subarray(0, st.size) : bigScratch(st.size);
    // One read(2) for the whole file, as readRegularFile makes; a file that shrank meanwhile
    // is read the general way.
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, done);
      if (n <= 0) break;
      done += n;
    }
    if (done === buf.length && buf.length >= 4 && buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46) image = buf;
  } finally {
    closeSync(fd);
  }
  return image === undefined ? undefined : use(image);
}

/** Most modules are smaller (on the 6.1 tree, 94 % are under 256 KiB). */
const SCRATCH_BYTES = 1 << 20;
const scratch = Buffer.alloc(SCRATCH_BYTES);

/**
 * The few larger files are read into one more buffer, grown by doubling (never past the
 * module budget) and dropped one to two seconds after its last use. A fresh buffer per file
 * made the first pass over a tree pay for memory the process had never touched: on the 6.1
 * tree the 38 files over 1 MiB (104 MB) took 252 ms to read in a new process, against 23 ms
 * once freed memory was being reused.
 */
function bigScratch(size: number): Buffer {
  // `size` is within the module budget (checked by the caller), so the cap never cuts it.
  if (big === undefined || big.length < size) big = Buffer.allocUnsafe(Math.min(Math.max(size, 2 * (big?.length ?? SCRATCH_BYTES)), READ_BUDGETS.module.maxBytes));
  bigUsed = true;
  dropTimer ??= setInterval(dropIdleBig, 1000).unref();
  return big.subarray(0, size);
}

let big: Buffer | undefined;
let bigUsed = false;
let dropTimer: ReturnType<typeof setInterval> | undefined;

function dropIdleBig(): void {
  if (!bigUsed) {
    big = undefined;
    clearInterval(dropTimer);
    dropTimer = undefined;
  }
  bigUsed = false;
}

/**
 * Whether a module file's name says it is compressed (.ko.xz, .ko.zst, .ko.gz): reading it is
 * mostly decoding, which is what reader threads are for.
 */
export function isCompressedName(path: string): boolean {
  return !path.endsWith('.ko');
}
