import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { KabiFs } from '../fs.js';
import { nodeFs, OPEN_FOR_READ } from '../fs.js';
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
  // A whole tree checked asks this of thousands of files: through node:fs, the synchronous
  // calls cost a fraction of four promises each.
  const head = fs === nodeFs ? headSync(path) : await headAsync(fs, path);
  if (head === undefined) return false;
  const starts = (m: number[]) => m.every((v, i) => head[i] === v);
  return starts(AR) || starts(RPM);
}

/**
 * A file's first 8 bytes, or undefined when it is missing, unreadable, a loop, a name too
 * long, or not a regular file: not a package; the module reader reports why in its own words.
 * Opened without blocking (a FIFO would wait for a writer forever), then only a regular file
 * is read: a device or anything else is the module reader's to refuse.
 */
async function headAsync(fs: KabiFs, path: string): Promise<Uint8Array | undefined> {
  try {
    const h = await fs.open(path, OPEN_FOR_READ);
    try {
      if (!(await h.stat()).isFile()) return undefined;
      const buf = Buffer.alloc(8);
      const { bytesRead } = await h.read(buf, 0, 8, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await h.close();
    }
  } catch {
    return undefined;
  }
}

/** headAsync() through node:fs. */
function headSync(path: string): Uint8Array | undefined {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FOR_READ);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(8);
    return buf.subarray(0, readSync(fd, buf, 0, 8, 0));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
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
