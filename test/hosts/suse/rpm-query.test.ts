// SPDX-License-Identifier: GPL-2.0-or-later
//
// kabi asks rpm about KMPs with one query (src/kmp/rpm-db.ts); the unit tests answer it from a
// recorded package list (test/kmp/fake-rpm.mjs). Here real rpm answers for the same packages,
// built with rpmbuild and registered in a database under a root: the answers must be the same.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rpmDatabase } from '../../../src/kmp/rpm-db.js';
import { runCommand, type Runner } from '../../../src/util/run.js';
// @ts-expect-error a plain .mjs test helper without declarations
import { answer, DB_FILE } from '../../kmp/fake-rpm.mjs';
import { payloadDir, rpmbuildSpec, specText } from '../rpm.js';

const packages = [
  { name: 'drbd-kmp-default', version: '9.1.16_k6.4.0_150600.21', release: '3.2', epoch: 2, provides: ['multiversion(kernel)', 'drbd-kmp = 9.1.16'], dir: '/usr/lib/modules/6.4.0-150600.21-default/updates/drbd', files: ['drbd.ko', 'drbd_transport_tcp.ko'] },
  { name: 'kernel-default-extra-kmp-default', version: '6.4.0', release: '150600.21', provides: ['kmp_in_kernel'], dir: '/usr/lib/modules/6.4.0-150600.21-default/extra', files: ['x.ko.zst'] },
  { name: 'drbd-kmp-rt', version: '9.1.16_k6.4.0_150600.21', release: '3.2', provides: [], dir: '/usr/lib/kmp/drbd-kmp-rt/9.1.16-3.2/updates', files: ['drbd.ko'] },
];

describe('rpm -qa --qf: kabi’s query, answered by real rpm and by the recorded database', () => {
  it('gives the same packages, provides and files', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kabi-rpmdb-'));
    const rpms: string[] = [];
    const fake: object[] = [];
    for (const p of packages) {
      const payload = payloadDir();
      mkdirSync(join(payload, p.dir), { recursive: true });
      for (const f of p.files) writeFileSync(join(payload, p.dir, f), 'not a module');
      const spec = specText({ name: p.name, version: p.version, release: p.release, payload, provides: p.provides, files: [`%dir ${p.dir}`, ...p.files.map((f) => `${p.dir}/${f}`)] });
      rpms.push(rpmbuildSpec(p.epoch === undefined ? spec : spec.replace(/^Release:/m, `Epoch: ${p.epoch}\nRelease:`)));
      fake.push({ name: p.name, version: p.version, release: p.release, ...(p.epoch === undefined ? {} : { epoch: p.epoch }), provides: p.provides, files: [p.dir, ...p.files.map((f) => `${p.dir}/${f}`)] });
    }
    const rpm = (args: string[]) => runCommand('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', ...args]);
    expect((await rpm(['--initdb'])).status).toBe(0);
    const install = await rpm(['-i', '--justdb', '--nodeps', '--force-debian', ...rpms]);
    expect(install.status, install.stderr).toBe(0);
    mkdirSync(join(root, 'var/lib'), { recursive: true });
    writeFileSync(join(root, DB_FILE), JSON.stringify(fake));

    const real = rpmDatabase({ root, dbpath: '/var/lib/rpm' });
    const recorded: Runner = async (_cmd, args) => ({ ...answer([...args]), signal: null, spawnError: undefined });
    const byFake = rpmDatabase({ root, runner: recorded });
    for (const glob of ['drbd-kmp-default', '*-kmp-default', '*-kmp-rt', 'none-kmp-*']) {
      const sort = (l: Awaited<ReturnType<typeof real.query>>) => [...l].map((p) => ({ ...p, provides: [...p.provides].sort(), files: [...p.files].sort() })).sort((a, b) => a.nvr.localeCompare(b.nvr));
      expect(sort(await byFake.query(glob)), glob).toEqual(sort(await real.query(glob)));
    }
  });
});
