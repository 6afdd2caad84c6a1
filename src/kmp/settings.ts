import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';
import { readSystemFile } from '../kernel/paths.js';

/**
 * How KMPs are linked. `wm2` is SUSE's weak-modules2, rule for rule; each of the others is
 * an opt-in that fixes one of the problems SUSE lists with KMPs (see README, "SUSE").
 */
export interface KmpPolicy {
  /**
   * depmod: a KMP fits a kernel when depmod -e -E would report no symbol error anywhere in
   * the kernel's out-of-tree modules with it linked (weak-modules2). loader: when each of the
   * KMP's modules would load there (kabi's loader verdict), whatever else is broken.
   */
  readonly verdict: 'depmod' | 'loader';
  /** Accept KMPs whose modules live outside the module hierarchy (one directory per version). */
  readonly store: boolean;
  /** Per kernel, link the newest installed version of a KMP that fits, whichever kernel it was built for. */
  readonly newest: boolean;
  /** Never link a KMP into a kernel older than the one it was built for. */
  readonly forwardOnly: boolean;
  /**
   * Keep a copy of a KMP version's modules while it is the only version that fits some
   * installed kernel, and keep it linked there after the package is erased, until that kernel
   * is removed (an update across a kABI break leaves the previous kernel bootable).
   */
  readonly keepFallback: boolean;
}

export const WM2_POLICY: KmpPolicy = { verdict: 'depmod', store: false, newest: false, forwardOnly: false, keepFallback: false };
export const KABI_POLICY: KmpPolicy = { verdict: 'loader', store: true, newest: true, forwardOnly: true, keepFallback: true };

/** Where an administrator sets the policy (KEY=value lines; the environment overrides them). */
export const KMP_CONFIG_FILE = '/etc/kabi/kmp.conf';

/** Shell-style `KEY=value` assignments (the last one wins); nothing is expanded or run. */
export function readShellVars(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|'([^']*)'|([^\s#;]*))\s*(?:[#;].*)?$/.exec(raw);
    if (m) out.set(m[1]!, m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

async function readVars(fs: KabiFs, root: string, file: string): Promise<Map<string, string>> {
  try {
    return readShellVars(new TextDecoder().decode(await readSystemFile(fs, root, file)));
  } catch (e) {
    if (isNotFound(e) || (e as NodeJS.ErrnoException).code === 'EISDIR') return new Map();
    throw e;
  }
}

function yesNo(key: string, value: string, file: string): boolean {
  if (/^(1|y|yes|true|on)$/i.test(value)) return true;
  if (/^(0|n|no|false|off|)$/i.test(value)) return false;
  throw new KabiError('USAGE', `${key}="${value}": expected yes or no`, { file });
}

/** The policy from /etc/kabi/kmp.conf under the root, each key overridden by the environment. */
export async function readKmpPolicy(fs: KabiFs, root: string, env: Readonly<Record<string, string | undefined>>): Promise<KmpPolicy> {
  const file = await readVars(fs, root, KMP_CONFIG_FILE);
  const get = (key: string): [string, string] | undefined => {
    const v = env[key];
    if (v !== undefined) return [v, `environment variable ${key}`];
    const f = file.get(key);
    return f === undefined ? undefined : [f, KMP_CONFIG_FILE];
  };
  let base = WM2_POLICY;
  const preset = get('KABI_KMP_POLICY');
  if (preset) {
    if (preset[0] === 'kabi') base = KABI_POLICY;
    else if (preset[0] !== 'wm2' && preset[0] !== '') throw new KabiError('USAGE', `KABI_KMP_POLICY="${preset[0]}": expected wm2 or kabi`, { file: preset[1] });
  }
  const flag = (key: string, dflt: boolean) => {
    const v = get(key);
    return v ? yesNo(key, v[0], v[1]) : dflt;
  };
  const verdict = get('KABI_KMP_VERDICT');
  if (verdict && verdict[0] !== 'depmod' && verdict[0] !== 'loader') throw new KabiError('USAGE', `KABI_KMP_VERDICT="${verdict[0]}": expected depmod or loader`, { file: verdict[1] });
  return {
    verdict: (verdict?.[0] as KmpPolicy['verdict'] | undefined) ?? base.verdict,
    store: flag('KABI_KMP_STORE', base.store),
    newest: flag('KABI_KMP_NEWEST', base.newest),
    forwardOnly: flag('KABI_KMP_FORWARD_ONLY', base.forwardOnly),
    keepFallback: flag('KABI_KMP_KEEP_FALLBACK', base.keepFallback),
  };
}

export type InitrdGenerator = 'dracut' | 'mkosi-initrd';

/**
 * INITRD_GENERATOR from /etc/sysconfig/bootloader: dracut when unset, `mkosi` meaning
 * mkosi-initrd; anything else is an error (weak-modules2 exits 1).
 */
export async function readInitrdGenerator(fs: KabiFs, root: string): Promise<InitrdGenerator> {
  const v = (await readVars(fs, root, '/etc/sysconfig/bootloader')).get('INITRD_GENERATOR') ?? '';
  if (v === '' || v === 'dracut') return 'dracut';
  if (v === 'mkosi' || v === 'mkosi-initrd') return 'mkosi-initrd';
  throw new KabiError('USAGE', `the initrd generator "${v}" configured in /etc/sysconfig/bootloader is not supported.`);
}
