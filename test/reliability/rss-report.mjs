// Preloaded into a bin run by the reliability tests (node --import): prints the process's peak
// resident set size on stderr when it exits, whatever the exit status.
import { writeSync } from 'node:fs';

process.on('exit', () => {
  writeSync(2, `\nkabi-test-maxrss-kib=${process.resourceUsage().maxRSS}\n`);
});
