import type { CliIo } from './io.js';

const CODES = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;

export type Style = keyof typeof CODES;

/**
 * Whether standard output gets colour: `--color always` or `never` decide; otherwise (auto)
 * only a terminal does, and not when NO_COLOR is set to anything (no-color.org: an explicit
 * --color always wins over it) or TERM is dumb (a terminal that shows escapes as text).
 */
export function colorEnabled(io: Pick<CliIo, 'stdoutIsTTY' | 'env' | 'color'>): boolean {
  if (io.color === 'always') return true;
  if (io.color === 'never') return false;
  if (!io.stdoutIsTTY) return false;
  const noColor = io.env['NO_COLOR'];
  if (noColor !== undefined && noColor !== '') return false;
  return io.env['TERM'] !== 'dumb';
}

/** `text` in `style` when colour is enabled for `io` (see colorEnabled), else as it is. */
export function paint(text: string, style: Style, io: Pick<CliIo, 'stdoutIsTTY' | 'env' | 'color'>): string {
  return colorEnabled(io) ? `\x1b[${CODES[style]}m${text}\x1b[0m` : text;
}

/** What a state means to the reader, and so its colour: never green for a failure. */
export type Tone = 'good' | 'warn' | 'bad';

const TONE: Record<Tone, Style> = { good: 'green', warn: 'yellow', bad: 'red' };

/** A painter for presentation code outside the CLI, which says only what each span means. */
export function painter(io: Pick<CliIo, 'stdoutIsTTY' | 'env' | 'color'>): (text: string, tone: Tone) => string {
  const on = colorEnabled(io);
  return (text, tone) => (on ? `\x1b[${CODES[TONE[tone]]}m${text}\x1b[0m` : text);
}
