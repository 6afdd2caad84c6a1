import type { KabiFs } from '../fs.js';
import { READ_BUDGETS, readRegularFileHead } from '../fs.js';
import { readModuleBytes, type KernelModule } from '../module/read-module.js';
import { PackageArchive } from './archive.js';
import { isModulePath } from './entry.js';
import type { PackageLimits } from './limits.js';

/*
 * Module packages (a vendor's kmod-foo.rpm, a foo-modules-6.1.0-18-amd64.deb) given where
 * modules are expected: their module files are judged as the files they would install.
 */

const AR = [0x21, 0x3c, 0x61, 0x72, 0x63, 0x68, 0x3e, 0x0a];
const RPM = [0xed, 0xab, 0xee, 0xdb];

/** Whether a file is a .deb or an RPM (by magic; a module never starts with either). */
export async function isPackageFile(fs: KabiFs, path: string): Promise<boolean> {
  let head: Uint8Array;
  try {
    head = await readRegularFileHead(fs, path, 8, READ_BUDGETS.module);
  } catch {
    // Missing, unreadable, a loop, a name too long, not a regular file: not a package; the
    // module reader reports why in its own words.
    return false;
  }
  const starts = (m: number[]) => m.every((v, i) => head[i] === v);
  return starts(AR) || starts(RPM);
}

export interface PackagedModule {
  /** "<package file>:<system path inside it>", how reports name it. */
  readonly path: string;
  readonly module: KernelModule;
}

/** Every module file a package would install, parsed. `label` is how the package is named in reports. */
export async function readPackagedModules(fs: KabiFs, file: string, label: string, limits?: Partial<PackageLimits>): Promise<PackagedModule[]> {
  const a = await PackageArchive.open(file, { fs, ...(limits ? { limits } : {}) });
  try {
    await a.scan((e) => isModulePath(e.path));
    const out: PackagedModule[] = [];
    for (const e of a.list()) {
      if (e.type !== 'file' || !isModulePath(e.path)) continue;
      const shown = `${label}:${e.path}`;
      out.push({ path: shown, module: await readModuleBytes(await a.readFile(e.path), { file: shown }) });
    }
    return out;
  } finally {
    await a.close();
  }
}
