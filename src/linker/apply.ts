import { posix } from 'node:path';
import { hasCommitMarker, recoverInterruptedReplace, withinTransaction } from '../depmod/atomic-write.js';
import { LEGACY_CACHE_FILE } from '../depmod/cache-file.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { errnoCode, isNotFound, lexists, nodeFs } from '../fs.js';
import { discoverKernels } from '../kernel/discover.js';
import { hostPath, resolveInRoot } from '../kernel/paths.js';
import { COMMITTED, JOURNAL, JOURNAL_TMP, markCommitted, readJournal, removeIfPresent, safeRelative, staged, stagingDir, STAGING_SUFFIX, syncDir, writeJournal, type Journal, type LinkChange } from './journal.js';
import type { LockOptions } from './lock.js';
import { depmodStep } from './post.js';
import { modulesBase, withRootLock } from './root-lock.js';
import type { KernelPlan, Plan } from './types.js';
import { readWeakUpdates } from './weak-updates-state.js';

const WU = 'weak-updates';

/**
 * What happens to a kernel's depmod files after its links change. `transactional` steps
 * (kabi's own depmod) write inside the kernel's transaction: links and indexes are replaced
 * together or not at all. Others (the system's depmod) run after the links are committed.
 */
export interface DepmodStep {
  readonly transactional: boolean;
  /** Whether depmod runs for this kernel (it may say why not). */
  wants(release: string): boolean;
  /** Refresh the kernel's files; false when they could not be (the previous ones are unchanged). */
  run(release: string): Promise<boolean>;
  /** Release what the step kept open across kernels (reader threads); called once, at the end. */
  close?(): void;
}

export interface ApplyOptions {
  fs?: KabiFs;
  /** How long to wait for another run's lock. */
  lockTimeoutMs?: number;
  onLockWait?: LockOptions['onWait'];
  /**
   * depmod after the links: kabi's own, inside each kernel's transaction (`native`, the
   * default), none, or a step of the caller's (see depmodStep in post.ts).
   */
  depmod?: DepmodStep | 'native' | 'none';
  /** depmod's warnings, with the default step. */
  onWarning?: (line: string) => void;
  /** Checked between kernels: once aborted, no further kernel is started. */
  signal?: AbortSignal;
}

/** Where applyPlan left each kernel of the plan. */
export interface ApplyResult {
  /** Kernels whose links (and depmod files) were brought to the plan. */
  readonly done: readonly string[];
  /**
   * Kernels not brought to the plan, with why: `old` ones are wholly as they were; an
   * `unsettled` one could not even be put back (the file system failing on), and the next
   * run finishes or undoes it before anything else.
   */
  readonly failed: readonly { release: string; error: Error; state: 'old' | 'unsettled' }[];
  /** Kernels done whose staging could not be removed (the next run removes it). */
  readonly cleanupLeft: readonly { release: string; error: Error }[];
  /** The run stopped at a safe point before these kernels. */
  readonly notStarted: readonly string[];
}

/**
 * Apply a plan under the root's lock, one kernel at a time, each kernel one transaction:
 * its journal is written first, every new link is made beside its place and every link to
 * change or go is kept under a second name, then each link is switched with one rename (an
 * existing link is never missing: it points at its old target or its new one), then the
 * kernel's depmod files are replaced (see DepmodStep), and only then is the journal marked
 * done. A failure undoes the kernel's links; a crash is undone (or finished, once the depmod
 * files are in place) by the next run, which recovers every kernel before it reads anything.
 */
