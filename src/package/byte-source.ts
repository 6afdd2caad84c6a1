import type { FileHandle } from 'node:fs/promises';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';

const CHUNK = 1024 * 1024;

/**
 * A package file opened for positioned reads: the containers (ar, the RPM lead and headers)
 * are read by offset, the payload is streamed from its start to its end in chunks, and a
 * seekable payload is re-read one block at a time. One handle per package, closed by the owner.
 */
export class ByteSource {
  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  static async open(fs: KabiFs, file: string, maxBytes: number): Promise<ByteSource> {
    let handle: FileHandle;
    try {
      handle = await fs.open(file, 'r');
    } catch (e) {
      throw new KabiError('IO', `cannot open package: ${(e as Error).message}`, { file, cause: e });
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new KabiError('PACKAGE_FORMAT', 'not a regular file', { file });
      if (st.size > maxBytes) throw new KabiError('PACKAGE_FORMAT', `package is ${st.size} bytes, more than the ${maxBytes}-byte limit`, { file });
      return new ByteSource(file, handle, st.size);
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw e;
    }
  }

  /** Exactly `length` bytes at `offset`; a short file is a truncated package. */
  async read(offset: number, length: number, what: string): Promise<Uint8Array> {
    if (offset + length > this.size) {
      throw new KabiError('PACKAGE_FORMAT', `truncated ${what}: needs ${length} bytes, the file ends ${Math.max(0, this.size - offset)} bytes later`, { file: this.file, offset });
    }
    return this.readInto(Buffer.allocUnsafe(length), offset);
  }

  /**
   * The bytes of [start, start+length) as a stream of chunks. With `reuse`, two buffers take
   * turns: a chunk is overwritten two chunks later, so the consumer must be done with it by
   * then (a payload of hundreds of megabytes then costs the garbage collector nothing).
   */
  async *chunks(start: number, length: number, reuse = false): AsyncGenerator<Uint8Array> {
    let at = start;
    const end = start + length;
    const ring = reuse ? [Buffer.allocUnsafe(Math.min(CHUNK, length)), Buffer.allocUnsafe(Math.min(CHUNK, length))] : undefined;
    for (let i = 0; at < end; i++) {
      const n = Math.min(CHUNK, end - at);
      yield ring ? await this.readInto(ring[i % 2]!.subarray(0, n), at) : await this.read(at, n, 'payload');
      at += n;
    }
  }

  private async readInto(buf: Buffer, offset: number): Promise<Buffer> {
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.handle.read(buf, done, buf.length - done, offset + done);
      if (bytesRead === 0) throw new KabiError('PACKAGE_FORMAT', 'truncated payload: the file changed while it was read', { file: this.file, offset: offset + done });
      done += bytesRead;
    }
    return buf;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}
