// Decodes a few .xz files as a tree read does, and says whether batches ran, which bytes came
// out right and which files failed. `badcheck`: file 3's CRC32 check value is damaged.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const [, bindings, mode] = process.argv.slice(2);
const { maybeDecompressEach, xzBatchClock } = await import(bindings);
const payloads = Array.from({ length: 8 }, (_, i) => Buffer.concat(Array.from({ length: 40 }, () => Buffer.concat([randomBytes(2000), Buffer.alloc(3000 + i, i)]))));
const inputs = payloads.map((p, i) => ({ bytes: execFileSync('xz', ['--check=crc32', '-c'], { input: p }), file: `m${i}.ko.xz` }));
if (mode === 'badcheck') {
  // One block: the check value is the 4 bytes before the index, which the footer's backward size locates.
  const b = Buffer.from(inputs[3].bytes);
  const backward = (b.readUInt32LE(b.length - 8) + 1) * 4;
  b[b.length - 12 - backward - 1] ^= 0xff;
  inputs[3] = { bytes: b, file: inputs[3].file };
}
let right = 0;
const failed = [];
await maybeDecompressEach(inputs, {}, (i, r) => {
  if ('error' in r) failed.push(i);
  else if (Buffer.compare(Buffer.from(r.data), payloads[i]) === 0) right++;
});
process.stdout.write(JSON.stringify({ pid: process.pid, right, of: payloads.length, failed, batches: xzBatchClock.processes }) + '\n');
