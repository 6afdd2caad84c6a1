import { latin1 } from '../elf/reader.js';
import type { SharedModuleValues } from './shared-values.js';

/**
 * `.modinfo` as the kernel and kmod see it: an ordered multimap. Repeated keys (alias,
 * parm, import_ns, firmware…) keep their order; single-valued keys are read from the
 * first occurrence, because that is the only one the loader looks at.
 */
export class ModInfo {
  readonly entries: ReadonlyArray<readonly [key: string, value: string]>;

  constructor(entries: ReadonlyArray<readonly [string, string]>) {
    this.entries = entries;
  }

  /** First value of a key, as the loader's get_next_modinfo() finds it. */
  get(key: string): string | undefined {
    for (const [k, v] of this.entries) if (k === key) return v;
    return undefined;
  }

  getAll(key: string): string[] {
    const out: string[] = [];
    for (const [k, v] of this.entries) if (k === key) out.push(v);
    return out;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  keys(): string[] {
    return [...new Set(this.entries.map(([k]) => k))];
  }

  /** key → all values, in first-seen key order (the `--json` shape). */
  toJSON(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [k, v] of this.entries) (out[k] ??= []).push(v);
    return out;
  }
}

/**
 * Split `key=value\0` strings, skipping runs of NUL padding that older toolchains left
 * between entries (both the kernel and kmod skip them too). A string without '=' is kept
 * with an empty value so nothing in the section is silently dropped.
 */
export function parseModinfo(data: Uint8Array, shared?: SharedModuleValues): ModInfo {
  const entries: (readonly [string, string])[] = [];
  let p = 0;
  const n = data.length;
  while (p < n) {
    if (data[p] === 0) {
      p++;
      continue;
    }
    let end = p;
    while (end < n && data[end] !== 0) end++;
    let eq = p;
    while (eq < end && data[eq] !== 0x3d) eq++;
    if (shared === undefined) entries.push(eq < end ? [latin1(data, p, eq), latin1(data, eq + 1, end)] : [latin1(data, p, end), '']);
    else entries.push(shared.modinfoEntryAt(data, p, eq, end));
    p = end + 1;
  }
  return new ModInfo(entries);
}

/** A module's `vermagic=` string, split as the loader's same_magic() sees it. */
export interface Vermagic {
  /** The whole string, e.g. "6.1.0-18-amd64 SMP preempt mod_unload modversions ". */
  readonly raw: string;
  /** UTS_RELEASE: everything before the first space. */
  readonly release: string;
  /**
   * Everything from the first space to the end, byte for byte (trailing space included):
   * exactly the part same_magic() compares when the module carries CRCs.
   */
  readonly flags: string;
  /** The flag words, for display and for readable mismatch reasons. */
  readonly flagList: readonly string[];
}

/** Split a vermagic string into its release and its flags. Pure. */
export function parseVermagic(raw: string): Vermagic {
  const sp = raw.indexOf(' ');
  const release = sp < 0 ? raw : raw.slice(0, sp);
  const flags = sp < 0 ? '' : raw.slice(sp);
  return { raw, release, flags, flagList: flags.split(' ').filter((w) => w !== '') };
}

/** The licenses the kernel treats as GPL-compatible (include/linux/license.h), case-sensitive. */
const GPL_COMPATIBLE = new Set(['GPL', 'GPL v2', 'GPL and additional rights', 'Dual BSD/GPL', 'Dual MIT/GPL', 'Dual MPL/GPL']);

/** Whether the kernel counts a `license=` value as GPL-compatible (license_is_gpl_compatible()). */
export function isGplCompatible(license: string | undefined): boolean {
  return license !== undefined && GPL_COMPATIBLE.has(license);
}
