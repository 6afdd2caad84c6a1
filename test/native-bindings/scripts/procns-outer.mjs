// PID 1 of a private PID namespace with its own /proc: holds decoy files open at many
// descriptor numbers, then runs the inner script as PID 1 of a nested namespace that still sees
// this /proc (as a sandbox sharing its parent's /proc does). Prints what became of the decoys.
import { spawnSync } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, inner, bindings] = process.argv.slice(2);
const decoys = Array.from({ length: 200 }, (_, i) => join(dir, `decoy${i}`));
for (const [i, p] of decoys.entries()) {
  writeFileSync(p, `DECOY ${i}\n`);
  openSync(p, 'r+');
}
const r = spawnSync('unshare', ['--pid', '--fork', process.execPath, inner, dir, bindings], { encoding: 'utf8' });
const changed = decoys.filter((p, i) => readFileSync(p, 'utf8') !== `DECOY ${i}\n`).length;
process.stdout.write(JSON.stringify({ status: r.status, changed, inner: r.stdout.trim(), stderr: r.stderr.trim() }) + '\n');
