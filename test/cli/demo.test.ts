// `npm start` (corpus/demo/demo.ts, built to dist/demo/demo.js): every command on a demo system,
// whose root is removed at the end unless --keep is given, and it says which.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const DEMO = new URL('../../dist/demo/demo.js', import.meta.url).pathname;

function demo(args: string[]) {
  const r = spawnSync(process.execPath, [DEMO, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('npm start (the demo)', () => {
  it('shows every command, each exiting as it should, and removes its root saying so', () => {
    const r = demo([]);
    expect(r.code).toBe(0);
    const shown = [...r.out.matchAll(/^\$ (?:echo .* \| )?(kabi \S+|weak-modules)/gm)].map((m) => m[1]);
    for (const c of ['kabi inspect', 'kabi check', 'kabi status', 'kabi link', 'kabi depmod', 'kabi initramfs', 'kabi preserve', 'weak-modules']) expect(shown, c).toContain(c);
    const root = /^A demo system under ROOT=(\S+):/m.exec(r.out)![1]!;
    expect(r.out).toContain(`Removed the demo system ${root} (\`npm start -- --keep\` keeps it to explore).`);
    expect(existsSync(root)).toBe(false);
    // The real link run linked the driver into the compatible kernel only.
    expect(r.out).toMatch(/\+ weak-updates\/acme\/acme_nic\.ko -> \/lib\/modules\/5\.14\.0-362\.8\.1\.el9_3\.x86_64\/extra\/acme\/acme_nic\.ko/);
  });

  it('keeps its root with --keep, and says where', () => {
    const r = demo(['--keep']);
    expect(r.code).toBe(0);
    const root = /^A demo system under ROOT=(\S+):/m.exec(r.out)![1]!;
    expect(r.out).toContain(`The demo system is kept under ${root}`);
    expect(existsSync(`${root}/lib/modules`)).toBe(true);
    rmSync(root, { recursive: true, force: true });
  });
});
