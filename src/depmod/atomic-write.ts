import { posix } from 'node:path';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { isNotFound } from '../fs.js';

export interface OutputFile {
  readonly name: string;
  readonly data: Uint8Array;
}

/**
 * Replace a set of files in one directory all together or not at all. Every new file is
 * written beside its target under a temporary name first; only when all are written are
 * they renamed into place. The previous versions are kept as hard links until every rename
 * has succeeded, so a rename failing half-way puts the old files back. On any error the
 * temporary files are removed and a KabiError names the file that failed.
 */
export async function replaceFilesAtomically(fs: KabiFs, dir: string, files: readonly OutputFile[]): Promise<string[]> {
  const tag = `.kabi-tmp-${process.pid}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const temps: { tmp: string; final: string }[] = [];
  const cleanup = async (paths: readonly string[]) => {
    for (const p of paths) {
      try {
        await fs.unlink(p);
      } catch {
        /* already gone, or never created */
      }
    }
  };
  for (const f of files) {
    const final = posix.join(dir, f.name);
    const tmp = final + tag;
    try {
      temps.push({ tmp, final });
      await fs.writeFile(tmp, f.data, { mode: 0o644, flag: 'wx' });
    } catch (e) {
      await cleanup(temps.map((t) => t.tmp));
      throw new KabiError('IO', `could not write ${f.name}: ${(e as Error).message}`, { file: tmp, cause: e });
    }
  }

  const backups: { final: string; backup: string | undefined }[] = [];
  try {
    for (const { final } of temps) {
      const backup = final + tag + '.old';
      try {
        await fs.link(final, backup);
        backups.push({ final, backup });
      } catch (e) {
        if (!isNotFound(e)) throw e;
        backups.push({ final, backup: undefined });
      }
    }
  } catch (e) {
    await cleanup([...temps.map((t) => t.tmp), ...backups.flatMap((b) => (b.backup ? [b.backup] : []))]);
    throw new KabiError('IO', `could not keep the previous outputs: ${(e as Error).message}`, { file: dir, cause: e });
  }

  let renamed = 0;
  try {
    for (const { tmp, final } of temps) {
      await fs.rename(tmp, final);
      renamed++;
    }
  } catch (e) {
    const failed = temps[renamed]!;
    // Put back what was already replaced, so the directory is as it was.
    for (let i = 0; i < renamed; i++) {
      const b = backups[i]!;
      try {
        if (b.backup !== undefined) await fs.rename(b.backup, b.final);
        else await fs.unlink(b.final);
      } catch {
        /* best effort: the error below is what the caller needs */
      }
    }
    await cleanup([...temps.slice(renamed).map((t) => t.tmp), ...backups.slice(renamed).flatMap((b) => (b.backup ? [b.backup] : []))]);
    throw new KabiError('IO', `could not rename into place: ${(e as Error).message}`, { file: failed.final, cause: e });
  }
  await cleanup(backups.flatMap((b) => (b.backup ? [b.backup] : [])));
  return temps.map((t) => t.final);
}
