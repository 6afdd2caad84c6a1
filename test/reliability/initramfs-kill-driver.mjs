// Runs `kabi ARGS...` (the built library's CLI, in this process) with a file system that
// counts every call that changes something on disk and kills the process with SIGKILL at
// call number KABI_KILL_AT (1-based); with KABI_KILL_AT=0 it only counts and prints the
// total on stderr as "kabi-test-writes=N". For test/reliability/initramfs-kill.test.ts.
import { main } from '../../dist/src/cli/main.js';
import { processIo } from '../../dist/src/cli/io.js';
import { nodeFs } from '../../dist/src/fs.js';
import { writeSync } from 'node:fs';

const killAt = Number(process.env.KABI_KILL_AT ?? '0');
let writes = 0;
const point = (what) => {
  writes++;
  if (killAt > 0 && writes === killAt) {
    writeSync(2, `kabi-test-killed-at=${writes} ${what}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
};
const MUTATING = ['writeFile', 'rename', 'unlink', 'rm', 'rmdir', 'mkdir', 'link', 'symlink', 'chmod', 'chown', 'copyFile', 'utimes', 'lutimes', 'mkdtemp'];
const wrapHandle = (fh, path) =>
  new Proxy(fh, {
    get(target, prop) {
      const v = Reflect.get(target, prop);
      if (typeof v !== 'function') return v;
      if (['write', 'writeFile', 'sync', 'datasync', 'truncate', 'chmod', 'chown'].includes(prop)) {
        return (...args) => {
          point(`${String(prop)} ${path}`);
          return v.apply(target, args);
        };
      }
      return v.bind(target);
    },
  });
const fs = new Proxy(nodeFs, {
  get(target, prop) {
    const v = Reflect.get(target, prop);
    if (typeof v !== 'function') return v;
    if (MUTATING.includes(prop)) {
      return (...args) => {
        point(`${String(prop)} ${args[0]}`);
        return v.apply(target, args);
      };
    }
    if (prop === 'open') {
      return async (path, flags, mode) => {
        const writing = typeof flags === 'string' ? /[wa+]/.test(flags) : typeof flags === 'number' && (flags & 3) !== 0;
        if (writing) point(`open ${path}`);
        return wrapHandle(await v.call(target, path, flags, mode), path);
      };
    }
    return v.bind(target);
  },
});

const status = await main(process.argv.slice(2), { ...processIo(), fs });
if (killAt === 0) writeSync(2, `kabi-test-writes=${writes}\n`);
process.exitCode = status;
