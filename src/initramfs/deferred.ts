import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound, nodeFs, readTextIfExists } from '../fs.js';
import { discoverKernels } from '../kernel/discover.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { findKernel } from './check.js';
import { processAlive } from './image-lock.js';
import { refreshInitramfs, type RefreshOptions, type RefreshResult, type RefreshStrategy } from './refresh.js';

/*
 * Deferred refreshes, for package transactions: each %post (or weak-modules'
 * --check-initramfs-prog) that changes modules records its kernel and the module files that
 * changed (cheap, no image touched), and one %posttrans `kabi initramfs flush` takes the same
 * decision every path takes for each recorded image, once, with every change recorded for it.
 * Records live in /run (as SUSE's /run/regenerate-initrd does): a reboot before the flush
 * boots the old, still consistent image. Each call writes its own record file, so two
 * transactions recording at once lose nothing; a flush claims a kernel's records by renaming
 * them, and records claimed by a flush that was killed are put back by the next one.
 */

export const DEFAULT_STATE_DIR = '/run/kabi/initramfs';
/**
 * SUSE's records (weak-modules2 with INITRD_IN_POSTTRANS, the kernel scriptlets): an empty file
 * per kernel release, or `all`; its regenerate-initrd-posttrans rebuilds them. kabi's flush
 * honours them too, so a kernel recorded by either tool is rebuilt once by whichever runs first.
 */
export const SUSE_STATE_DIR = '/run/regenerate-initrd';

export interface DeferredRecord {
  readonly release: string;
  /** Module paths that changed; undefined means "look at the whole image". */
  readonly changedModules: readonly string[] | undefined;
  readonly since: string;
}

interface StateOptions {
  root?: string;
  fs?: KabiFs;
  stateDir?: string;
}

function checkRelease(release: string): void {
  if (release === '' || release.startsWith('.') || release.includes('/') || release.includes('\0') || release.includes('@')) {
    throw new KabiError('USAGE', `"${release}" is not a kernel release`);
  }
}

/** Host path of the state directory, refusing one that leads outside the root through a link. */
async function stateHost(fs: KabiFs, root: string, stateDir: string, create: boolean): Promise<string | undefined> {
  const host = hostPath(root, stateDir);
  if (create) await fs.mkdir(host, { recursive: true, mode: 0o755 });
  const resolved = await resolveInRoot(fs, root, host);
  if (resolved === undefined) return undefined;
  const st = await fs.lstat(resolved);
  if (!st.isDirectory()) throw new KabiError('UNSAFE_PATH', 'the deferred-refresh state path is not a directory', { file: resolved });
  return resolved;
}

/** `RELEASE.json` (earlier kabi) or `RELEASE@PID-HEX.json`: the release a record file is for. */
function releaseOfFile(name: string): string | undefined {
  const m = /^([^@/]+)(?:@[0-9a-z-]+)?\.json$/.exec(name);
  return m?.[1];
}

/** Record that `release`'s image needs a refresh (one file per call; listDeferred merges them). */
export async function deferRefresh(opts: StateOptions & { release: string; changedModules?: readonly string[] }): Promise<DeferredRecord> {
  checkRelease(opts.release);
  const fs = opts.fs ?? nodeFs;
  const dir = (await stateHost(fs, opts.root ?? '/', opts.stateDir ?? DEFAULT_STATE_DIR, true))!;
  const id = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const file = posix.join(dir, `${opts.release}@${id}.json`);
  const record: DeferredRecord = { release: opts.release, changedModules: opts.changedModules === undefined ? undefined : [...new Set(opts.changedModules)].sort(), since: new Date().toISOString() };
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(record) + '\n', { flag: 'wx', mode: 0o644 });
  await fs.rename(tmp, file);
  return record;
}

