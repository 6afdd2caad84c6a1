import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { ByteSource } from './byte-source.js';
import { CpioReader, type HeaderFile } from './cpio-stream.js';
import { readDeb } from './deb.js';
import { decodeStream, sniffCompression, type PayloadCompression } from './decode-stream.js';
import type { EntryVisitor, PayloadEntry, PayloadWhere } from './entry.js';
import { Deadline, resolveLimits, type PackageLimits } from './limits.js';
import { readRpm } from './rpm.js';
import { TarReader } from './tar.js';
import { readXzBlocks, standaloneBlock, type XzBlock } from './xz-blocks.js';

/** The container of a package: Debian's ar archive or an RPM. */
export type PackageFormat = 'deb' | 'rpm';

/** What a package says about itself before its payload is read. */
export interface PackageMeta {
  readonly file: string;
  readonly format: PackageFormat;
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  /**
   * Regular files the package installs, from its metadata (a .deb's md5sums, an RPM header's
   * file list without ghosts); undefined when the package does not say.
   */
  readonly listedFiles: readonly string[] | undefined;
}

/** Options of PackageArchive.open: the filesystem the package file is read from, and budgets. */
export interface OpenPackageOptions {
  fs?: KabiFs;
  limits?: Partial<PackageLimits>;
}

/** Whether to keep an entry's contents in memory during the pass (within the retain budget). */
export type RetainPolicy = (e: PayloadEntry) => boolean;

interface Payload {
  readonly offset: number;
  readonly length: number;
  readonly compression: PayloadCompression;
  readonly label: string;
  readonly headerFiles: readonly HeaderFile[] | undefined;
}

/** Decoded xz blocks kept for later reads: a module tree's files cluster, so neighbours share blocks. */
const BLOCK_CACHE = 4;

/**
 * One package file: its metadata at once, its payload indexed by one streaming pass, file
 * contents on demand. Contents the pass kept (within the retain budget) are served from
 * memory; others are read again: from the xz blocks that hold them when the payload is a
 * multi-block xz stream (every .deb Debian builds), otherwise by another pass that collects
 * every read asked for in the meantime. Nothing is written to disk.
 */
export class PackageArchive {
  private entries: PayloadEntry[] | undefined;
  private byPath = new Map<string, PayloadEntry>();
  /** Kept contents: the decoder's own output chunks (views into them), joined when first read. */
  private readonly retained = new Map<string, Uint8Array | Uint8Array[]>();
  private retainedBytes = 0;
  private blocks: XzBlock[] | undefined | null = null;
  private readonly blockCache = new Map<number, Promise<Uint8Array>>();
  private pending = new Map<string, { entry: PayloadEntry; waiters: { resolve: (b: Uint8Array) => void; reject: (e: unknown) => void }[] }>();
  private flushing: Promise<void> = Promise.resolve();
  private flushScheduled = false;

  private constructor(
    readonly meta: PackageMeta,
    private readonly src: ByteSource,
    private readonly payload: Payload,
    readonly limits: PackageLimits,
  ) {}

  static async open(file: string, opts: OpenPackageOptions = {}): Promise<PackageArchive> {
    const limits = resolveLimits(opts.limits);
    const src = await ByteSource.open(opts.fs ?? nodeFs, file, limits.maxPackageBytes);
    try {
      const head = await src.read(0, Math.min(8, src.size), 'package magic');
      const deadline = new Deadline(limits.timeoutMs, file);
      if (new TextDecoder('latin1').decode(head) === '!<arch>\n') {
        const d = await readDeb(src, limits, deadline);
        return new PackageArchive(
          { file, format: 'deb', name: d.name, version: d.version, arch: d.arch, listedFiles: d.listedFiles },
          src,
          { offset: d.data.offset, length: d.data.size, compression: d.dataCompression, label: d.data.name, headerFiles: undefined },
          limits,
        );
      }
      if (head[0] === 0xed && head[1] === 0xab && head[2] === 0xee && head[3] === 0xdb) {
        const r = await readRpm(src, limits);
        const payloadHead = await src.read(r.payloadOffset, Math.min(8, src.size - r.payloadOffset), 'RPM payload');
        // rpm leaves the compressor tag at its default when the payload is stored uncompressed: the bytes say.
        const compression = sniffCompression(payloadHead) ?? (new TextDecoder('latin1').decode(payloadHead.subarray(0, 5)) === '07070' ? 'none' : undefined);
        if (compression === undefined) throw new KabiError('PACKAGE_FORMAT', `RPM payload compressor "${r.compressor}" is not supported or does not match the payload`, { file, offset: r.payloadOffset });
        return new PackageArchive(
          { file, format: 'rpm', name: r.name, version: r.version, arch: r.arch, listedFiles: r.payloadPaths },
          src,
          { offset: r.payloadOffset, length: src.size - r.payloadOffset, compression, label: `RPM payload (${compression} cpio)`, headerFiles: r.files },
          limits,
        );
      }
      throw new KabiError('PACKAGE_FORMAT', 'neither a .deb (ar) nor an RPM: unknown package format', { file, offset: 0 });
    } catch (e) {
      await src.close().catch(() => undefined);
      throw e;
    }
  }

