/**
 * kabi status: every out-of-tree module × every installed kernel, from the filesystem alone
 * (kernel trees, weak-updates links, DKMS's tree, module stores). Reads, never writes.
 *
 *   statusReport({root, fs, semantics, stores, dkmsTree, running, onProgress}) → StatusReport
 *   explainCell({...same, module, kernel}) → Explanation (every reason, provider chain)
 *   statusJson(report) / explanationJson(e) → the documented --json shapes (docs/status.md)
 *   renderStatus(report, paint?) / renderExplanation(e, paint?) → the human views (the CLI's
 *     painter colours each span by its tone; status itself never decides on colour)
 */
export { statusReport, collectStatus, storeSystemPath, type StatusOptions, type StatusResult, type KernelDetail } from './report.js';
export { explainCell, type Explanation } from './explain.js';
export { statusJson, explanationJson, STATUS_JSON_VERSION } from './json.js';
export { renderStatus, renderExplanation, cellTone, type Paint, type Tone } from './render.js';
export { providerChain, type ProviderGroup, type NeededSymbol } from './providers.js';
export { kernelCells, preferenceOrder, type KernelCellsInput, type LinkInfo, type JudgedCell } from './kernel-cells.js';
export { listDkmsModules, listModuleFiles, DKMS_TREE } from './sources.js';
export type { Cell, CellNote, CellState, CopyOrigin, KernelColumn, ModuleCopy, ModuleRow, NoteKind, StatusReport, DkmsCoordinates } from './types.js';
