import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { runCommand, type Runner } from '../util/run.js';
import { runDepmod } from '../depmod/run.js';
import type { ImagePath } from './archive-path.js';
import type { ImageTree } from './image-tree.js';

/**
 * Regenerates modules.dep and the other depmod outputs for the module tree at `baseDir`/lib/modules/`release`.
 * The default is kabi's own depmod (byte for byte what kmod writes); systemDepmod runs the
 * system's `depmod -a -b`, as dracut and mkinitramfs do on their staging directory.
 */
export type DepmodRunner = (opts: { baseDir: string; release: string }) => Promise<void>;

/**
 * kabi's depmod over the scratch tree, with the depmod.d configuration of the system the
 * image belongs to (`configRoot`), as the generator's own depmod run would see it.
 */
export function nativeDepmod(fs: KabiFs, configRoot: string): DepmodRunner {
  return async ({ baseDir, release }) => {
    const r = await runDepmod({ root: baseDir, release, fs, configRoot, cache: false });
    if (r.status !== 0) {
      const why = r.messages.map((m) => m.text).join('; ');
      throw new KabiError('DEPMOD_FORMAT', `depmod of the image's module tree for ${release} failed${why ? `: ${why}` : ''}`);
    }
  };
}

export function systemDepmod(runner: Runner = runCommand, program = 'depmod'): DepmodRunner {
  return async ({ baseDir, release }) => {
    const r = await runner(program, ['-a', '-b', baseDir, release]);
    if (r.spawnError !== undefined) {
      throw new KabiError('EXTERNAL_TOOL', `cannot run ${program} (${r.spawnError}); it is needed to refresh modules.dep inside the image`);
    }
    if (r.status !== 0) {
      throw new KabiError('EXTERNAL_TOOL', `${program} -a -b ${baseDir} ${release} failed (${r.signal ?? `exit status ${r.status}`}): ${r.stderr.trim()}`);
    }
  };
}

/** depmod's inputs, which it reads and never writes. */
const DEPMOD_INPUTS = new Set(['modules.order', 'modules.builtin', 'modules.builtin.modinfo']);

export function isDepmodOutput(name: string): boolean {
  return name.startsWith('modules.') && !DEPMOD_INPUTS.has(name) && !name.endsWith('map');
}

/**
 * Copy the image's module directory into a private scratch tree (links replaced by the
 * files they lead to inside the image, so depmod never reads anything outside it), run
 * depmod there and return its outputs by file name.
 */
export async function depmodOutputsFor(
  fs: KabiFs,
  tree: ImageTree,
  moduleDir: ImagePath,
  release: string,
  depmod: DepmodRunner,
  scratchParent: string = tmpdir(),
): Promise<Map<string, Uint8Array>> {
  const base = await fs.mkdtemp(join(scratchParent, 'kabi-initramfs-depmod-'));
  try {
    const dir = join(base, 'lib', 'modules', release);
    await fs.mkdir(dir, { recursive: true });
    const prefix = moduleDir + '/';
    for (const node of tree.walk(moduleDir)) {
      const rel = node.path.slice(prefix.length);
      // Old outputs would only be overwritten; leaving them out keeps the scratch tree honest.
      if (!rel.includes('/') && isDepmodOutput(rel)) continue;
      const host = join(dir, rel);
      if (node.kind === 'dir') {
        await fs.mkdir(host, { recursive: true });
      } else if (node.kind === 'file') {
        await fs.writeFile(host, node.content.data);
      } else if (node.kind === 'symlink') {
        const target = tree.lookup(node.path);
        if (target?.kind === 'file') await fs.writeFile(host, target.content.data);
      }
    }
    await depmod({ baseDir: base, release });
    const out = new Map<string, Uint8Array>();
    for (const name of (await fs.readdir(dir)).sort()) {
      if (isDepmodOutput(name)) out.set(name, await fs.readFile(join(dir, name)));
    }
    if (!out.has('modules.dep')) throw new KabiError('EXTERNAL_TOOL', `depmod wrote no modules.dep for ${release}`);
    return out;
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
}