  get scanned(): boolean {
    return this.entries !== undefined;
  }

  /** Every payload entry in archive order (after scan()). */
  list(): readonly PayloadEntry[] {
    if (!this.entries) throw new Error(`${this.meta.file}: scan() first`);
    return this.entries;
  }

  /**
   * The indexing pass: every entry, and the contents of those `retain` accepts while the
   * retain budget lasts. A multi-block xz payload keeps only what `retain` wants; anything
   * else is cheap to read again there.
   */
  async scan(retain: RetainPolicy = () => true): Promise<void> {
    if (this.entries) return;
    if (this.blocks === null) this.blocks = this.payload.compression === 'xz' ? await readXzBlocks(this.src, this.payload.offset, this.payload.length) : undefined;
    const entries: PayloadEntry[] = [];
    await this.pass({
      entry: (e) => {
        entries.push(e);
        this.byPath.set(e.path, e);
        if (e.type !== 'file' || !retain(e) || this.retainedBytes + e.size > this.limits.retainBytes) return undefined;
        this.retainedBytes += e.size;
        const parts: Uint8Array[] = [];
        this.retained.set(e.path, parts);
        return (chunk) => void parts.push(chunk);
      },
    });
    this.entries = entries;
  }

  /** The entry at a system path (after scan()). */
  entry(path: string): PayloadEntry | undefined {
    return this.byPath.get(path);
  }

  /** Contents of a regular file of the payload. */
  readFile(path: string): Promise<Uint8Array> {
    let e = this.byPath.get(path);
    // A hard link reads as the file it links to.
    if (e?.type === 'hardlink') e = this.byPath.get(e.linkTarget!);
    if (!e || e.type !== 'file') return Promise.reject(new KabiError('IO', `no regular file ${path} in the package`, { file: this.meta.file }));
    const kept = this.retained.get(e.path);
    if (kept) {
      if (Array.isArray(kept)) {
        const joined = kept.length === 1 ? kept[0]! : Buffer.concat(kept);
        this.retained.set(e.path, joined);
        return Promise.resolve(joined);
      }
      return Promise.resolve(kept);
    }
    if (e.size === 0) return Promise.resolve(new Uint8Array(0));
    const entry = e;
    return new Promise((resolve, reject) => {
      const p = this.pending.get(entry.path);
      if (p) p.waiters.push({ resolve, reject });
      else this.pending.set(entry.path, { entry, waiters: [{ resolve, reject }] });
      this.scheduleFlush();
    });
  }

  close(): Promise<void> {
    return this.src.close();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Reads come in bursts (a pool of module reads): gather the burst, then serve it at once.
    setImmediate(() => {
      this.flushScheduled = false;
      const batch = this.pending;
      this.pending = new Map();
      this.flushing = this.flushing.then(() => this.serve(batch));
    });
  }