async function readRecord(fs: KabiFs, file: string): Promise<DeferredRecord | undefined> {
  const text = await readTextIfExists(fs, file);
  if (text === undefined) return undefined;
  try {
    const j = JSON.parse(text) as { release?: unknown; changedModules?: unknown; since?: unknown };
    if (typeof j.release !== 'string') throw new Error('no release');
    const changed = Array.isArray(j.changedModules) ? j.changedModules.filter((x): x is string => typeof x === 'string') : undefined;
    return { release: j.release, changedModules: changed, since: typeof j.since === 'string' ? j.since : '' };
  } catch (e) {
    throw new KabiError('USAGE', `unreadable deferred-refresh record: ${(e as Error).message}`, { file });
  }
}

function merge(records: readonly DeferredRecord[]): DeferredRecord {
  const whole = records.some((r) => r.changedModules === undefined);
  return {
    release: records[0]!.release,
    changedModules: whole ? undefined : [...new Set(records.flatMap((r) => r.changedModules ?? []))].sort(),
    since: records.map((r) => r.since).sort()[0] ?? '',
  };
}

/** Record files per release, in name order. */
async function recordFiles(fs: KabiFs, dir: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const name of (await fs.readdir(dir)).sort()) {
    const release = releaseOfFile(name);
    if (release === undefined) continue;
    out.set(release, [...(out.get(release) ?? []), posix.join(dir, name)]);
  }
  return out;
}

