export { ModInfo, parseModinfo, parseVermagic, isGplCompatible, type Vermagic } from './modinfo.js';
export { SharedModuleValues } from './shared-values.js';
export { readVersions, readExtendedVersions, formatCrc, type ModVersion, type VersionsTable } from './modversions.js';
export { readExports, readCrcSymbols, readKsymtabStrings, resolveCrc, type ExportedSymbol, type CrcSymbol } from './exports.js';
export { splitSignature, SIGNATURE_MARKER, type ModuleSignature, type SplitModule } from './signature.js';
export {
  readModule,
  readModuleBytes,
  readModuleFile,
  moduleNameFromPath,
  isModuleFileName,
  MODULE_EXTENSIONS,
  type KernelModule,
  type UndefinedSymbol,
  type ThisModuleInfo,
  type LoaderFacts,
  type ElfIdentity,
  type ReadModuleOptions,
} from './read-module.js';
