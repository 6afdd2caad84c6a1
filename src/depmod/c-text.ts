/**
 * The few libc text routines whose exact behaviour shows through in depmod's output: fgets()
 * with a fixed buffer, strtoull(), sscanf("%u"). Text is Latin-1 (one char per byte).
 */

/** The successive results of fgets(buf, size, fp): pieces of at most size-1 bytes, a newline ending a piece. */
export function fgetsLines(text: string, size: number): string[] {
  const out: string[] = [];
  const max = size - 1;
  let p = 0;
  while (p < text.length) {
    const nl = text.indexOf('\n', p);
    const lineEnd = nl < 0 ? text.length : nl + 1;
    const end = Math.min(lineEnd, p + max);
    out.push(text.slice(p, end));
    p = end;
  }
  return out;
}

const SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);

/** strtoull(s, &end, base 16): the value and how many characters were used (0 when none). */
export function strtoull16(s: string): { value: bigint; used: number } {
  let i = 0;
  while (i < s.length && SPACE.has(s[i]!)) i++;
  let negative = false;
  if (s[i] === '+' || s[i] === '-') {
    negative = s[i] === '-';
    i++;
  }
  if (s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && isHex(s[i + 2])) i += 2;
  const start = i;
  while (i < s.length && isHex(s[i])) i++;
  if (i === start) return { value: 0n, used: 0 };
  let value = BigInt('0x' + s.slice(start, i));
  const max = (1n << 64n) - 1n;
  if (value > max) value = max; // ERANGE: ULLONG_MAX, end still past the digits
  else if (negative) value = (-value) & max;
  return { value, used: i };
}

function isHex(c: string | undefined): boolean {
  return c !== undefined && /^[0-9a-fA-F]$/.test(c);
}

/**
 * sscanf(s, "<lit>%u<lit>%u", …) for depmod's "char-major-%u-%u" patterns: how many numbers
 * were converted, and their values (unsigned, truncated to 32 bits as %u stores them).
 */
export function scanTwoUnsigned(s: string, prefix: string, separator: string): { count: number; a: number; b: number } {
  if (!s.startsWith(prefix)) return { count: 0, a: 0, b: 0 };
  const first = scanUnsigned(s, prefix.length);
  if (first === undefined) return { count: 0, a: 0, b: 0 };
  if (!s.startsWith(separator, first.next)) return { count: 1, a: first.value, b: 0 };
  const second = scanUnsigned(s, first.next + separator.length);
  if (second === undefined) return { count: 1, a: first.value, b: 0 };
  return { count: 2, a: first.value, b: second.value };
}

function scanUnsigned(s: string, at: number): { value: number; next: number } | undefined {
  let i = at;
  while (i < s.length && SPACE.has(s[i]!)) i++;
  let negative = false;
  if (s[i] === '+' || s[i] === '-') {
    negative = s[i] === '-';
    i++;
  }
  const start = i;
  while (i < s.length && s[i]! >= '0' && s[i]! <= '9') i++;
  if (i === start) return undefined;
  let v = BigInt(s.slice(start, i)) & 0xffffffffn;
  if (negative) v = -v & 0xffffffffn;
  return { value: Number(v), next: i };
}

/** The C locale's isalpha(). */
export function isAlpha(c: string | undefined): boolean {
  return c !== undefined && /^[A-Za-z]$/.test(c);
}

/** Decode bytes one char per byte. */
export function latin1Text(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