export async function applyPlan(plan: Plan, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const fs = opts.fs ?? nodeFs;
  return withRootLock(
    plan.root,
    async () => {
      await recoverRoot(plan.root, { fs });
      const depmod =
        opts.depmod === 'none'
          ? undefined
          : opts.depmod === undefined || opts.depmod === 'native'
            ? depmodStep(plan, { root: plan.root, fs, kernels: await discoverKernels({ root: plan.root, fs }), requireInstalled: false, log: () => undefined, warn: opts.onWarning ?? (() => undefined) })
            : opts.depmod;
      const result = { done: [] as string[], failed: [] as ApplyResult['failed'][number][], cleanupLeft: [] as ApplyResult['cleanupLeft'][number][], notStarted: [] as string[] };
      try {
        for (const k of plan.kernels) {
          if (opts.signal?.aborted) {
            result.notStarted.push(k.release);
            continue;
          }
          let o: Outcome;
          try {
            o = await applyKernel(fs, plan, k, depmod);
          } catch (e) {
            // Before the switch (the plan is stale, weak-updates/ is not a directory…): nothing changed.
            if (!(e instanceof KabiError) && errnoCode(e) === undefined) throw e;
            o = { state: 'old', error: e as Error };
          }
          if (o.state === 'done') result.done.push(k.release);
          else result.failed.push({ release: k.release, error: o.error, state: o.state });
          if (o.cleanup) result.cleanupLeft.push({ release: k.release, error: o.cleanup });
        }
      } finally {
        depmod?.close?.();
      }
      return result;
    },
    { fs, ...(opts.lockTimeoutMs !== undefined ? { timeoutMs: opts.lockTimeoutMs } : {}), ...(opts.onLockWait ? { onWait: opts.onLockWait } : {}) },
  );
}

type Outcome = ({ state: 'done' } | { state: 'old' | 'unsettled'; error: Error }) & { cleanup?: Error };

/** One kernel's transaction, and where it ended. */
async function applyKernel(fs: KabiFs, plan: Plan, k: KernelPlan, depmod: DepmodStep | undefined): Promise<Outcome> {
  const wantsDepmod = k.depmod && depmod !== undefined && depmod.wants(k.release);
  const depmodFailed = () => new KabiError('IO', `depmod could not refresh ${k.release}`);
  const moduleDir = await kernelDir(fs, plan.root, k.release);
  const journal = moduleDir === undefined ? undefined : await journalFor(fs, moduleDir, k, plan.mode === 'remove-kernel' ? 'all' : 'links');
  if (moduleDir === undefined || journal === undefined) {
    // No link changes: depmod alone, whose replacement is all or nothing by itself.
    if (moduleDir !== undefined && plan.mode === 'remove-kernel') await pruneEmpty(fs, moduleDir, undefined);
    return !wantsDepmod || (await depmod!.run(k.release)) ? { state: 'done' } : { state: 'old', error: depmodFailed() };
  }
  // (the directory's identity, for depmod's outputs to join the transaction: known before anything changes)
  const dir = await fs.stat(moduleDir);
  try {
    await switchLinks(fs, moduleDir, journal);
  } catch (e) {
    return { state: (await lexists(fs, posix.join(moduleDir, JOURNAL))) ? 'unsettled' : 'old', error: e as Error };
  }
  let committed = false;
  let error: Error | undefined;
  if (!wantsDepmod || !depmod!.transactional) {
    // The links alone are the transaction; the system's depmod runs after it.
    try {
      await markCommitted(fs, moduleDir);
      committed = true;
    } catch (e) {
      error = e as Error;
    }
  } else {
    const tx = {
      dev: dir.dev,
      ino: dir.ino,
      // The depmod outputs join; its cache of summaries is only an aid and does not.
      joins: (names: readonly string[]) => names.some((n) => n !== LEGACY_CACHE_FILE),
      committed: async () => {
        await markCommitted(fs, moduleDir);
        committed = true;
      },
    };
    try {
      if (!(await withinTransaction(tx, () => depmod!.run(k.release)))) error = depmodFailed();
      // Nothing depmod writes changed (a link nothing loads from): the links alone commit.
      else if (!committed) {
        await markCommitted(fs, moduleDir);
        committed = true;
      }
    } catch (e) {
      error = e as Error;
    }
  }
  if (!committed) {
    // Whether depmod's outputs got into place decides, exactly as after a crash: finished
    // forwards if they did (their commit marker by this run), undone otherwise.
    let r: Recovery;
    try {
      r = await recoverKernel(fs, moduleDir);
    } catch (e) {
      return { state: 'unsettled', error: e as Error };
    }
    if (r !== 'finished') return { state: 'old', error: error ?? depmodFailed() };
  } else {
    try {
      await finish(fs, moduleDir, journal);
    } catch (e) {
      return { state: 'done', cleanup: e as Error };
    }
  }
  if (wantsDepmod && !depmod!.transactional) await depmod!.run(k.release);
  return { state: 'done' };
}