/** Kernels waiting for a refresh, each with every change recorded for it, in name order. */
export async function listDeferred(opts: StateOptions = {}): Promise<DeferredRecord[]> {
  const fs = opts.fs ?? nodeFs;
  let dir: string | undefined;
  try {
    dir = await stateHost(fs, opts.root ?? '/', opts.stateDir ?? DEFAULT_STATE_DIR, false);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
  const out: DeferredRecord[] = [];
  if (dir !== undefined) {
    for (const [release, files] of await recordFiles(fs, dir)) {
      const records = (await Promise.all(files.map((f) => readRecord(fs, f)))).filter((r): r is DeferredRecord => r !== undefined && r.release === release);
      if (records.length > 0) out.push(merge(records));
    }
  }
  if (opts.stateDir === undefined || opts.stateDir === DEFAULT_STATE_DIR) {
    for (const release of (await suseRecords(fs, opts.root ?? '/')).releases) {
      if (!out.some((r) => r.release === release)) out.push({ release, changedModules: undefined, since: '' });
    }
  }
  return out.sort((a, b) => (a.release < b.release ? -1 : a.release > b.release ? 1 : 0));
}

/** SUSE's records: the files, and the kernels they name (`all`: every installed kernel). */
async function suseRecords(fs: KabiFs, root: string): Promise<{ dir?: string; files: string[]; releases: string[] }> {
  let dir: string | undefined;
  try {
    dir = await stateHost(fs, root, SUSE_STATE_DIR, false);
  } catch (e) {
    if (isNotFound(e)) return { files: [], releases: [] };
    throw e;
  }
  if (dir === undefined) return { files: [], releases: [] };
  const files = (await fs.readdir(dir)).sort();
  const named = files.filter((f) => f !== 'all' && !f.startsWith('.') && !f.includes('\0'));
  const all = files.includes('all') ? (await discoverKernels({ root, fs })).map((k) => k.release) : [];
  return { dir, files, releases: [...new Set([...named, ...all])].sort() };
}

/**
 * Take SUSE's records over as kabi's own (whole-image checks), then remove them: kabi's record
 * is written before SUSE's goes, so a crash in between costs at most a second rebuild.
 */
async function adoptSuseRecords(fs: KabiFs, root: string, stateDir: string): Promise<void> {
  const suse = await suseRecords(fs, root);
  if (suse.dir === undefined) return;
  for (const release of suse.releases) await deferRefresh({ root, fs, stateDir, release });
  for (const f of suse.files) {
    const st = await fs.lstat(posix.join(suse.dir, f)).catch(() => undefined);
    if (st !== undefined && !st.isDirectory()) await fs.unlink(posix.join(suse.dir, f)).catch((e: unknown) => { if (!isNotFound(e)) throw e; });
  }
}

export interface FlushOptions extends Omit<RefreshOptions, 'release' | 'changedModules' | 'strategy'> {
  strategy?: Exclude<RefreshStrategy, 'defer'>;
}

/** What flushing one deferred kernel did: the refresh, or the error, or that the kernel is gone. */
export interface FlushOutcome {
  readonly release: string;
  readonly result?: RefreshResult;
  readonly error?: Error;
  /** The kernel is gone: its record was dropped. */
  readonly dropped?: boolean;
}

const CLAIM = '.flushing-';

/**
 * Refresh every recorded kernel once. A kernel's records are claimed by renaming them first,
 * so two flushes running at once never rebuild the same image twice; they are removed after
 * success and put back after a failure (to be retried by the next flush). Records a killed
 * flush had claimed, and half-written ones a killed recorder left, are dealt with first.
 */
export async function flushDeferred(opts: FlushOptions = {}): Promise<FlushOutcome[]> {
  const fs = opts.fs ?? nodeFs;
  const root = opts.root ?? '/';
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  if (!opts.dryRun && stateDir === DEFAULT_STATE_DIR) await adoptSuseRecords(fs, root, stateDir);
  let dir: string | undefined;
  try {
    dir = await stateHost(fs, root, stateDir, false);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  // A dry run lists SUSE's records too, with no state directory of kabi's.
  if (dir === undefined && !opts.dryRun) return [];
  if (!opts.dryRun) await recoverClaims(fs, dir!);
  const records = await listDeferred(opts);
  const out: FlushOutcome[] = [];
  for (const r of records) {
    const refresh = () => refreshInitramfs({ ...opts, release: r.release, strategy: opts.strategy ?? 'auto', ...(r.changedModules ? { changedModules: r.changedModules } : {}) });
    if (opts.dryRun) {
      try {
        out.push({ release: r.release, result: await refresh() });
      } catch (e) {
        out.push({ release: r.release, error: e as Error });
      }
      continue;
    }
    const claimed: [string, string][] = [];
    for (const f of (await recordFiles(fs, dir!)).get(r.release) ?? []) {
      const c = `${f}${CLAIM}${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        await fs.rename(f, c);
        claimed.push([f, c]);
      } catch (e) {
        if (!isNotFound(e)) throw e; // another flush took it
      }
    }
    if (claimed.length === 0) continue;
    // Records written after listDeferred ran are in the claim too: take their changes.
    const all = (await Promise.all(claimed.map(([, c]) => readRecord(fs, c)))).filter((x): x is DeferredRecord => x !== undefined);
    const rec = all.length > 0 ? merge(all) : r;
    try {
      let installed = true;
      try {
        await findKernel(fs, root, rec.release);
      } catch (e) {
        if (!(e instanceof KabiError && e.code === 'KERNEL_NOT_FOUND')) throw e;
        installed = false;
      }
      if (!installed) {
        for (const [, c] of claimed) await fs.unlink(c).catch(() => undefined);
        out.push({ release: rec.release, dropped: true });
        continue;
      }
      const result = await refreshInitramfs({ ...opts, release: rec.release, strategy: opts.strategy ?? 'auto', ...(rec.changedModules ? { changedModules: rec.changedModules } : {}) });
      for (const [, c] of claimed) await fs.unlink(c).catch(() => undefined);
      out.push({ release: rec.release, result });
    } catch (e) {
      for (const [f, c] of claimed) await fs.rename(c, f).catch(() => undefined);
      out.push({ release: rec.release, error: e as Error });
    }
  }
  return out;
}

/** Put back the records a killed flush had claimed; remove what a killed recorder half wrote. */
async function recoverClaims(fs: KabiFs, dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    const at = name.indexOf(CLAIM);
    const tmp = /^(.+\.json)\.tmp$/.exec(name);
    const pid = at >= 0 ? Number.parseInt(name.slice(at + CLAIM.length), 10) : tmp ? Number.parseInt(/@(\d+)-/.exec(name)?.[1] ?? '', 10) : Number.NaN;
    if (!Number.isSafeInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    const p = posix.join(dir, name);
    if (at >= 0) await fs.rename(p, posix.join(dir, name.slice(0, at))).catch(() => undefined);
    else await fs.unlink(p).catch(() => undefined);
  }
}
