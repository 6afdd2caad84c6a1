import type { ExportType, SymversFormat } from './parse.js';

export interface SymversLine {
  readonly crc: bigint | number;
  readonly symbol: string;
  readonly module: string;
  readonly exportType?: ExportType | undefined;
  readonly namespace?: string | undefined;
}

/** Render entries the way modpost's write_dump does for the chosen layout (default: ≥5.6). */
export function formatSymvers(entries: Iterable<SymversLine>, format: SymversFormat = 'ns-last'): string {
  let out = '';
  for (const e of entries) {
    const crc = '0x' + e.crc.toString(16).padStart(8, '0');
    const type = e.exportType ?? 'EXPORT_SYMBOL';
    const ns = e.namespace ?? '';
    switch (format) {
      case 'legacy':
        out += `${crc}\t${e.symbol}\t${e.module}\n`;
        break;
      case '4col':
        out += `${crc}\t${e.symbol}\t${e.module}\t${type}\n`;
        break;
      case 'ns-third':
        out += `${crc}\t${e.symbol}\t${ns}\t${e.module}\t${type}\n`;
        break;
      case 'ns-last':
        out += `${crc}\t${e.symbol}\t${e.module}\t${type}\t${ns}\n`;
        break;
    }
  }
  return out;
}
