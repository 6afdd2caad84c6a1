import { KabiError } from '../errors.js';
import { latin1 } from '../elf/reader.js';

/** One DER TLV: tag byte, and the bounds of its contents inside the input. */
export interface Der {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
  readonly headerLength: number;
}

/**
 * Minimal bounds-checked DER walker, enough to find the signer, key id and digest of a
 * module's PKCS#7 signature. Indefinite lengths are refused (DER forbids them).
 */
export class DerReader {
  constructor(
    readonly bytes: Uint8Array,
    readonly file?: string,
    readonly base = 0,
  ) {}

  private fail(what: string, at: number): KabiError {
    return new KabiError('SIGNATURE_FORMAT', `PKCS#7 signature: ${what}`, { file: this.file, offset: this.base + at });
  }

  read(at: number, limit: number): Der {
    const b = this.bytes;
    if (at + 2 > limit) throw this.fail('truncated element', at);
    const tag = b[at]!;
    if ((tag & 0x1f) === 0x1f) throw this.fail('multi-byte tags are not used in PKCS#7', at);
    let len = b[at + 1]!;
    let p = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4) throw this.fail(`unsupported length encoding (0x${len.toString(16)})`, at + 1);
      if (p + n > limit) throw this.fail('truncated length', at + 1);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
      p += n;
    }
    if (p + len > limit) throw this.fail(`element of ${len} bytes runs past its container`, at);
    return { tag, start: p, end: p + len, headerLength: p - at };
  }

  /** The children of a constructed element. */
  children(el: Der): Der[] {
    const out: Der[] = [];
    for (let p = el.start; p < el.end; ) {
      const c = this.read(p, el.end);
      out.push(c);
      p = c.end;
    }
    return out;
  }

  expect(el: Der | undefined, tag: number, what: string): Der {
    if (!el || el.tag !== tag) throw this.fail(`expected ${what}`, el ? el.start - el.headerLength : 0);
    return el;
  }

  oid(el: Der): string {
    const b = this.bytes.subarray(el.start, el.end);
    if (b.length === 0) return '';
    const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
    let v = 0;
    for (let i = 1; i < b.length; i++) {
      v = v * 128 + (b[i]! & 0x7f);
      if ((b[i]! & 0x80) === 0) {
        parts.push(v);
        v = 0;
      }
    }
    return parts.join('.');
  }

  /** The bytes as Latin-1 characters, one flat string (not one string a byte, joined). */
  text(el: Der): string {
    return latin1(this.bytes, el.start, el.end);
  }

  content(el: Der): Uint8Array {
    return this.bytes.subarray(el.start, el.end);
  }
}
