import { fgetsLines, strtoull16 } from './c-text.js';

/**
 * The kernel's own symbols as depmod -E (Module.symvers) or -F (System.map) loads them,
 * line by line with depmod's exact tokenising, before any module is looked at.
 */
export interface KernelSymbols {
  readonly source: 'symvers' | 'system-map';
  /** In file order; a later entry for the same name replaces an earlier one. */
  readonly entries: readonly (readonly [name: string, crc: bigint])[];
  /** depmod's complaints about lines it skipped (ERROR level), message text without the prefix. */
  readonly messages: readonly string[];
}

/**
 * depmod_load_symvers(): fields split on spaces and tabs (a newline is not a separator, so a
 * 3-field line's module column is "vmlinux\n" and does not count), the third must be
 * exactly `vmlinux`, the first must parse completely as hex. A bad version is reported with
 * `leftoverErrno`, the strerror() text of whatever errno was left when depmod printed it.
 */
export function parseSymversForDepmod(text: string, file: string, leftoverErrno = 'Success'): KernelSymbols {
  const entries: [string, bigint][] = [];
  const messages: string[] = [];
  let lineNo = 0;
  for (const line of fgetsLines(text, 10240)) {
    lineNo++;
    const tokens = line.split(/[ \t]+/).filter((t) => t !== '');
    const [ver, sym, where] = tokens;
    if (ver === undefined || sym === undefined || where === undefined) continue;
    if (where !== 'vmlinux') continue;
    const { value, used } = strtoull16(ver);
    if (used !== ver.length) {
      // %m prints whatever errno was left over from libkmod's start-up (see run.ts).
      messages.push(`${file}:${lineNo} Invalid symbol version ${ver}: ${leftoverErrno}\n`);
      continue;
    }
    entries.push([sym, value]);
  }
  return { source: 'symvers', entries, messages };
}

/** depmod_load_system_map(): the third space-separated field, if it starts with __ksymtab_. */
export function parseSystemMapForDepmod(text: string, file: string): KernelSymbols {
  const entries: [string, bigint][] = [];
  const messages: string[] = [];
  let lineNo = 0;
  const KSYM = '__ksymtab_';
  for (const line of fgetsLines(text, 10240)) {
    lineNo++;
    const a = line.indexOf(' ');
    const b = a < 0 ? -1 : line.indexOf(' ', a + 1);
    if (b < 0) {
      messages.push(`${file}:${lineNo}: invalid line: ${line}\n`);
      continue;
    }
    const p = line.slice(b + 1);
    if (!p.startsWith(KSYM)) continue;
    const nl = p.indexOf('\n');
    entries.push([(nl < 0 ? p : p.slice(0, nl)).slice(KSYM.length), 0n]);
  }
  return { source: 'system-map', entries, messages };
}
