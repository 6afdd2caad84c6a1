// SPDX-License-Identifier: GPL-2.0-or-later
// Types of toolchains.mjs, for the TypeScript tests.

export interface Toolchain {
  readonly name: 'host' | 'bookworm' | 'trixie';
  readonly compiler: string;
  readonly suite?: string;
  readonly packages?: readonly string[];
}

export const TOOLCHAINS: { readonly host: Toolchain; readonly bookworm: Toolchain; readonly trixie: Toolchain };

export function toolchainRoot(tc: Toolchain): string | undefined;
export function toolchainId(tc: Toolchain): string;

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export function toolchainRun(
  tc: Toolchain,
  argv: (dirs: Record<string, string>) => string[],
  opts?: {
    dirs?: Record<string, string>;
    cwd?: (dirs: Record<string, string>) => string;
    env?: Record<string, string>;
    hostEnv?: NodeJS.ProcessEnv;
    timeoutMs?: number;
  },
): Promise<RunResult>;
