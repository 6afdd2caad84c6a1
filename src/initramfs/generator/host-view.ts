import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { posix } from 'node:path';

/*
 * What a generator's host-only mode looks at on the machine it runs on: the modules loaded in
 * the running kernel, the modalias of every device in sysfs, the mounted file systems. These
 * are the running system's, not the root's: dracut and mkinitramfs read /proc and /sys even
 * when run inside a chroot (where those are bind-mounted from the host). Tests pass their own.
 */

/** What a generator's host-only mode sees of the running machine (loaded modules, device modaliases, mounted file systems). */
export interface HostView {
  /** Names of the modules loaded in the running kernel (/proc/modules), or undefined when that cannot be read. */
  loadedModules(): Promise<ReadonlySet<string> | undefined>;
  /** The modalias strings of the devices under /sys/devices. */
  deviceModaliases(): Promise<readonly string[]>;
  /** Mounted file systems: mount point and type (/proc/mounts). */
  mounts(): Promise<readonly { mountPoint: string; type: string; device: string }[]>;
  /**
   * Modalias strings and bound driver modules of a block device and every device above it in
   * sysfs, as initramfs-tools' MODULES=dep walks them (`sys_walk_mod_add`), for the device
   * holding a mount point; undefined when it cannot be found.
   */
  blockDeviceChain(mountPoint: string): Promise<{ modaliases: string[]; modules: string[] } | undefined>;
}

/** Device modaliases are read at most from this many directories (a machine has a few thousand). */
const MAX_SYSFS_DIRS = 200_000;

type Mount = { mountPoint: string; type: string; device: string };

export function realHostView(sys = '/sys', proc = '/proc'): HostView {
  let loaded: Promise<ReadonlySet<string> | undefined> | undefined;
  let aliases: Promise<readonly string[]> | undefined;
  let mounts: Promise<Mount[]> | undefined;
  const readMounts = () =>
    (mounts ??= readFile(posix.join(proc, 'mounts'), 'utf8').then(
      (t) =>
        t
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split(' '))
          .map(([device, mountPoint, type]) => ({ device: unescapeMount(device ?? ''), mountPoint: unescapeMount(mountPoint ?? ''), type: type ?? '' })),
      () => [],
    ));
  return {
    loadedModules: () =>
      (loaded ??= readFile(posix.join(proc, 'modules'), 'utf8').then(
        (t) => new Set(t.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean)),
        () => undefined,
      )),
    deviceModaliases: () => (aliases ??= collectModaliases(posix.join(sys, 'devices'))),
    mounts: readMounts,
    blockDeviceChain: async (mountPoint) => {
      // The last mount on a point is the one in effect.
      const m = [...(await readMounts())].reverse().find((x) => x.mountPoint === mountPoint);
      if (!m || !m.device.startsWith('/dev/')) return undefined;
      try {
        const st = await stat(m.device);
        if (!st.isBlockDevice()) return undefined;
        const major = Math.floor(st.rdev / 256) & 0xfff;
        const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
        let dev = await realpathOf(posix.join(sys, 'dev/block', `${major}:${minor}`));
        const out = { modaliases: [] as string[], modules: [] as string[] };
        // A partition's disk is its parent; walk from the device up to /sys.
        while (dev !== undefined && dev.startsWith(sys + '/') && dev !== sys) {
          const alias = await readFile(posix.join(dev, 'modalias'), 'utf8').catch(() => '');
          if (alias.trim()) out.modaliases.push(alias.trim());
          const mod = await readlink(posix.join(dev, 'driver/module')).catch(() => undefined);
          if (mod) out.modules.push(posix.basename(mod));
          dev = posix.dirname(dev);
        }
        return out;
      } catch {
        return undefined;
      }
    },
  };
}

async function realpathOf(p: string): Promise<string | undefined> {
  return realpath(p).catch(() => undefined);
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Every modalias file's first line below `dir` (links not followed, as fts without FTS_LOGICAL). */
async function collectModaliases(dir: string): Promise<string[]> {
  const out: string[] = [];
  const stack = [dir];
  let seen = 0;
  while (stack.length > 0 && seen++ < MAX_SYSFS_DIRS) {
    const d = stack.pop()!;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (e.isDirectory()) stack.push(posix.join(d, e.name));
      else if (e.name === 'modalias' && e.isFile()) {
        const text = await readFile(posix.join(d, e.name), 'utf8').catch(() => '');
        const line = text.split('\n')[0]!;
        if (line !== '') out.push(line);
      }
    }
  }
  return out;
}

/** A host view with fixed answers (tests, and roots that describe another machine). */
export function fixedHostView(v: { loaded?: readonly string[] | undefined; modaliases?: readonly string[]; mounts?: readonly { mountPoint: string; type: string; device: string }[]; chains?: Record<string, { modaliases: string[]; modules: string[] }> }): HostView {
  return {
    loadedModules: async () => (v.loaded === undefined ? undefined : new Set(v.loaded)),
    deviceModaliases: async () => v.modaliases ?? [],
    mounts: async () => v.mounts ?? [],
    blockDeviceChain: async (mp) => v.chains?.[mp],
  };
}
