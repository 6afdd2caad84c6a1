import type { CliIo } from './io.js';

/**
 * A one-line progress indicator on stderr for work that takes long enough to make a user wonder
 * (scanning thousands of modules, rewriting an image). It draws only when stderr is a terminal:
 * package scriptlets, CI logs and pipes get nothing, so their output stays byte-for-byte stable.
 */
export interface Progress {
  /** Say what is being done now; `done`/`total` give a count when known. */
  update(label: string, done?: number, total?: number): void;
  /** Erase the line (call before printing anything else to stderr, and at the end). */
  clear(): void;
}

export interface ProgressOptions {
  /** Minimum milliseconds between two redraws (a redraw per file would slow the work down). */
  intervalMs?: number;
  /** Terminal width to cut the line at; default: $COLUMNS, else 80. */
  columns?: number;
  now?: () => number;
}

const QUIET: Progress = { update: () => undefined, clear: () => undefined };

export function createProgress(io: Pick<CliIo, 'stderr' | 'isTTY' | 'env'>, prefix: string, opts: ProgressOptions = {}): Progress {
  if (!io.isTTY) return QUIET;
  const interval = opts.intervalMs ?? 100;
  const now = opts.now ?? Date.now;
  const envColumns = Number.parseInt(io.env.COLUMNS ?? '', 10);
  const columns = opts.columns ?? (Number.isFinite(envColumns) && envColumns > 20 ? envColumns : 80);
  let last = -Infinity;
  let drawn = 0;
  const draw = (text: string) => {
    // Cut before the last column: writing into it makes some terminals wrap and scroll.
    const line = text.length >= columns ? text.slice(0, columns - 2) + '…' : text;
    io.stderr(`\r${line}${' '.repeat(Math.max(0, drawn - line.length))}`);
    drawn = line.length;
  };
  return {
    update(label, done, total) {
      const t = now();
      const final = total !== undefined && done === total;
      if (!final && t - last < interval) return;
      last = t;
      const count = done === undefined ? '' : total === undefined ? ` ${done}` : ` ${done}/${total}`;
      draw(`${prefix}:${count} ${label}`);
    },
    clear() {
      if (drawn === 0) return;
      io.stderr(`\r${' '.repeat(drawn)}\r`);
      drawn = 0;
    },
  };
}

/**
 * Run `work` with a progress line that says what is being done and for how long, redrawn
 * every `tickMs` while it runs (for work whose library call reports no steps of its own:
 * judging a kernel, planning links, a depmod run). Nothing at all when stderr is not a
 * terminal; the line is erased before `work`'s result is printed.
 */
export async function withProgress<T>(io: Pick<CliIo, 'stderr' | 'isTTY' | 'env'>, prefix: string, label: string, work: (progress: Progress) => Promise<T>, opts: ProgressOptions & { tickMs?: number } = {}): Promise<T> {
  const progress = createProgress(io, prefix, opts);
  if (!io.isTTY) return work(progress);
  const now = opts.now ?? Date.now;
  const start = now();
  let current = label;
  const draw = () => progress.update(`${current} (${Math.floor((now() - start) / 1000)} s)`);
  const ticking: Progress = {
    update(l, done, total) {
      current = done === undefined ? l : total === undefined ? `${l} ${done}` : `${l} ${done}/${total}`;
      draw();
    },
    clear: () => progress.clear(),
  };
  draw();
  const timer = setInterval(draw, opts.tickMs ?? 250);
  timer.unref();
  try {
    return await work(ticking);
  } finally {
    clearInterval(timer);
    progress.clear();
  }
}
