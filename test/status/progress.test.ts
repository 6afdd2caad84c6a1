import { describe, expect, it } from 'vitest';
import { memoryIo } from '../../src/cli/io.js';
import { createProgress } from '../../src/cli/progress.js';

describe('progress indicator', () => {
  it('writes nothing when stderr is not a terminal', () => {
    const io = memoryIo({ isTTY: false });
    const p = createProgress(io, 'kabi status');
    p.update('reading', 1, 10);
    p.clear();
    expect(io.err()).toBe('');
  });

  it('redraws one line on a terminal, throttled, always showing the last step, and erases it', () => {
    let t = 0;
    const io = memoryIo({ isTTY: true });
    const p = createProgress(io, 'scan', { now: () => t, intervalMs: 100, columns: 40 });
    p.update('a.ko', 1, 3);
    t = 50;
    p.update('b.ko', 2, 3); // too soon: skipped
    t = 60;
    p.update('c.ko', 3, 3); // the last step is always drawn
    expect(io.err()).toBe('\rscan: 1/3 a.ko\rscan: 3/3 c.ko');
    p.clear();
    expect(io.err().endsWith(`\r${' '.repeat('scan: 3/3 c.ko'.length)}\r`)).toBe(true);
    p.update('x'.repeat(80));
    expect(io.err().split('\r').at(-1)!.length).toBeLessThan(40);
  });
});
