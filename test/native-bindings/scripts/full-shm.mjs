// Run where /dev/shm is a tmpfs too small for a batch's output: xz cannot write it (it exits
// 1, as for bad data). Decodes the same files several times and says, per round, how many came
// out right and how many batch processes ran, and whether batching is still tried.
import { execFileSync } from 'node:child_process';

const [bindings, batching] = process.argv.slice(2);
const { maybeDecompressEach, xzBatchClock } = await import(bindings);
const { xzBatchAvailable } = await import(batching);
const payload = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) & 255));
const inputs = Array.from({ length: 8 }, (_, i) => ({ bytes: execFileSync('xz', ['--check=crc32', '-c', '-1'], { input: payload }), file: `m${i}.ko.xz` }));
const rounds = [];
for (let round = 0; round < 5; round++) {
  const before = xzBatchClock.processes;
  let right = 0;
  await maybeDecompressEach(inputs, {}, (i, r) => {
    if ('data' in r && Buffer.compare(Buffer.from(r.data), payload) === 0) right++;
  });
  rounds.push({ right, processes: xzBatchClock.processes - before });
}
process.stdout.write(JSON.stringify({ rounds, batching: xzBatchAvailable() }) + '\n');
process.exit(0);
