import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDepmodConfig } from '../depmod/config.js';
import { runDepmod } from '../depmod/run.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { runCommand, type Runner } from '../util/run.js';
import type { ImagePath } from './archive-path.js';
import type { ImageTree } from './image-tree.js';
import { MemoryTree, memoryFs } from './memory-fs.js';

/**
 * Regenerates modules.dep and the other depmod outputs for the module directory an image
 * will hold, from the image's own files, and returns them by file name.
 */
export type DepmodRunner = (opts: { tree: ImageTree; moduleDir: ImagePath; release: string }) => Promise<Map<string, Uint8Array>>;

/** depmod's inputs, which it reads and never writes. */
const DEPMOD_INPUTS = new Set(['modules.order', 'modules.builtin', 'modules.builtin.modinfo']);

export function isDepmodOutput(name: string): boolean {
  return name.startsWith('modules.') && !DEPMOD_INPUTS.has(name) && !name.endsWith('map');
}

/**
 * The image's module directory as /lib/modules/RELEASE of a tree in memory: links inside it
 * replaced by the files they lead to in the image (so depmod reads nothing outside it), old
 * depmod outputs left out.
 */
function moduleTreeOf(tree: ImageTree, moduleDir: ImagePath, add: (rel: string, data: Uint8Array | 'dir') => void): void {
  const prefix = moduleDir + '/';
  for (const node of tree.walk(moduleDir)) {
    const rel = node.path.slice(prefix.length);
    if (!rel.includes('/') && isDepmodOutput(rel)) continue;
    if (node.kind === 'dir') add(rel, 'dir');
    else if (node.kind === 'file') add(rel, node.content.data);
    else if (node.kind === 'symlink') {
      const target = tree.lookup(node.path);
      if (target?.kind === 'file') add(rel, target.content.data);
    }
  }
}

/**
 * kabi's depmod (byte for byte what kmod writes), run over the image's module tree held in
 * memory, with the depmod.d configuration of the system the image belongs to (`configRoot`),
 * as the generator's own `depmod -a -b` run would read it. Nothing is written anywhere.
 */
export function nativeDepmod(fs: KabiFs, configRoot: string): DepmodRunner {
  return async ({ tree, moduleDir, release }) => {
    const mem = new MemoryTree();
    const base = `/lib/modules/${release}`;
    mem.mkdirs(base);
    moduleTreeOf(tree, moduleDir, (rel, data) => (data === 'dir' ? mem.mkdirs(join(base, rel)) : mem.file(join(base, rel), data)));
    const config = await loadDepmodConfig(fs, configRoot, release);
    const r = await runDepmod({ root: '/', release, fs: memoryFs(mem), config, cache: false, write: false, messageDir: `/${moduleDir}` });
    if (r.status !== 0) {
      const why = r.messages.map((m) => m.text.trim()).join('; ');
      throw new KabiError('DEPMOD_FORMAT', `depmod of the image's module tree for ${release} failed${why ? `: ${why}` : ''}`);
    }
    const out = new Map<string, Uint8Array>();
    for (const f of r.files) if (isDepmodOutput(f.name)) out.set(f.name, f.data);
    if (!out.has('modules.dep')) throw new KabiError('DEPMOD_FORMAT', `depmod wrote no modules.dep for ${release}`);
    return out;
  };
}

/**
 * The system's `depmod -a -b` over a scratch copy, as dracut and mkinitramfs run it on their
 * staging directory: an oracle for tests. The copy lives in `scratchParent` and is removed
 * when depmod is done.
 */
export function systemDepmod(runner: Runner = runCommand, program = 'depmod', scratchParent: string = tmpdir(), fs: KabiFs = nodeFs): DepmodRunner {
  return async ({ tree, moduleDir, release }) => {
    const base = await fs.mkdtemp(join(scratchParent, 'kabi-initramfs-depmod-'));
    try {
      const dir = join(base, 'lib', 'modules', release);
      await fs.mkdir(dir, { recursive: true });
      const writes: Promise<unknown>[] = [];
      moduleTreeOf(tree, moduleDir, (rel, data) => {
        if (data === 'dir') return;
        writes.push(fs.mkdir(join(dir, rel, '..'), { recursive: true }).then(() => fs.writeFile(join(dir, rel), data)));
      });
      await Promise.all(writes);
      const r = await runner(program, ['-a', '-b', base, release]);
      if (r.spawnError !== undefined) throw new KabiError('EXTERNAL_TOOL', `cannot run ${program} (${r.spawnError}); it is needed to refresh modules.dep inside the image`);
      if (r.status !== 0) throw new KabiError('EXTERNAL_TOOL', `${program} -a -b ${base} ${release} failed (${r.signal ?? `exit status ${r.status}`}): ${r.stderr.trim()}`);
      const out = new Map<string, Uint8Array>();
      for (const name of (await fs.readdir(dir)).sort()) if (isDepmodOutput(name)) out.set(name, await fs.readFile(join(dir, name)));
      if (!out.has('modules.dep')) throw new KabiError('EXTERNAL_TOOL', `depmod wrote no modules.dep for ${release}`);
      return out;
    } finally {
      await fs.rm(base, { recursive: true, force: true });
    }
  };
}
