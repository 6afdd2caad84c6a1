import { KabiError } from '../errors.js';
import { withJsonForm } from '../json.js';
import type { StatusReport } from './types.js';

/**
 * The report with only the kernel columns asked for (`kabi status --kernel K`), in the report's
 * order; every module row stays, its cells cut to the same columns. The report is the same
 * whichever kernels are shown (a cell's verdict depends on its own kernel alone), so this is a
 * view of it, not another report. An unknown release is an error naming the installed ones.
 */
export function selectKernels(report: StatusReport, releases: readonly string[] | undefined): StatusReport {
  if (releases === undefined || releases.length === 0) return report;
  const known = report.kernels.map((k) => k.release);
  for (const r of releases) {
    if (!known.includes(r)) throw new KabiError('KERNEL_NOT_FOUND', `kernel ${r} is not installed under ${report.root} (installed: ${known.join(', ') || 'none'})`);
  }
  const keep = known.map((r) => releases.includes(r));
  return withJsonForm({
    ...report,
    kernels: report.kernels.filter((_, i) => keep[i]),
    modules: report.modules.map((m) => ({ ...m, cells: m.cells.filter((_, i) => keep[i]) })),
  });
}
