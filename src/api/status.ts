import { nodeFs } from '../fs.js';
import { explainCell, type Explanation } from '../status/explain.js';
import { explanationJson, statusJson } from '../status/json.js';
import { statusReport, type StatusOptions } from '../status/report.js';
import { selectKernels } from '../status/select.js';
import type { StatusReport } from '../status/types.js';
import { requireRoot } from './root.js';

/** Options of status() and explain(): StatusOptions (root, stores, DKMS tree, semantics…) and the kernels to show. */
export interface StatusCallOptions extends StatusOptions {
  /** Only these installed kernels' columns (an unknown one is KERNEL_NOT_FOUND). */
  kernels?: readonly string[];
}

/** A StatusReport whose JSON form is the documented `kabi status --json` (docs/status.md). */
export type StatusResult = StatusReport & { toJSON(): ReturnType<typeof statusJson> };

/** An Explanation whose JSON form is `kabi status --why … --json`. */
export type ExplanationResult = Explanation & { toJSON(): ReturnType<typeof explanationJson> };

function withToJSON<T extends object, J>(value: T, json: (v: T) => J): T & { toJSON(): J } {
  Object.defineProperty(value, 'toJSON', { value: () => json(value), enumerable: false, configurable: true, writable: true });
  return value as T & { toJSON(): J };
}

/**
 * `kabi status`: every out-of-tree module (extra/, updates/, depmod.d external directories,
 * weak-updates targets, DKMS's tree, stores) against every kernel installed under the root —
 * built, linked, compatible but not linked (and why), incompatible, stale — from the files
 * alone, judged with the loader's rules unless `semantics: 'depmod'`. Reads, never writes.
 */
export async function status(opts: StatusCallOptions = {}): Promise<StatusResult> {
  const root = await requireRoot(opts.root, opts.fs ?? nodeFs);
  const report = selectKernels(await statusReport({ ...opts, root }), opts.kernels);
  return withToJSON({ ...report }, statusJson);
}

/** `kabi status --why MODULE --kernel K`: one cell in full (every reason, who provides each symbol, every known copy). */
export async function explain(module: string, kernel: string, opts: StatusOptions = {}): Promise<ExplanationResult> {
  const root = await requireRoot(opts.root, opts.fs ?? nodeFs);
  return withToJSON({ ...(await explainCell({ ...opts, root, module, kernel })) }, explanationJson);
}
