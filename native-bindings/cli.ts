import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { KabiError } from '../src/errors.js';
import { corrupt, OutputSink, tooSlow, type Compression, type Where } from './common.js';

/** Full path of an executable on PATH (read now: tests change PATH), or undefined. */
export function findTool(name: string): string | undefined {
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  for (const dir of dirs) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface RunToolOptions {
  format: Compression;
  /** 'decompress': a failure means the input is corrupt; 'compress': the tool failed. */
  mode: 'decompress' | 'compress';
  where: Where;
  /** Stop the tool and fail once stdout passes this many bytes. */
  limit?: number;
  /** Exit codes other than 0 that still mean success (lzop and bzip2 use 2 for warnings). */
  okExitCodes?: readonly number[];
}

const STDERR_KEEP = 4096;

/**
 * The environment a codec program runs with: untranslated messages (LC_ALL=C) for the error
 * text, and none of the variables that change what the program does with its data
 * (XZ_DEFAULTS=--ignore-check would accept a corrupt module; ZSTD_CLEVEL, GZIP, … change an
 * image kabi writes).
 */
export function toolEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  for (const name of ['XZ_OPT', 'XZ_DEFAULTS', 'ZSTD_CLEVEL', 'ZSTD_NBTHREADS', 'GZIP', 'LZ4_CLEVEL']) delete env[name];
  return env;
}

/**
 * Pipes `input` through `tool args...` and returns its stdout. A missing tool is
 * UNSUPPORTED_COMPRESSION (kabi can still do everything else); a non-zero exit carries the
 * tool's own stderr, which is the most precise description of what is wrong.
 */
export function runTool(tool: string, args: readonly string[], input: Uint8Array, opts: RunToolOptions): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const sink = new OutputSink(opts.format, opts.limit ?? Number.MAX_SAFE_INTEGER, opts.where);
    let stderr = '';
    let settled = false;

    const child = spawn(tool, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: toolEnv(),
    });

    // Decoding hostile input has a time budget; compressing kabi's own output does not.
    const { deadline } = opts.where;
    const timer =
      opts.mode === 'decompress' && deadline !== undefined
        ? setTimeout(() => fail(tooSlow(opts.format, opts.where.timeoutMs ?? 0, opts.where)), Math.max(0, deadline - performance.now()))
        : undefined;
    const fail = (err: KabiError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(err);
    };

    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        fail(
          new KabiError('UNSUPPORTED_COMPRESSION', `${opts.format} ${opts.mode}ion needs the '${tool}' program, which is not installed`, {
            file: opts.where.file,
          }),
        );
      } else {
        fail(new KabiError('EXTERNAL_TOOL', `cannot run ${tool}: ${e.message}`, { file: opts.where.file, cause: e }));
      }
    });

    child.stdout.on('data', (chunk: Buffer) => {
      if (settled) return;
      try {
        sink.push(chunk);
      } catch {
        // Killing the tool here is what stops a bomb: nothing more is read or kept.
        fail(sink.exceeded());
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < STDERR_KEEP) stderr += chunk.toString('utf8');
    });

    // The tool may exit (bad magic, killed on the limit) before reading all of stdin; the
    // resulting EPIPE is not the error worth reporting, the exit status is.
    child.stdin.on('error', () => {});
    child.stdin.end(input);

    child.on('close', (code, signal) => {
      if (settled) return;
      if (code === 0 || (code !== null && opts.okExitCodes?.includes(code))) {
        settled = true;
        clearTimeout(timer);
        resolve(sink.result());
        return;
      }
      const msg = tidy(stderr) || (signal ? `killed by ${signal}` : `exit status ${String(code)}`);
      if (opts.mode === 'decompress') {
        fail(corrupt(opts.format, `${tool}: ${msg}`, opts.where));
      } else {
        fail(new KabiError('EXTERNAL_TOOL', `${tool} failed (${signal ?? `exit status ${String(code)}`}): ${msg}`, { file: opts.where.file }));
      }
    });
  });
}

function tidy(s: string): string {
  return s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ')
    .slice(0, 1000);
}
