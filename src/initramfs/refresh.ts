import { KabiError } from '../errors.js';
import { installedKmodFlavorSoon } from '../depmod/kmod-flavor.js';
import type { Runner } from '../util/run.js';
import { analyseImage, type Analysis, type ImageCheck } from './check.js';
import { deferRefresh } from './deferred.js';
import { FAMILY_GENERATOR } from './generator/index.js';
import { regenerateWithGenerator, type GeneratorName, type RegenerateResult } from './generators.js';
import { updateImage, withImageLock, type UpdateOptions, type UpdateResult } from './update.js';

/**
 * native: kabi rewrites the image itself (fails if only the generator can);
 * generator: run dracut/update-initramfs/mkinitcpio/kernel-install;
 * auto: native when possible, else the generator;
 * defer: record the kernel (and the changed modules) for `kabi initramfs flush`.
 */
export type RefreshStrategy = 'native' | 'generator' | 'auto' | 'defer';

export interface RefreshOptions extends UpdateOptions {
  strategy?: RefreshStrategy;
  generator?: GeneratorName;
  runner?: Runner;
  env?: Record<string, string | undefined>;
  /** Where deferred refreshes are recorded (system path inside the root). */
  stateDir?: string;
  /** How long to wait for another run that holds the image's lock (ms). */
  lockTimeoutMs?: number;
}

/** What an initramfs refresh did: nothing, a native rewrite, a generator run, or a record for later. */
export type RefreshAction = 'none' | 'native' | 'generator' | 'deferred';

/** What bringing a kernel's image up to date did (or would do, in a dry run), and the check it acted on. */
export interface RefreshResult {
  readonly release: string;
  readonly check: ImageCheck;
  /** What was done (or, in a dry run, what would be done). */
  readonly action: RefreshAction;
  readonly dryRun: boolean;
  readonly update: UpdateResult | undefined;
  readonly regenerate: RegenerateResult | undefined;
  /** Why the image is rebuilt (one line per change), empty when it is not. */
  readonly reasons: readonly string[];
  readonly notes: readonly string[];
  /** Leftovers of killed runs removed beside the image. */
  readonly cleaned: readonly string[];
}

/**
 * The one call every path makes after modules changed for kernel `release`: decide whether
 * the image's generator would now put anything else into it (check.ts), and if so rebuild it
 * natively, with the generator, or record it for later, by strategy. The image's lock is held
 * from before it is read until it is replaced. A dry run reads but never writes or runs anything.
 */
export async function refreshInitramfs(opts: RefreshOptions): Promise<RefreshResult> {
  const strategy = opts.strategy ?? 'auto';
  const dryRun = opts.dryRun === true;
  if (dryRun || strategy === 'defer') return act(await analyseImage(opts), opts, strategy, []);
  // A native update runs depmod over the new image's tree, in kmod's flavor: asked now, the
  // answer is found while the image is read. Asked once per process, whether or not an
  // update follows; it never rejects.
  if (strategy !== 'generator' && opts.depmod === undefined) void installedKmodFlavorSoon().catch(() => undefined);
  return withImageLock(opts, async (cleaned) => act(await analyseImage(opts), opts, strategy, cleaned));
}

async function act(analysis: Analysis, opts: RefreshOptions, strategy: RefreshStrategy, cleaned: readonly string[]): Promise<RefreshResult> {
  const { check } = analysis;
  const dryRun = opts.dryRun === true;
  const reasons = check.changes.map((c) => `${c.kind} ${c.detail}`);
  const base = { release: opts.release, check, dryRun, update: undefined, regenerate: undefined, reasons, cleaned };
  if (!check.needsUpdate) return { ...base, action: 'none', notes: [...check.notes] };

  if (strategy === 'defer') {
    if (!dryRun) {
      await deferRefresh({
        ...(opts.root !== undefined ? { root: opts.root } : {}),
        ...(opts.fs !== undefined ? { fs: opts.fs } : {}),
        ...(opts.stateDir !== undefined ? { stateDir: opts.stateDir } : {}),
        release: opts.release,
        ...(opts.changedModules !== undefined ? { changedModules: opts.changedModules } : {}),
      });
    }
    return { ...base, action: 'deferred', notes: [] };
  }

  const notes: string[] = [];
  const useGenerator = async (): Promise<RefreshResult> => {
    const regenerate = await regenerateWithGenerator({
      ...(opts.root !== undefined ? { root: opts.root } : {}),
      ...(opts.fs !== undefined ? { fs: opts.fs } : {}),
      release: opts.release,
      ...(opts.generator !== undefined ? { generator: opts.generator } : {}),
      // A kernel-install entry is rebuilt by kernel-install (its plugin runs the generator).
      preferred: check.style === 'kernel-install' ? 'kernel-install' : analysis.family === undefined ? undefined : FAMILY_GENERATOR[analysis.family],
      image: { path: check.image, style: check.style, exists: check.exists },
      dracutRebuild: analysis.buildParameters,
      dryRun,
      ...(opts.runner !== undefined ? { runner: opts.runner } : {}),
      ...(opts.env !== undefined ? { env: opts.env } : {}),
    });
    return { ...base, action: 'generator', regenerate, notes };
  };

  if (strategy === 'generator' || !check.exists) return useGenerator();
  if (strategy === 'auto' && !check.nativePossible) {
    notes.push('kabi cannot rewrite this image as its generator would; running the generator');
    return useGenerator();
  }
  try {
    const update = await updateImage({ ...opts, analysis });
    return { ...base, action: 'native', update, notes };
  } catch (e) {
    if (strategy === 'auto' && e instanceof KabiError && (e.code === 'INITRAMFS_FORMAT' || e.code === 'UNSUPPORTED_COMPRESSION')) {
      notes.push(`native update not possible (${e.message}); running the generator`);
      return useGenerator();
    }
    throw e;
  }
}