export async function kernelDir(fs: KabiFs, root: string, release: string): Promise<string | undefined> {
  for (const base of ['/lib/modules', '/usr/lib/modules']) {
    const real = await resolveInRoot(fs, root, hostPath(root, `${base}/${release}`));
    if (real === undefined) continue;
    try {
      if ((await fs.stat(real)).isDirectory()) return real;
    } catch {
      /* not a directory */
    }
  }
  return undefined;
}

/** The journal of a kernel's ops, checked against what weak-updates holds now; undefined when there is nothing to change. */
async function journalFor(fs: KabiFs, moduleDir: string, k: KernelPlan, prune: Journal['prune']): Promise<Journal | undefined> {
  if (k.ops.length === 0) return undefined;
  const state = await readWeakUpdates(fs, '/', moduleDir);
  const wu = posix.join(moduleDir, WU);
  const rel = (sys: string) => {
    const r = sys.replace(/^\/(usr\/)?lib\/modules\/[^/]+\/weak-updates\//, '');
    if (r === sys || !safeRelative(r)) throw new KabiError('UNSAFE_PATH', `the plan names a link outside weak-updates/: ${sys}`);
    return r;
  };
  const changes: LinkChange[] = [];
  for (const op of k.ops) {
    const link = rel(op.link);
    const now = state.links.get(posix.join(wu, link));
    const expected = op.kind === 'add' ? undefined : op.previousTarget;
    if (now !== expected && !(op.kind === 'add' && now === op.target)) {
      throw new KabiError('IO', `${posix.join(wu, link)} changed since the plan was made (now ${now ?? 'absent'}); nothing was changed for kernel ${k.release}`);
    }
    if (op.kind === 'add' && now === op.target) continue;
    // A regular file someone put where the link goes is data: never replaced.
    if (state.files.includes(posix.join(wu, link))) throw new KabiError('UNSAFE_PATH', 'is a file, not a link kabi made (refusing to replace it)', { file: posix.join(wu, link) });
    changes.push({ link, from: now ?? null, to: op.kind === 'remove' ? null : op.target! });
  }
  if (changes.length === 0) return undefined;
  // Directories the new links need: made (recorded first, so a crash removes them again),
  // never written through when something else is in their place.
  const made: string[] = [];
  const known = new Set(state.dirs.map((d) => posix.relative(moduleDir, d)));
  if (!state.exists) made.push(WU);
  else known.add(WU);
  for (const c of changes) {
    if (c.to === null) continue;
    const parts = c.link.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = posix.join(WU, ...parts.slice(0, i));
      if (known.has(d) || made.includes(d)) continue;
      try {
        await fs.lstat(posix.join(moduleDir, d));
        throw new KabiError('UNSAFE_PATH', 'is not a directory (refusing to write through it)', { file: posix.join(moduleDir, d) });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      made.push(d);
    }
  }
  return { version: 2, pid: process.pid, changes, made, prune };
}

/** Journal, then every new link and backup made in the staging directory, then one rename (or unlink) per link. */
async function switchLinks(fs: KabiFs, moduleDir: string, j: Journal): Promise<void> {
  try {
    await writeJournal(fs, moduleDir, j);
  } catch (e) {
    await removeIfPresent(fs, posix.join(moduleDir, JOURNAL_TMP)).catch(() => undefined);
    throw e;
  }
  const wu = posix.join(moduleDir, WU);
  try {
    const stage = stagingDir(moduleDir);
    await fs.rm(stage, { recursive: true, force: true });
    await fs.mkdir(stage, { mode: 0o700 });
    for (const d of j.made) await fs.mkdir(posix.join(moduleDir, d));
    for (const [i, c] of j.changes.entries()) {
      const link = posix.join(wu, c.link);
      if (c.to !== null) await fs.symlink(c.to, staged(moduleDir, i, 'new'));
      if (c.from !== null) {
        // The link itself (a hard link to it: no space needed to put it back), or a copy.
        try {
          await fs.link(link, staged(moduleDir, i, 'old'));
        } catch (e) {
          if (!['EPERM', 'EXDEV', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK'].includes(errnoCode(e) ?? '')) throw e;
          await fs.symlink(c.from, staged(moduleDir, i, 'old'));
        }
      }
    }
    // Everything the switch needs exists: from here on only renames and unlinks.
    for (const [i, c] of j.changes.entries()) {
      const link = posix.join(wu, c.link);
      if (c.to !== null) await fs.rename(staged(moduleDir, i, 'new'), link);
      else await fs.unlink(link);
    }
    for (const d of touchedDirs(wu, j)) await syncDir(fs, d);
  } catch (e) {
    await rollback(fs, moduleDir, j).catch(() => undefined);
    throw e;
  }
}

function touchedDirs(wu: string, j: Journal): string[] {
  return [...new Set(j.changes.map((c) => posix.dirname(posix.join(wu, c.link))))];
}

/** Put every link back as the journal found it, remove what the transaction made, then the journal. */
async function rollback(fs: KabiFs, moduleDir: string, j: Journal): Promise<void> {
  const wu = posix.join(moduleDir, WU);
  for (const [i, c] of [...j.changes.entries()].reverse()) {
    const link = posix.join(wu, c.link);
    const old = staged(moduleDir, i, 'old');
    if (await lexists(fs, old)) {
      await fs.mkdir(posix.dirname(link), { recursive: true });
      await fs.rename(old, link);
    } else if (c.from === null && c.to !== null && (await readLink(fs, link)) === c.to) {
      await fs.unlink(link);
    }
  }
  for (const d of [...j.made].reverse()) {
    try {
      await fs.rmdir(posix.join(moduleDir, d));
    } catch (e) {
      if (!isNotFound(e) && errnoCode(e) !== 'ENOTEMPTY' && errnoCode(e) !== 'EEXIST') throw e;
    }
  }
  for (const d of touchedDirs(wu, j)) await syncDir(fs, d).catch(() => undefined);
  await fs.rm(stagingDir(moduleDir), { recursive: true, force: true });
  await removeIfPresent(fs, posix.join(moduleDir, JOURNAL));
  await syncDir(fs, moduleDir).catch(() => undefined);
}

/** After the commit: the kept previous links go, directories left empty are pruned, then the note. */
async function finish(fs: KabiFs, moduleDir: string, j: Journal): Promise<void> {
  await fs.rm(stagingDir(moduleDir), { recursive: true, force: true });
  await pruneEmpty(fs, moduleDir, j.prune === 'all' ? undefined : j.changes.filter((c) => c.to === null).map((c) => c.link));
  await removeIfPresent(fs, posix.join(moduleDir, COMMITTED));
}

/**
 * Remove directories under weak-updates/ left empty by removed links (weak-modules prunes
 * them: `rmdir --parents`), or with `removed` undefined every empty one. weak-updates/
 * itself stays.
 */
async function pruneEmpty(fs: KabiFs, moduleDir: string, removed: readonly string[] | undefined): Promise<void> {
  const wu = posix.join(moduleDir, WU);
  const rmdir = async (d: string) => {
    try {
      await fs.rmdir(d);
      return true;
    } catch (e) {
      if (isNotFound(e) || errnoCode(e) === 'ENOTEMPTY' || errnoCode(e) === 'EEXIST') return false;
      throw e;
    }
  };
  if (removed !== undefined) {
    for (const link of removed) {
      for (let d = posix.dirname(link); d !== '.'; d = posix.dirname(d)) if (!(await rmdir(posix.join(wu, d)))) break;
    }
    return;
  }
  let state;
  try {
    state = await readWeakUpdates(fs, '/', moduleDir);
  } catch (e) {
    if (e instanceof KabiError) return;
    throw e;
  }
  for (const d of [...state.dirs].reverse()) await rmdir(d);
}

async function readLink(fs: KabiFs, p: string): Promise<string | undefined> {
  try {
    return await fs.readlink(p);
  } catch (e) {
    if (isNotFound(e) || errnoCode(e) === 'EINVAL') return undefined;
    throw e;
  }
}

/** What recovery did to a kernel an interrupted run left: nothing to do, links put back, the commit finished, staging removed. */
export type Recovery = 'none' | 'undone' | 'finished' | 'cleaned';

/**
 * Finish or undo what a run killed in this kernel left, before anything reads its state (the
 * caller holds the root's lock). A transaction whose depmod outputs were committed (their
 * commit marker by the same pid, or the journal already marked done) is finished; any other
 * is undone: every link back to its previous target, the new depmod files never renamed in.
 */
export async function recoverKernel(fs: KabiFs, moduleDir: string): Promise<Recovery> {
  let names: string[];
  try {
    names = await fs.readdir(moduleDir);
  } catch (e) {
    if (isNotFound(e)) return 'none';
    throw e;
  }
  let result: Recovery = 'none';
  if (names.includes(JOURNAL_TMP)) {
    await fs.unlink(posix.join(moduleDir, JOURNAL_TMP)); // written, never committed: nothing changed yet
    result = 'cleaned';
  }
  if (names.includes(JOURNAL) && !(await isLegacyJournal(fs, moduleDir))) {
    const j = (await readJournal(fs, moduleDir, JOURNAL))!;
    const forward = hasCommitMarker(names, j.pid);
    await recoverInterruptedReplace(fs, moduleDir, new Set([j.pid]));
    if (forward) {
      await redoSwitch(fs, moduleDir, j);
      await markCommitted(fs, moduleDir);
      await finish(fs, moduleDir, j);
      return 'finished';
    }
    await rollback(fs, moduleDir, j);
    return 'undone';
  }
  if (names.includes(COMMITTED)) {
    const j = (await readJournal(fs, moduleDir, COMMITTED))!;
    await recoverInterruptedReplace(fs, moduleDir, new Set([j.pid]));
    await finish(fs, moduleDir, j);
    return 'finished';
  }
  if (await legacyRecovery(fs, moduleDir, names)) return 'finished';
  return (await recoverInterruptedReplace(fs, moduleDir)) ? 'cleaned' : result;
}

/** A staging directory no journal refers to (its kernel's journal never written, or gone with the kernel). */
async function removeOrphanStaging(fs: KabiFs, base: string, name: string): Promise<boolean> {
  const kernel = posix.join(base, name.slice(1, -STAGING_SUFFIX.length));
  for (const j of [JOURNAL, COMMITTED]) if (await lexists(fs, posix.join(kernel, j))) return false;
  await fs.rm(posix.join(base, name), { recursive: true, force: true });
  return true;
}

/** Every link as the journal wants it (they already are when depmod ran; this is only a check that costs nothing). */
async function redoSwitch(fs: KabiFs, moduleDir: string, j: Journal): Promise<void> {
  const wu = posix.join(moduleDir, WU);
  for (const [i, c] of j.changes.entries()) {
    const link = posix.join(wu, c.link);
    const neu = staged(moduleDir, i, 'new');
    if (c.to !== null && (await lexists(fs, neu))) await fs.rename(neu, link);
    else if (c.to === null && (await readLink(fs, link)) === c.from) await fs.unlink(link);
  }
}

/**
 * kabi before 0.2 swapped a whole new weak-updates directory in with two renames (journal
 * `{new, old}`); finish or undo what such a run left.
 */
async function legacyRecovery(fs: KabiFs, moduleDir: string, names: readonly string[]): Promise<boolean> {
  const neu = posix.join(moduleDir, 'weak-updates.kabi-new');
  const old = posix.join(moduleDir, 'weak-updates.kabi-old');
  const hasNew = names.includes('weak-updates.kabi-new');
  const hasOld = names.includes('weak-updates.kabi-old');
  const legacyJournal = names.includes(JOURNAL) && (await isLegacyJournal(fs, moduleDir));
  if (!legacyJournal && !hasNew && !hasOld) return false;
  const cur = posix.join(moduleDir, WU);
  if (legacyJournal) {
    if (!(await lexists(fs, cur)) && hasNew) await fs.rename(neu, cur);
    else if (hasNew) await fs.rm(neu, { recursive: true, force: true });
    await fs.unlink(posix.join(moduleDir, JOURNAL));
  } else if (hasNew) {
    await fs.rm(neu, { recursive: true, force: true });
  }
  if (hasOld) {
    if (!(await lexists(fs, cur))) await fs.rename(old, cur);
    else await fs.rm(old, { recursive: true, force: true });
  }
  return true;
}

async function isLegacyJournal(fs: KabiFs, moduleDir: string): Promise<boolean> {
  try {
    const j = JSON.parse(new TextDecoder().decode(await fs.readFile(posix.join(moduleDir, JOURNAL)))) as { new?: unknown; version?: unknown };
    return j.version === undefined && j.new !== undefined;
  } catch {
    return false;
  }
}

/**
 * Recover every kernel directory under the root (the caller holds the root's lock). Returns
 * what was done per directory that needed anything, and the directories that could not be
 * recovered, with why (their kernels are then left alone).
 */
export async function recoverRoot(root: string, opts: { fs?: KabiFs } = {}): Promise<{ recovered: Map<string, Recovery>; failed: Map<string, Error> }> {
  const fs = opts.fs ?? nodeFs;
  const recovered = new Map<string, Recovery>();
  const failed = new Map<string, Error>();
  const base = await modulesBase(fs, root);
  if (base === undefined) return { recovered, failed };
  const names = (await fs.readdir(base)).sort();
  for (const name of names) {
    if (name.startsWith('.')) continue; // not a kernel (staging, kabi preserve's trees)
    const dir = posix.join(base, name);
    try {
      if (!(await fs.lstat(dir)).isDirectory()) continue;
      const r = await recoverKernel(fs, dir);
      if (r !== 'none') recovered.set(name, r);
    } catch (e) {
      if (!(e instanceof KabiError) && errnoCode(e) === undefined) throw e;
      failed.set(name, e as Error);
    }
  }
  // Last: staging left where no kernel's journal needs it any more.
  for (const name of names) {
    if (!name.startsWith('.') || !name.endsWith(STAGING_SUFFIX)) continue;
    try {
      if (await removeOrphanStaging(fs, base, name)) recovered.set(name, 'cleaned');
    } catch (e) {
      if (!(e instanceof KabiError) && errnoCode(e) === undefined) throw e;
      failed.set(name, e as Error);
    }
  }
  return { recovered, failed };
}

/** recoverRoot under the root's lock, for callers that do not hold it (tests, tools). Returns the kernels repaired. */
export async function recoverAll(root: string, opts: { fs?: KabiFs; lockTimeoutMs?: number } = {}): Promise<string[]> {
  const fs = opts.fs ?? nodeFs;
  const r = await withRootLock(root, () => recoverRoot(root, { fs }), { fs, ...(opts.lockTimeoutMs !== undefined ? { timeoutMs: opts.lockTimeoutMs } : {}) });
  if (r.failed.size > 0) {
    const [name, e] = [...r.failed][0]!;
    throw new KabiError('IO', `cannot recover ${name}: ${e.message}`);
  }
  return [...r.recovered.keys()];
}
