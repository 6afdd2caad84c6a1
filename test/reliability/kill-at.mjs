// SPDX-License-Identifier: GPL-2.0-or-later
//
// Preloaded into a kabi bin (`node --import ./kill-at.mjs dist/bin/…`) by the crash tests:
// counts every call that writes to the file system (node:fs and node:fs/promises, sync and
// async, and writes through file handles) and, at the call numbered $KABI_KILL_AT, kills the
// process with SIGKILL before the call is made: a real kill -9 at that write. With
// $KABI_KILL_COUNT_FILE the number of writes made is written there at exit (a clean run
// tells how many points there are, and which). Nothing in kabi knows about this file.

import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const killAt = Number(process.env.KABI_KILL_AT ?? 'Infinity');
// Or stop for $KABI_PAUSE_MS at write $KABI_PAUSE_AT, having created $KABI_PAUSE_FILE: a run
// held still in the middle of its transaction while another one starts.
const pauseAt = Number(process.env.KABI_PAUSE_AT ?? 'Infinity');
const countFile = process.env.KABI_KILL_COUNT_FILE;
const writeFileSync = fs.writeFileSync;
let n = 0;
const trace = [];

// One call is one point: writeFileSync's own openSync and writeSync are not counted again.
let depth = 0;
const point = (what, path, call) => {
  if (depth > 0) return call();
  if (countFile) trace.push(`${what} ${typeof path === 'string' ? path : typeof path === 'number' ? `fd ${path}` : ''}`);
  if (++n === killAt) process.kill(process.pid, 'SIGKILL');
  if (n === pauseAt) {
    writeFileSync(process.env.KABI_PAUSE_FILE, String(process.pid));
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.env.KABI_PAUSE_MS ?? 1000));
  }
  depth++;
  try {
    return call();
  } finally {
    depth--;
  }
};
const writeFlags = (flags) => (typeof flags === 'number' ? (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC)) !== 0 : typeof flags === 'string' && /[wax+]/.test(flags));

const MUTATING = ['writeFile', 'appendFile', 'link', 'rename', 'unlink', 'symlink', 'mkdir', 'rmdir', 'rm', 'copyFile', 'chmod', 'chown', 'lchown', 'utimes', 'lutimes', 'truncate', 'mkdtemp'];
for (const name of MUTATING) {
  for (const [obj, key] of [
    [fsp, name],
    [fs, `${name}Sync`],
  ]) {
    const orig = obj[key];
    if (typeof orig !== 'function') continue;
    obj[key] = function (...args) {
      return point(key, args[0], () => orig.apply(this, args));
    };
  }
}
for (const [obj, key] of [
  [fsp, 'open'],
  [fs, 'openSync'],
]) {
  const orig = obj[key];
  obj[key] = function (...args) {
    return writeFlags(args[1]) ? point(key, args[0], () => orig.apply(this, args)) : orig.apply(this, args);
  };
}
for (const key of ['writeSync', 'ftruncateSync']) {
  const orig = fs[key];
  fs[key] = function (...args) {
    return point(key, args[0], () => orig.apply(this, args));
  };
}
// Writes through a FileHandle (the journal, the initramfs writer).
const handle = await fsp.open(process.execPath, 'r');
const proto = Object.getPrototypeOf(handle);
await handle.close();
for (const key of ['writeFile', 'write', 'writev', 'truncate', 'appendFile']) {
  const orig = proto[key];
  if (typeof orig !== 'function') continue;
  proto[key] = function (...args) {
    return point(`handle.${key}`, this.fd, () => orig.apply(this, args));
  };
}
syncBuiltinESMExports();

// The count run writes the list of its writes, one per line, to $KABI_KILL_COUNT_FILE.
if (countFile) process.on('exit', () => writeFileSync(countFile, trace.join('\n') + '\n'));
