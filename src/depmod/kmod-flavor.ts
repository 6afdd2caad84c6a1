import { execFile, spawnSync } from 'node:child_process';
import type { IndexLayout } from './index-format.js';

/**
 * What differs between the kmod releases and builds kabi writes for: the index node order
 * (post-order up to kmod 33, pre-order from 34), modules.weakdep (from 33), and which
 * compressed module files the build recognises at all (a kmod built without zlib ignores
 * .ko.gz files, as Debian's does).
 */
export interface KmodFlavor {
  /** Major version, e.g. 30. */
  readonly version: number;
  readonly extensions: readonly string[];
  readonly layout: IndexLayout;
  readonly weakdep: boolean;
  /** Where this came from, for messages: "depmod --version", "option", "default". */
  readonly source: string;
}

const ALL_EXTENSIONS = ['.ko', '.ko.gz', '.ko.xz', '.ko.zst'];

export function kmodFlavor(version: number, features: { gz?: boolean; xz?: boolean; zstd?: boolean } = {}, source = 'option'): KmodFlavor {
  const extensions = ['.ko'];
  if (features.gz ?? true) extensions.push('.ko.gz');
  if (features.xz ?? true) extensions.push('.ko.xz');
  if (features.zstd ?? version >= 28) extensions.push('.ko.zst');
  return { version, extensions, layout: version >= 34 ? 'pre-order' : 'post-order', weakdep: version >= 33, source };
}

/** Parse `depmod --version`: "kmod version 30" and a feature line like "+ZSTD +XZ -ZLIB +LIBCRYPTO". */
export function parseKmodVersion(text: string): KmodFlavor | undefined {
  const m = /kmod version (\d+)/.exec(text);
  if (!m) return undefined;
  const has = (f: string): boolean | undefined => (new RegExp(`\\+${f}\\b`).test(text) ? true : new RegExp(`-${f}\\b`).test(text) ? false : undefined);
  const features: { gz?: boolean; xz?: boolean; zstd?: boolean } = {};
  const gz = has('ZLIB');
  const xz = has('XZ');
  const zstd = has('ZSTD');
  if (gz !== undefined) features.gz = gz;
  if (xz !== undefined) features.xz = xz;
  if (zstd !== undefined) features.zstd = zstd;
  return kmodFlavor(Number(m[1]), features, 'depmod --version');
}

let hostFlavor: KmodFlavor | null | undefined;
let probing: Promise<KmodFlavor> | undefined;

const DEPMODS = ['depmod', '/usr/sbin/depmod', '/sbin/depmod'];
const PROBE_TIMEOUT_MS = 5000;

function orDefault(found: KmodFlavor | null): KmodFlavor {
  return found ?? { ...kmodFlavor(30), extensions: ALL_EXTENSIONS, source: 'default (no depmod found)' };
}

/** The flavor of this machine's depmod, or a kmod-30-like default when there is none. */
export function installedKmodFlavor(): KmodFlavor {
  if (hostFlavor === undefined) {
    let found: KmodFlavor | null = null;
    for (const cmd of DEPMODS) {
      const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
      if (r.status === 0) found = parseKmodVersion(r.stdout) ?? null;
      if (found) break;
    }
    hostFlavor = found;
  }
  return orDefault(hostFlavor);
}

/**
 * installedKmodFlavor without holding up this thread while `depmod --version` runs (about
 * 20 ms): an initramfs update asks early, and the answer is there by the time its depmod runs.
 */
export function installedKmodFlavorSoon(): Promise<KmodFlavor> {
  if (hostFlavor !== undefined) return Promise.resolve(orDefault(hostFlavor));
  probing ??= (async () => {
    let found: KmodFlavor | null = null;
    for (const cmd of DEPMODS) {
      const out = await new Promise<string | undefined>((resolve) => {
        try {
          execFile(cmd, ['--version'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS }, (err, stdout) => resolve(err ? undefined : stdout));
        } catch {
          // execFile throws at once where spawn(2) fails other than ENOENT-like (E2BIG, ENOMEM):
          // no answer, as spawnSync gives none there.
          resolve(undefined);
        }
      });
      if (out !== undefined) found = parseKmodVersion(out) ?? null;
      if (found) break;
    }
    hostFlavor ??= found;
    return orDefault(hostFlavor);
  })();
  return probing;
}
