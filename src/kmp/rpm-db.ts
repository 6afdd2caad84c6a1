import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import { runCommand, type Runner } from '../util/run.js';

/** What weak-modules2 needs to know about an installed package. */
export interface RpmPackage {
  readonly name: string;
  readonly version: string;
  readonly release: string;
  readonly epoch: number | undefined;
  /** name-version-release, as the KMP scriptlets pass it. */
  readonly nvr: string;
  readonly provides: readonly string[];
  /** Every path the package owns, as installed. */
  readonly files: readonly string[];
}

/** The installed packages of one system. */
export interface RpmDatabase {
  /** Packages whose name matches an `rpm -qa` glob, in the database's order. */
  query(nameGlob: string): Promise<RpmPackage[]>;
}

export interface RpmDatabaseOptions {
  /** The system whose database is read: `rpm --root ROOT` when it is not `/`. */
  root?: string;
  /** Runs rpm (tests replay a recorded database through it). */
  runner?: Runner;
  /** The rpm program (default `rpm` on PATH). */
  rpm?: string;
  /** `--dbpath` inside the root, for a system whose database is not where this rpm looks by default. */
  dbpath?: string;
}

/*
 * One rpm process answers everything: a header line per package, then its provides and files.
 * weak-modules2 runs `rpm -qa`, then `rpm -q --qf providename` and `rpm -ql` per package; the
 * answers are the same, read once.
 */
export const RPM_QUERY_FORMAT = '@\\t%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{EPOCH}\\n[P\\t%{PROVIDENAME}\\n][F\\t%{FILENAMES}\\n]';

/** The argv of the query, after the rpm program. */
export function rpmQueryArgs(nameGlob: string, opts: Pick<RpmDatabaseOptions, 'root' | 'dbpath'> = {}): string[] {
  const root = opts.root ?? '/';
  return [
    ...(posix.resolve(root) === '/' ? [] : ['--root', root]),
    ...(opts.dbpath ? ['--dbpath', opts.dbpath] : []),
    '-qa',
    '--nodigest',
    '--nosignature',
    '--qf',
    RPM_QUERY_FORMAT,
    nameGlob,
  ];
}

/** Read rpm's answer to RPM_QUERY_FORMAT. Lines that fit no record are an error: rpm said something else. */
export function parseRpmQuery(text: string): RpmPackage[] {
  const out: RpmPackage[] = [];
  let cur: { name: string; version: string; release: string; epoch: number | undefined; provides: string[]; files: string[] } | undefined;
  const flush = () => {
    if (cur) out.push({ ...cur, nvr: `${cur.name}-${cur.version}-${cur.release}` });
  };
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line === '') return;
    const tab = line.indexOf('\t');
    const tag = tab < 0 ? line : line.slice(0, tab);
    const rest = tab < 0 ? '' : line.slice(tab + 1);
    if (tag === '@') {
      flush();
      const [name, version, release, epoch] = rest.split('\t');
      if (!name || !version || !release || epoch === undefined) throw new KabiError('EXTERNAL_TOOL', `rpm's answer has a malformed package line: ${JSON.stringify(line)}`, { line: i + 1 });
      cur = { name, version, release, epoch: /^\d+$/.test(epoch) ? Number(epoch) : undefined, provides: [], files: [] };
    } else if ((tag === 'P' || tag === 'F') && cur) {
      (tag === 'P' ? cur.provides : cur.files).push(rest);
    } else {
      throw new KabiError('EXTERNAL_TOOL', `rpm's answer has an unexpected line: ${JSON.stringify(line)}`, { line: i + 1 });
    }
  });
  flush();
  return out;
}

/** The database of the system under `root`, read with rpm. */
export function rpmDatabase(opts: RpmDatabaseOptions = {}): RpmDatabase {
  const run = opts.runner ?? runCommand;
  const rpm = opts.rpm ?? 'rpm';
  return {
    async query(nameGlob) {
      const args = rpmQueryArgs(nameGlob, opts);
      const r = await run(rpm, args);
      if (r.spawnError !== undefined) throw new KabiError('EXTERNAL_TOOL', `cannot run ${rpm} (${r.spawnError}): the rpm database cannot be read`);
      if (r.status !== 0) throw new KabiError('EXTERNAL_TOOL', `${rpm} ${args.join(' ')} failed (${r.signal ?? `exit status ${r.status}`}): ${r.stderr.trim()}`);
      return parseRpmQuery(r.stdout);
    },
  };
}
