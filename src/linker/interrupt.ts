import { constants } from 'node:os';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface Interruptions {
  /** Aborted at the first signal: the run stops at its next safe point. */
  readonly signal: AbortSignal;
  /** 128 + the signal's number once one arrived (the status a shell reports), else undefined. */
  status(): number | undefined;
  dispose(): void;
}

/**
 * SIGINT, SIGTERM and SIGHUP end a run at a safe point instead of wherever they land: the
 * linker checks between kernels (each kernel's links and depmod files are one transaction),
 * so a kernel in progress is completed and the next one is not started. (A kill -9 is
 * covered by the journal: the next run finishes or undoes what it interrupted.)
 */
export function deferInterruptions(): Interruptions {
  const ctl = new AbortController();
  let received: (typeof SIGNALS)[number] | undefined;
  const handler = (sig: (typeof SIGNALS)[number]) => {
    received ??= sig;
    ctl.abort();
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    signal: ctl.signal,
    status: () => (received === undefined ? undefined : 128 + constants.signals[received]),
    dispose: () => {
      for (const s of SIGNALS) process.off(s, handler);
    },
  };
}
