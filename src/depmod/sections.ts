/**
 * A payload of named binary sections, read back as views into the loaded bytes (no parse,
 * no copy): typed arrays, Latin-1 string columns, and one JSON value for what is small.
 * From a file, a section is read when first asked for, or only the elements asked for.
 *
 *   u32 magic, u32 count, count × (u32 name, u32 offset, u32 length), then the data, each
 *   section starting on an 8-byte boundary. The data is in the writing host's byte order,
 *   and so is the magic: a file carried to a host of the other order fails its check.
 */

const MAGIC = 0x4b534543; // 'CESK' little-endian

/** Strings a lazy column reads one by one before it reads the whole column. */
const SINGLE_STRINGS = 256;

export type SectionData = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array | BigUint64Array;

export class SectionWriter {
  private readonly parts: [number, Uint8Array][] = [];

  add(name: number, data: SectionData): this {
    this.parts.push([name, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
    return this;
  }

  json(name: number, value: unknown): this {
    return this.add(name, Buffer.from(JSON.stringify(value), 'utf8'));
  }

  strings(name: number, column: StringColumn): this {
    return this.add(name, column.bytes).add(name + 1, column.ends);
  }

  finish(): Uint8Array {
    const head = 8 + 12 * this.parts.length;
    let pos = pad(head);
    const offsets = this.parts.map(([, d]) => {
      const at = pos;
      pos = pad(pos + d.length);
      return at;
    });
    const out = Buffer.alloc(pos);
    new Uint32Array(out.buffer, out.byteOffset, 1)[0] = MAGIC;
    out.writeUInt32LE(this.parts.length, 4);
    this.parts.forEach(([name, d], i) => {
      out.writeUInt32LE(name, 8 + 12 * i);
      out.writeUInt32LE(offsets[i]!, 12 + 12 * i);
      out.writeUInt32LE(d.length, 16 + 12 * i);
      out.set(d, offsets[i]!);
    });
    return out;
  }
}

/** Bytes read at offsets (from a file left open, or from memory); each read 8-byte aligned. */
export interface ByteSource {
  readonly size: number;
  read(at: number, len: number): Uint8Array;
}

export function memorySource(bytes: Uint8Array): ByteSource {
  // Typed views need their element alignment: a misplaced payload is copied once.
  const b = bytes.byteOffset % 8 === 0 ? bytes : Uint8Array.from(bytes);
  return { size: b.length, read: (at, len) => b.subarray(at, at + len) };
}

export class SectionReader {
  private readonly index = new Map<number, [number, number]>();
  private readonly loaded = new Map<number, Uint8Array>();
  private readonly src: ByteSource;

  /** Throws on anything malformed. */
  constructor(source: Uint8Array | ByteSource) {
    this.src = source instanceof Uint8Array ? memorySource(source) : source;
    const size = this.src.size;
    if (size < 8) throw new Error('not a section payload');
    const head = this.src.read(0, 8);
    if (new Uint32Array(head.buffer, head.byteOffset, 1)[0] !== MAGIC) throw new Error('not a section payload');
    const count = new DataView(head.buffer, head.byteOffset, 8).getUint32(4, true);
    if (8 + 12 * count > size) throw new Error('section table past the end');
    const table = this.src.read(8, 12 * count);
    const v = new DataView(table.buffer, table.byteOffset, table.byteLength);
    for (let i = 0; i < count; i++) {
      const at = v.getUint32(4 + 12 * i, true);
      const len = v.getUint32(8 + 12 * i, true);
      if (at % 8 !== 0 || at + len > size) throw new Error('section past the end');
      this.index.set(v.getUint32(12 * i, true), [at, len]);
    }
  }

  has(name: number): boolean {
    return this.index.has(name);
  }

  /** A section's length in bytes. */
  length(name: number): number {
    return this.get(name)[1];
  }

  bytes(name: number): Buffer {
    const b = this.u8(name);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }

  u8(name: number): Uint8Array {
    let b = this.loaded.get(name);
    if (b === undefined) {
      const [at, len] = this.get(name);
      b = this.src.read(at, len);
      this.loaded.set(name, b);
    }
    return b;
  }

  /** Bytes [from, to) of a section, without reading the rest. */
  u8Range(name: number, from: number, to: number): Uint8Array {
    const whole = this.loaded.get(name);
    if (whole !== undefined) return whole.subarray(from, to);
    const [at, len] = this.get(name);
    if (from < 0 || to > len || to < from) throw new Error(`range past section ${name}`);
    return this.src.read(at + from, to - from);
  }

  u16(name: number): Uint16Array {
    return this.view(name, 2, (b, o, n) => new Uint16Array(b, o, n));
  }

  u32(name: number): Uint32Array {
    return this.view(name, 4, (b, o, n) => new Uint32Array(b, o, n));
  }

  i32(name: number): Int32Array {
    return this.view(name, 4, (b, o, n) => new Int32Array(b, o, n));
  }

  f64(name: number): Float64Array {
    return this.view(name, 8, (b, o, n) => new Float64Array(b, o, n));
  }

  u64(name: number): BigUint64Array {
    return this.view(name, 8, (b, o, n) => new BigUint64Array(b, o, n));
  }

  /** Elements [from, to) of a u32 section. */
  u32Range(name: number, from: number, to: number): Uint32Array {
    const b = this.u8Range(name, 4 * from, 4 * to);
    return new Uint32Array(b.buffer, b.byteOffset, to - from);
  }

  u64Range(name: number, from: number, to: number): BigUint64Array {
    const b = this.u8Range(name, 8 * from, 8 * to);
    return new BigUint64Array(b.buffer, b.byteOffset, to - from);
  }

  f64Range(name: number, from: number, to: number): Float64Array {
    const b = this.u8Range(name, 8 * from, 8 * to);
    return new Float64Array(b.buffer, b.byteOffset, to - from);
  }

  json<T>(name: number): T {
    return JSON.parse(this.bytes(name).toString('utf8')) as T;
  }

  strings(name: number): StringColumn {
    return new StringColumn(this.bytes(name), this.u32(name + 1));
  }

  /**
   * A string column read one string at a time (two small reads each), until all of it is
   * asked for or enough strings were that one read of the whole is cheaper.
   */
  lazyStrings(name: number): LoadedStrings {
    let whole: StringColumn | undefined;
    let singles = 0;
    const column = () => (whole ??= this.strings(name));
    return {
      length: this.length(name + 1) / 4,
      column,
      get: (i) => {
        if (whole !== undefined || ++singles > SINGLE_STRINGS) return column().get(i);
        const ends = this.u32Range(name + 1, i === 0 ? 0 : i - 1, i + 1);
        const start = i === 0 ? 0 : ends[0]! + 1;
        const b = this.u8Range(name, start, ends[i === 0 ? 0 : 1]!);
        return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
      },
    };
  }

  private get(name: number): [number, number] {
    const s = this.index.get(name);
    if (s === undefined) throw new Error(`no section ${name}`);
    return s;
  }

  private view<T>(name: number, size: number, make: (b: ArrayBufferLike, offset: number, n: number) => T): T {
    const b = this.u8(name);
    if (b.length % size !== 0) throw new Error(`section ${name} is not a whole number of elements`);
    return make(b.buffer, b.byteOffset, b.length / size);
  }
}

/** Strings by number, cut out one by one or all read at once. */
export interface LoadedStrings {
  readonly length: number;
  get(i: number): string;
  column(): StringColumn;
}

/**
 * Strings stored as Latin-1 bytes, each followed by a NUL (C strings hold none), and where
 * each ends; one is cut out only when asked for.
 */
export class StringColumn {
  constructor(
    readonly bytes: Buffer,
    /** ends[i]: where string i's NUL is. */
    readonly ends: Uint32Array,
  ) {}

  static of(strings: readonly string[]): StringColumn {
    const ends = new Uint32Array(strings.length);
    let pos = 0;
    for (let i = 0; i < strings.length; i++) {
      pos += strings[i]!.length;
      ends[i] = pos++;
    }
    return new StringColumn(strings.length === 0 ? Buffer.alloc(0) : Buffer.from(strings.join('\0') + '\0', 'latin1'), ends);
  }

  get length(): number {
    return this.ends.length;
  }

  start(i: number): number {
    return i === 0 ? 0 : this.ends[i - 1]! + 1;
  }

  get(i: number): string {
    return this.bytes.toString('latin1', this.start(i), this.ends[i]!);
  }
}

/**
 * The index of `s` among NUL-joined strings whose NULs are at `ends` (the first such string,
 * or with `last` the last one), found by searching the bytes: for the few lookups that do not
 * justify building a map.
 */
export function findString(bytes: Buffer, ends: Uint32Array, s: string, last = false): number | undefined {
  const needle = Buffer.from(s + '\0', 'latin1');
  let found: number | undefined;
  for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) {
    if (at !== 0 && bytes[at - 1] !== 0) continue;
    let lo = 0;
    let hi = ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid]! < at) lo = mid + 1;
      else hi = mid;
    }
    found = lo;
    if (!last) break;
  }
  return found;
}

