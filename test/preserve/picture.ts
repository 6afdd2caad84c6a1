import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Every entry of a directory: bytes of files, targets of links, 'dir' for directories. */
export function picture(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const n of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(dir, r));
      if (st.isSymbolicLink()) out.set(r, `link ${readlinkSync(join(dir, r))}`);
      else if (st.isDirectory()) {
        out.set(r, `dir ${(st.mode & 0o7777).toString(8)}`);
        walk(r);
      } else out.set(r, `file ${(st.mode & 0o7777).toString(8)} ${readFileSync(join(dir, r)).toString('base64')}`);
    }
  };
  walk('');
  return out;
}

