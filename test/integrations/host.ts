import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * Runs the shipped integration files the way their host tools do: as programs found on PATH
 * (kabi and weak-modules from the built package), with the host tool's arguments, environment
 * and standard input, against a fixture root named by KABI_ROOT.
 */

export const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const INTEGRATIONS = join(REPO, 'integrations');
const DIST_BIN = join(REPO, 'dist/bin');

/** The commands the integration files call, by the kabi bin; the lead registers them in main.ts. */
const NEEDED = [
  ['status', 'status.js', 'statusCommand'],
  ['preserve', 'preserve.js', 'preserveCommand'],
  ['initramfs', 'initramfs.js', 'initramfsCommand'],
] as const;

let binDir: string | undefined;

/**
 * A directory with `kabi` and `weak-modules`, as npm installs them (links to dist/bin). Where
 * the built kabi does not list a command yet, `kabi` is a wrapper that registers it from the
 * built library, so the files can be exercised before main.ts lists them.
 */
export function installedBins(): string {
  if (binDir) return binDir;
  for (const f of ['kabi.js', 'weak-modules.js']) {
    if (!existsSync(join(DIST_BIN, f))) throw new Error(`dist/bin/${f} is missing: run \`npm run build\` first`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'kabi-bin-'));
  symlinkSync(join(DIST_BIN, 'weak-modules.js'), join(dir, 'weak-modules'));
  const help = spawnSync(process.execPath, [join(DIST_BIN, 'kabi.js'), '--help'], { encoding: 'utf8' }).stdout;
  const missing = NEEDED.filter(([name]) => !new RegExp(`^  ${name} `, 'm').test(help));
  if (missing.length === 0) {
    symlinkSync(join(DIST_BIN, 'kabi.js'), join(dir, 'kabi'));
  } else {
    const lib = join(REPO, 'dist/src/cli');
    const imports = missing.map(([, file, name]) => `commands.push((await import(${JSON.stringify(join(lib, 'commands', file))})).${name});`).join('\n');
    writeFileSync(
      join(dir, 'kabi-wrapper.mjs'),
      `import { commands, main } from ${JSON.stringify(join(lib, 'main.js'))};\nimport { processIo } from ${JSON.stringify(join(lib, 'io.js'))};\n${imports}\nprocess.exitCode = await main(process.argv.slice(2), processIo());\n`,
    );
    writeFileSync(join(dir, 'kabi'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} "$(dirname "$0")/kabi-wrapper.mjs" "$@"\n`);
    chmodSync(join(dir, 'kabi'), 0o755);
  }
  binDir = dir;
  return dir;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The environment a host tool gives its hooks: a plain PATH with the installed bins first. */
export function hostEnv(extra: Record<string, string>): Record<string, string> {
  // Every script defaults to the real system: a test must always point it at its fixture.
  if (!extra.KABI_ROOT) throw new Error('integration scripts run against a fixture root only: set KABI_ROOT');
  return { PATH: `${installedBins()}:${DIST_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, LC_ALL: 'C', HOME: tmpdir(), ...extra };
}

export function runSh(args: readonly string[], env: Record<string, string>, input = ''): RunResult {
  const r = spawnSync('sh', [...args], { env: hostEnv(env), input, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function integrationFile(rel: string): string {
  return readFileSync(join(INTEGRATIONS, rel), 'utf8');
}

/** [Section] key = value files (pacman hooks, systemd units): every value of each key, per section. */
export function parseIni(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = new Map();
      out.set(sec[1]!, section);
      continue;
    }
    if (!section) throw new Error(`key outside a section: ${line}`);
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    const value = eq < 0 ? '' : line.slice(eq + 1).trim();
    section.set(key, [...(section.get(key) ?? []), value]);
  }
  return out;
}
