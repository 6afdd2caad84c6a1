import { nodeFs, type KabiFs } from '../fs.js';
import { withJsonForm } from '../json.js';
import { imageNeedsUpdate, type CheckOptions as ImageCheckOptions, type ImageCheck } from '../initramfs/check.js';
import { flushDeferred, type FlushOptions, type FlushOutcome } from '../initramfs/deferred.js';
import { regenerateWithGenerator, type RegenerateOptions, type RegenerateResult } from '../initramfs/generators.js';
import { refreshInitramfs, type RefreshOptions, type RefreshResult } from '../initramfs/refresh.js';
import { requireRoot } from './root.js';

/** Options of initramfs.check(): the root, the changed modules to ask about, another image… */
export type InitramfsCheckOptions = Omit<ImageCheckOptions, 'release'>;
/** Options of initramfs.update(): the strategy (default auto, as kabi link), the generator, a dry run… */
export type InitramfsUpdateOptions = Omit<RefreshOptions, 'release' | 'analysis' | 'depmod'>;
/** Options of initramfs.flush(). */
export type InitramfsFlushOptions = Omit<FlushOptions, 'analysis' | 'depmod'>;
/** Options of initramfs.regenerate(). */
export type InitramfsRegenerateOptions = Omit<RegenerateOptions, 'release'>;

async function rooted<T extends { root?: string; fs?: KabiFs }>(opts: T): Promise<T & { root: string }> {
  return { ...opts, root: await requireRoot(opts.root, opts.fs ?? nodeFs) };
}

/**
 * `kabi initramfs`: ask whether a kernel's image is
 * what its generator would make now, bring it there (natively or with the generator), or
 * record the kernel for later and flush the records. Nothing is created where no image was.
 */
export const initramfs = {
  /** Does the kernel's image differ from what its generator would make from the installed tree? */
  async check(kernel: string, opts: InitramfsCheckOptions = {}): Promise<ImageCheck> {
    return withJsonForm(await imageNeedsUpdate({ ...(await rooted(opts)), release: kernel }));
  },
  /** Bring the kernel's image up to date: `auto` (the default: native where possible, else the generator), `native`, `generator` or `defer`. */
  async update(kernel: string, opts: InitramfsUpdateOptions = {}): Promise<RefreshResult> {
    return withJsonForm(await refreshInitramfs({ strategy: 'auto', ...(await rooted(opts)), release: kernel }));
  },
  /** Run the kernel's generator (dracut, update-initramfs, mkinitcpio, kernel-install) unconditionally. */
  async regenerate(kernel: string, opts: InitramfsRegenerateOptions = {}): Promise<RegenerateResult> {
    return withJsonForm(await regenerateWithGenerator({ ...(await rooted(opts)), release: kernel }));
  },
  /** Refresh each kernel recorded with `defer`, once (RPM %posttrans). */
  async flush(opts: InitramfsFlushOptions = {}): Promise<FlushOutcome[]> {
    return flushDeferred(await rooted(opts));
  },
} as const;
