/**
 * RPM's version comparison (rpmvercmp): split into alternating runs of digits and
 * letters, ignore other separators, compare numbers numerically and letters
 * lexically; '~' sorts before anything (even the end), '^' after the end but before
 * anything else. Kernel releases such as "5.14.0-362.8.1.el9_3.x86_64", "6.12.7+deb12"
 * or "6.1.0~rc3" order the way a packager expects.
 * Returns -1, 0 or 1.
 */
export function rpmvercmp(a: string, b: string): -1 | 0 | 1 {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  const isAlnum = (c: string | undefined) => c !== undefined && /[A-Za-z0-9]/.test(c);
  const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
  const isAlpha = (c: string | undefined) => c !== undefined && /[A-Za-z]/.test(c);
  while (i < a.length || j < b.length) {
    while (i < a.length && !isAlnum(a[i]) && a[i] !== '~' && a[i] !== '^') i++;
    while (j < b.length && !isAlnum(b[j]) && b[j] !== '~' && b[j] !== '^') j++;

    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (!(i < a.length && j < b.length)) break;

    const numeric = isDigit(a[i]);
    const take = numeric ? isDigit : isAlpha;
    let ei = i;
    let ej = j;
    while (ei < a.length && take(a[ei])) ei++;
    while (ej < b.length && take(b[ej])) ej++;
    let x = a.slice(i, ei);
    let y = b.slice(j, ej);
    // A numeric run on one side and an alphabetic one on the other: numbers are newer.
    if (x === '') return -1;
    if (y === '') return numeric ? 1 : -1;
    if (numeric) {
      x = x.replace(/^0+/, '');
      y = y.replace(/^0+/, '');
      if (x.length !== y.length) return x.length > y.length ? 1 : -1;
    }
    if (x !== y) return x < y ? -1 : 1;
    i = ei;
    j = ej;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/** Sort kernel releases oldest first (use .reverse() or compareReleasesDesc for newest first). */
export function sortReleases(releases: Iterable<string>): string[] {
  return [...releases].sort(rpmvercmp);
}

export function compareReleasesDesc(a: string, b: string): number {
  return rpmvercmp(b, a);
}
