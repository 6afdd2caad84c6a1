import { KabiError } from '../errors.js';

const UNIT_MS: Record<string, number> = {
  s: 1000,
  min: 60_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/**
 * A retention period as systemd-tmpfiles spells ages: "4w", "10d", "12h", "30min", "90s", or
 * several summed ("1w 2d"). A bare "0" means no retention at all.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (t === '0') return 0;
  const re = /(\d+)\s*(min|s|m|h|d|w)/gy;
  let total = 0;
  let pos = 0;
  let matched = false;
  const s = t.replace(/\s+/g, ' ');
  while (pos < s.length) {
    if (s[pos] === ' ') {
      pos++;
      continue;
    }
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new KabiError('USAGE', `"${text}" is not a duration (examples: 4w, 10d, 12h, 30min)`);
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
    matched = true;
  }
  if (!matched) throw new KabiError('USAGE', `"${text}" is not a duration (examples: 4w, 10d, 12h, 30min)`);
  return total;
}
