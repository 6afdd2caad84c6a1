import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Every module file under dir (sorted). */
export function moduleFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(n)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Run `fn` over items with at most `n` in flight, keeping order. */
export async function pool<T, R>(items: readonly T[], n: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** stdout of a command; a non-zero exit is returned as the status, not thrown. */
export async function capture(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string; status: number }> {
  try {
    const r = await execFileP(cmd, args, { maxBuffer: 1 << 30, encoding: 'utf8' });
    return { stdout: r.stdout, stderr: r.stderr, status: 0 };
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; code?: number };
    return { stdout: x.stdout ?? '', stderr: x.stderr ?? '', status: typeof x.code === 'number' ? x.code : 1 };
  }
}

/**
 * stdout of `cmd ...args FILE` for each file, as if run once per file, but with one shell per
 * chunk of files doing the loop: a process per file costs node far more than it costs sh
 * (tens of thousands of kmod runs in the corpus tests). Two chunks run at once, one per core.
 */
export async function perFile(cmd: string, args: readonly string[], files: readonly string[]): Promise<string[]> {
  const MARK = '\u0001kabi-next-file\u0001\n';
  // The marker cannot occur in an output: kmod prints names, paths and hex, never \u0001.
  const q = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;
  const script = `for f; do printf '\\001kabi-next-file\\001\\n'; ${[cmd, ...args].map(q).join(' ')} "$f" 2>/dev/null; done; exit 0`;
  const parts = await pool(chunks(files, 400), 2, async (c) => {
    const r = await capture('sh', ['-c', script, 'sh', ...c]);
    if (r.status !== 0) throw new Error(`sh looping ${cmd} over ${c.length} files exited ${r.status}: ${r.stderr}`);
    const each = r.stdout.split(MARK).slice(1);
    if (each.length !== c.length) throw new Error(`${cmd}: ${each.length} outputs for ${c.length} files`);
    return each;
  });
  return parts.flat();
}

/** Run the built kabi bin (the README's command) and parse its JSON. */
export function kabiJson<T>(args: string[]): T {
  const r = spawnSync(process.execPath, ['dist/bin/kabi.js', ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`kabi ${args.slice(0, 3).join(' ')} … exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
