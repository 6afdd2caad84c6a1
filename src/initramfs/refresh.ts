import { KabiError } from '../errors.js';
import type { Runner } from '../util/run.js';
import { analyseImage, type ImageCheck } from './check.js';
import { deferRefresh } from './deferred.js';
import { regenerateWithGenerator, type GeneratorName, type RegenerateResult } from './generators.js';
import { updateImage, type UpdateOptions, type UpdateResult } from './update.js';

/**
 * native: kabi rewrites the image itself (fails if only the generator can);
 * generator: run dracut/update-initramfs/mkinitcpio/kernel-install;
 * auto: native when possible, else the generator;
 * defer: record the kernel for `kabi initramfs flush` (RPM %posttrans).
 */
export type RefreshStrategy = 'native' | 'generator' | 'auto' | 'defer';

export interface RefreshOptions extends UpdateOptions {
  strategy?: RefreshStrategy;
  generator?: GeneratorName;
  runner?: Runner;
  env?: Record<string, string | undefined>;
  /** Where deferred refreshes are recorded (system path inside the root). */
  stateDir?: string;
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
  readonly notes: readonly string[];
}

/**
 * The one call the linker needs after applying a plan to kernel `release`: rebuild its image
 * only if a module in it (or named in the generator's configuration) changed, and never touch
 * anything in a dry run.
 */
export async function refreshInitramfs(opts: RefreshOptions): Promise<RefreshResult> {
  const strategy = opts.strategy ?? 'auto';
  const analysis = await analyseImage(opts);
  const { check } = analysis;
  const dryRun = opts.dryRun === true;
  const base = { release: opts.release, check, dryRun, update: undefined, regenerate: undefined };
  if (!check.exists || !check.needsUpdate) return { ...base, action: 'none', notes: [...check.notes] };

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
      dryRun,
      ...(opts.runner !== undefined ? { runner: opts.runner } : {}),
      ...(opts.env !== undefined ? { env: opts.env } : {}),
    });
    return { ...base, action: 'generator', regenerate, notes };
  };

  if (strategy === 'generator') return useGenerator();
  if (strategy === 'auto' && !check.nativePossible) {
    notes.push('kabi cannot rewrite this image itself; running the generator');
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
