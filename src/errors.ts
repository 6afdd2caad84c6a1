/**
 * Every failure kabi reports on bad input is a KabiError: it names the file and,
 * where it applies, the byte offset or line, so a packager reading a scriptlet log
 * can find the broken artefact without re-running anything.
 */
export type KabiErrorCode =
  | 'ELF_FORMAT'
  | 'MODULE_FORMAT'
  | 'SIGNATURE_FORMAT'
  | 'SYMVERS_FORMAT'
  | 'COMPRESSION'
  | 'UNSUPPORTED_COMPRESSION'
  | 'CPIO_FORMAT'
  | 'INITRAMFS_FORMAT'
  | 'PACKAGE_FORMAT'
  | 'DEPMOD_CONFIG'
  | 'DEPMOD_FORMAT'
  | 'KERNEL_NOT_FOUND'
  /** The root directory given (`root`, `--root`) does not exist or is not a directory. */
  | 'ROOT_NOT_FOUND'
  | 'IO'
  | 'USAGE'
  | 'LOCKED'
  | 'UNSAFE_PATH'
  | 'EXTERNAL_TOOL'
  /** A read, a decompression or a scan went past its budget (size, time, entries): see README "Limits". */
  | 'LIMIT'
  /** A FIFO, device, socket or directory where a regular file must be: refused, never opened for reading. */
  | 'NOT_A_FILE';

/** Where a KabiError happened: the file, and the byte offset or line in it. */
export interface KabiErrorOptions {
  file?: string | undefined;
  offset?: number | undefined;
  line?: number | undefined;
  cause?: unknown;
}

/**
 * The error kabi throws for bad input, a missing kernel or root, a lock held by another run, an
 * unsafe path or a failed tool. `code` says which; `file`, `offset` and `line` say where, and
 * the message reads `file: at offset 0x…: detail`.
 */
export class KabiError extends Error {
  readonly code: KabiErrorCode;
  readonly file: string | undefined;
  readonly offset: number | undefined;
  readonly line: number | undefined;
  /** The message without the file/offset prefix. */
  readonly detail: string;

  constructor(code: KabiErrorCode, detail: string, opts: KabiErrorOptions = {}) {
    super(formatMessage(detail, opts), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KabiError';
    this.code = code;
    this.detail = detail;
    this.file = opts.file;
    this.offset = opts.offset;
    this.line = opts.line;
  }

  /** The same error attributed to a file (used when a pure parser is called on bytes first). */
  withFile(file: string): KabiError {
    if (this.file !== undefined) return this;
    const e = new KabiError(this.code, this.detail, { file, offset: this.offset, line: this.line, cause: this.cause });
    e.stack = this.stack;
    return e;
  }
}

function formatMessage(detail: string, opts: KabiErrorOptions): string {
  let where = opts.file ?? '';
  if (opts.line !== undefined) where += `${where ? ':' : 'line '}${opts.line}`;
  if (opts.offset !== undefined) where += `${where ? ': ' : ''}at offset 0x${opts.offset.toString(16)}`;
  return where ? `${where}: ${detail}` : detail;
}

/** Whether `e` is a KabiError (rather than a bug or an error from Node itself). */
export function isKabiError(e: unknown): e is KabiError {
  return e instanceof KabiError;
}

/** Attach a file name to a KabiError thrown by a pure parser; other errors pass through. */
export function attributeTo<T>(file: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (file !== undefined && e instanceof KabiError) throw e.withFile(file);
    throw e;
  }
}
