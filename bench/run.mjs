// Runs every bench/*.bench.mjs in turn and collects their BENCH-JSON lines into one summary.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const quick = process.argv.includes('--quick');
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const scripts = readdirSync(new URL('.', import.meta.url))
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
const summary = [];
let failed = 0;
for (const s of scripts) {
  console.log(`\n## ${s}\n`);
  const r = spawnSync(process.execPath, [new URL(s, import.meta.url).pathname, ...(quick ? ['--quick'] : [])], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const lines = (r.stdout ?? '').split('\n');
  for (const l of lines) if (!l.startsWith('BENCH-JSON ')) console.log(l);
  const json = lines.find((l) => l.startsWith('BENCH-JSON '));
  if (r.status !== 0 || !json) {
    failed++;
    console.log(`(${s} failed with status ${r.status})`);
  } else summary.push({ script: s, ...JSON.parse(json.slice('BENCH-JSON '.length)) });
}
console.log('\nBENCH-SUMMARY ' + JSON.stringify(summary));
process.exit(failed ? 1 : 0);