  private async serve(batch: Map<string, { entry: PayloadEntry; waiters: { resolve: (b: Uint8Array) => void; reject: (e: unknown) => void }[] }>): Promise<void> {
    const settle = (path: string, bytes: Uint8Array | undefined, err?: unknown) => {
      for (const w of batch.get(path)!.waiters) {
        if (bytes) w.resolve(bytes);
        else w.reject(err);
      }
    };
    try {
      if (this.blocks) {
        // In archive order, so the burst walks the blocks forward and each is decoded once.
        const wanted = [...batch.values()].map((b) => b.entry).sort((a, b) => a.dataOffset - b.dataOffset);
        for (const e of wanted) {
          try {
            settle(e.path, await this.readFromBlocks(e));
          } catch (err) {
            settle(e.path, undefined, err);
          }
        }
        return;
      }
      const got = new Map<string, Uint8Array>();
      const want = new Set(batch.keys());
      await this.pass(
        {
          entry: (e) => (e.type === 'file' && want.has(e.path) && this.byPath.get(e.path)?.dataOffset === e.dataOffset ? collector(e, (b) => got.set(e.path, b)) : undefined),
        },
        () => got.size === want.size,
      );
      for (const path of want) {
        const b = got.get(path);
        settle(path, b, b ? undefined : new KabiError('PACKAGE_FORMAT', `${path} was not found again in the payload (the file changed?)`, { file: this.meta.file }));
      }
    } catch (e) {
      for (const path of batch.keys()) settle(path, undefined, e);
    }
  }

  private async readFromBlocks(e: PayloadEntry): Promise<Uint8Array> {
    const blocks = this.blocks!;
    const out = new Uint8Array(e.size);
    const end = e.dataOffset + e.size;
    for (let i = blockAt(blocks, e.dataOffset); i < blocks.length && blocks[i]!.outOffset < end; i++) {
      const b = blocks[i]!;
      const data = await this.decodedBlock(i);
      const from = Math.max(e.dataOffset, b.outOffset);
      const to = Math.min(end, b.outOffset + b.uncompressed);
      out.set(data.subarray(from - b.outOffset, to - b.outOffset), from - e.dataOffset);
    }
    return out;
  }

  private decodedBlock(i: number): Promise<Uint8Array> {
    let p = this.blockCache.get(i);
    if (p) {
      // Most recently used last.
      this.blockCache.delete(i);
      this.blockCache.set(i, p);
      return p;
    }
    const b = this.blocks![i]!;
    p = (async () => {
      const deadline = new Deadline(this.limits.timeoutMs, this.meta.file);
      const parts: Uint8Array[] = [];
      const one = await standaloneBlock(this.src, b);
      const opts = { limit: b.uncompressed, deadline, file: this.meta.file, label: `${this.payload.label} block ${i}`, offset: b.offset };
      for await (const c of decodeStream('xz', (async function* () { yield one; })(), opts)) parts.push(c);
      const data = Buffer.concat(parts);
      if (data.length !== b.uncompressed) throw new KabiError('PACKAGE_FORMAT', `${opts.label} decoded to ${data.length} bytes, the index says ${b.uncompressed}`, { file: this.meta.file, offset: b.offset });
      return data;
    })();
    this.blockCache.set(i, p);
    p.catch(() => this.blockCache.delete(i));
    while (this.blockCache.size > BLOCK_CACHE) this.blockCache.delete(this.blockCache.keys().next().value!);
    return p;
  }

  /** One sequential pass over the payload; stops early once `done` says so. */
  private async pass(visitor: EntryVisitor, done?: () => boolean): Promise<void> {
    const pl = this.payload;
    const deadline = new Deadline(this.limits.timeoutMs, this.meta.file);
    const where: PayloadWhere = { file: this.meta.file, label: pl.label, base: pl.offset };
    const parser = pl.headerFiles ? new CpioReader(visitor, where, this.limits, pl.headerFiles) : new TarReader(visitor, where, this.limits);
    const stream = decodeStream(pl.compression, { source: this.src, start: pl.offset, length: pl.length }, {
      limit: this.limits.maxPayloadBytes,
      deadline,
      file: this.meta.file,
      label: pl.label,
      offset: pl.offset,
    });
    for await (const chunk of stream) {
      parser.push(chunk);
      if (done?.()) return;
    }
    parser.end();
  }
}

/** Index of the block holding payload offset `off`. */
function blockAt(blocks: readonly XzBlock[], off: number): number {
  let lo = 0;
  let hi = blocks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (blocks[mid]!.outOffset <= off) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** A content consumer that fills a buffer of the entry's size and hands it over when full. */
function collector(e: PayloadEntry, done: (b: Uint8Array) => void): (chunk: Uint8Array) => void {
  const buf = new Uint8Array(e.size);
  let at = 0;
  if (e.size === 0) done(buf);
  return (chunk) => {
    buf.set(chunk, at);
    at += chunk.length;
    if (at === e.size) done(buf);
  };
}
