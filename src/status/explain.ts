import type { Semantics } from '../compat/types.js';
import { KabiError } from '../errors.js';
import { moduleNameFromPath } from '../module/read-module.js';
import { providerChain, type ProviderGroup } from './providers.js';
import { collectStatus, type StatusOptions } from './report.js';
import type { Cell, ModuleCopy } from './types.js';

/** One cell of the status matrix, explained in full. */
export interface Explanation {
  readonly root: string;
  readonly semantics: Semantics;
  readonly name: string;
  readonly kernel: string;
  readonly cell: Cell;
  readonly copies: readonly ModuleCopy[];
  /** Who provides what the cell's module needs; undefined when there is no module to look at. */
  readonly providers: readonly ProviderGroup[] | undefined;
  /** Checks the verdict engine could not make for this kernel. */
  readonly kernelNotes: readonly string[];
}

/**
 * `kabi status --why MODULE --kernel K`. MODULE is a module name (as modprobe takes it) or the
 * path of one of its files.
 */
export async function explainCell(opts: StatusOptions & { module: string; kernel: string }): Promise<Explanation> {
  const { report, details } = await collectStatus(opts);
  const name = moduleNameFromPath(opts.module.replace(/\/+$/, ''));
  const row = report.modules.find((m) => m.name === name);
  if (!row) {
    const known = report.modules.map((m) => m.name).join(', ') || 'none';
    throw new KabiError('USAGE', `no out-of-tree module called ${name} under ${report.root} (known: ${known})`);
  }
  const detail = details.get(opts.kernel);
  if (!detail) {
    throw new KabiError('KERNEL_NOT_FOUND', `kernel ${opts.kernel} is not installed under ${report.root} (installed: ${report.kernels.map((k) => k.release).join(', ') || 'none'})`);
  }
  const judged = detail.cells.get(name)!;
  const cell = judged.cell;
  const copy = row.copies.find((c) => c.path === cell.file);
  const module = copy?.module ?? judged.world.find((c) => c.path === cell.file || c.path === cell.link)?.module;
  // The cell's module takes its own place in the world it is explained in.
  const world = judged.world.filter((c) => module === undefined || c.module.name !== module.name);
  return {
    root: report.root,
    semantics: report.semantics,
    name,
    kernel: opts.kernel,
    cell,
    copies: row.copies,
    providers: module ? providerChain(module, detail.model, world) : undefined,
    kernelNotes: report.kernels.find((k) => k.release === opts.kernel)?.notes ?? [],
  };
}
