export {
  parseSymvers,
  SymversTable,
  isExportType,
  isGplOnlyExport,
  EXPORT_TYPES,
  type SymversEntry,
  type SymversFormat,
  type ExportType,
} from './parse.js';
export { formatSymvers, type SymversLine } from './write.js';
export { readSymversFile, readSymbolFileBytes } from './read-file.js';
