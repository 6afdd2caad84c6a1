const CODES = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;

/** ANSI colour only when writing to a terminal (and NO_COLOR is not set). */
export function paint(text: string, style: keyof typeof CODES, tty: boolean): string {
  if (!tty || process.env.NO_COLOR) return text;
  return `\x1b[${CODES[style]}m${text}\x1b[0m`;
}
