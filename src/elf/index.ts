export * from './constants.js';
export { ElfFile, parseElf, latin1, type ElfSection, type ElfSymbol } from './reader.js';