export class StringColumnBuilder {
  private readonly chunks: Buffer[] = [];
  private readonly ends = new Grow(Uint32Array);
  private pos = 0;

  push(s: string): void {
    const b = Buffer.from(s + '\0', 'latin1');
    this.chunks.push(b);
    this.pos += b.length;
    this.ends.push(this.pos - 1);
  }

  /** Strings [from, to) of another column, copied as one piece. */
  pushRange(c: StringColumn, from: number, to: number): void {
    if (to <= from) return;
    const a = c.start(from);
    const b = c.ends[to - 1]! + 1;
    this.chunks.push(c.bytes.subarray(a, b));
    this.ends.pushRange(c.ends, from, to, this.pos - a);
    this.pos += b - a;
  }

  finish(): StringColumn {
    return new StringColumn(Buffer.concat(this.chunks, this.pos), this.ends.finish());
  }
}

type Numeric = Uint8Array<ArrayBuffer> | Int32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>;
type NumericView = Uint8Array | Int32Array | Uint32Array;

/** A typed array grown as it is pushed to; ranges of another copied natively. */
export class Grow<T extends Numeric> {
  private arr: T;
  length = 0;

  constructor(
    private readonly Type: { new (n: number): T },
    capacity = 256,
  ) {
    this.arr = new Type(capacity);
  }

  private room(n: number): void {
    if (this.length + n <= this.arr.length) return;
    const grown = new this.Type(Math.max(this.arr.length * 2, this.length + n));
    grown.set(this.arr.subarray(0, this.length));
    this.arr = grown;
  }

  push(v: number): void {
    this.room(1);
    this.arr[this.length++] = v;
  }

  /** src[from, to), each plus `add`. */
  pushRange(src: NumericView, from: number, to: number, add = 0): void {
    const n = to - from;
    if (n <= 0) return;
    this.room(n);
    this.arr.set(src.subarray(from, to), this.length);
    if (add !== 0) for (let k = this.length; k < this.length + n; k++) this.arr[k] = this.arr[k]! + add;
    this.length += n;
  }

  at(i: number): number {
    return this.arr[i]!;
  }

  set(i: number, v: number): void {
    this.arr[i] = v;
  }

  finish(): T {
    return this.arr.slice(0, this.length) as T;
  }
}

function pad(n: number): number {
  return (n + 7) & ~7;
}
