// The generators' module selection, read from their real configuration and scripts: this
// machine's dracut (its modules.d) and initramfs-tools (its hook-functions) copied into
// fixture roots, asked about fixture modules placed where each rule does (or does not) reach.

import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, type FixtureRoot } from '../../corpus/fixtures/system-root.js';
import { nodeFs } from '../../src/fs.js';
import { dracutModel } from '../../src/initramfs/generator/dracut.js';
import { fixedHostView, type HostView } from '../../src/initramfs/generator/host-view.js';
import { initramfsToolsModel } from '../../src/initramfs/generator/initramfs-tools.js';
import { InstalledModules } from '../../src/initramfs/generator/installed-modules.js';
import { mkinitcpioModel } from '../../src/initramfs/generator/mkinitcpio.js';
import type { GeneratorModel } from '../../src/initramfs/generator/model.js';
import { ShellEval } from '../../src/initramfs/generator/shell-eval.js';
import { cleanupTemps } from './helpers.js';

afterAll(cleanupTemps);

const K = '6.1.0-90-amd64';
const BLOCK = { undefinedSymbols: ['blk_mq_alloc_request'] };

/** A root with kernel K and modules at the given places (relative to the module directory). */
function system(mods: Record<string, { name: string; undefinedSymbols?: string[]; modinfo?: [string, string][] }>): FixtureRoot {
  const fx = makeRoot('kabi-models-');
  addKernel(fx, { release: K, initramfs: false });
  for (const [rel, spec] of Object.entries(mods)) fx.write(`/lib/modules/${K}/${rel}`, externalModule(K, { ...spec, intree: true }));
  return fx;
}

async function verdicts(fx: FixtureRoot, load: (installed: InstalledModules) => Promise<GeneratorModel>, names: string[]): Promise<Record<string, boolean | undefined>> {
  const installed = await InstalledModules.load(nodeFs, fx.root, K, `/lib/modules/${K}`);
  const model = await load(installed);
  const out: Record<string, boolean | undefined> = {};
  for (const n of names) {
    const f = installed.chosen(n);
    out[n] = f === undefined ? false : (await model.selects(f)).include;
  }
  return out;
}

describe('the shell evaluator', () => {
  const run = (text: string, vars: Record<string, string> = {}) => {
    const ev = new ShellEval({ record: new Set(['rec']) });
    for (const [k, v] of Object.entries(vars)) ev.set(k, v);
    ev.run(text);
    return ev.calls.map((c) => ({ args: c.args.map((a) => (a.known ? a.text : `?${a.raw}`)), certain: c.certain, prefix: Object.fromEntries([...c.prefix].map(([k, v]) => [k, v.known ? v.text : '?'])) }));
  };

  it('quotes, expansions, field splitting, "$@", arrays and ${var/-/_}', () => {
    expect(run(`a="x y"; b=$a; rec "$a" $b 'l$a' "\${c:-d e}"`)).toEqual([{ args: ['x y', 'x', 'y', 'l$a', 'd e'], certain: true, prefix: {} }]);
    expect(run(`f() { rec "$@"; }; f 1 "2 3"`)[0]!.args).toEqual(['1', '2 3']);
    expect(run(`arr=(a b); arr+=(c); rec "\${arr[@]}"`)[0]!.args).toEqual(['a', 'b', 'c']);
    expect(run(`v="a-b-c"; rec "\${v/-/_}" "\${v//-/_}"`)[0]!.args).toEqual(['a_b-c', 'a_b_c']);
    expect(run(`hostonly='' rec x`)[0]!.prefix).toEqual({ hostonly: '' });
  });

  it('decides conditions from known values; runs both sides of the others, as maybe', () => {
    expect(run(`if [[ -z $d ]]; then rec yes; else rec no; fi`, { d: '' })).toEqual([{ args: ['yes'], certain: true, prefix: {} }]);
    expect(run(`if [[ $m == "strict" ]]; then rec s; fi; [[ $m ]] && rec t`, { m: 'sloppy' }).map((c) => c.args[0])).toEqual(['t']);
    const unknown = run(`if some_probe; then rec a; fi; rec b`);
    expect(unknown.map((c) => [c.args[0], c.certain])).toEqual([['a', false], ['b', true]]);
    expect(run(`case "$1" in prereqs) exit 0;; esac; rec after`, { '1': '' })).toEqual([{ args: ['after'], certain: true, prefix: {} }]);
    expect(run(`probe || return 1; rec after`)[0]!.certain).toBe(false);
  });

  it('for over a known list runs per item; a computed one once, as maybe', () => {
    expect(run(`for m in a b; do rec $m; done`).map((c) => [c.args[0], c.certain])).toEqual([['a', true], ['b', true]]);
    expect(run(`for m in /sys/class/x/*; do rec $m; done`).map((c) => [c.args[0], c.certain])).toEqual([['?$m', false]]);
  });

  it('an argument computed at run time keeps the text every value of it starts with', () => {
    const prefixes = (text: string) => {
      const ev = new ShellEval({ record: new Set(['rec']) });
      ev.set('list', { known: false, why: 'the running system' });
      ev.run(text);
      return ev.calls[0]!.args.map((a) => (a.known ? a.text : `?${a.prefix ?? ''}`));
    };
    expect(prefixes(`k=crypto; rec "$k-$(probe)" "\${list[@]/#/fs-}" "$(probe)" 'x'`)).toEqual(['?crypto-', '?fs-', '?', 'x']);
    expect(prefixes(`rec nls_$(probe)*`)).toEqual(['?nls_']);
  });
});

const hasDracut = existsSync('/usr/lib/dracut/modules.d/90kernel-modules/module-setup.sh');

describe.runIf(hasDracut)("dracut, with this machine's dracut modules", () => {
  function dracutRoot(conf: string, modules = ['kernel-modules']) {
    const fx = system({
      'kernel/drivers/block/kblk.ko': { name: 'kblk', ...BLOCK },
      'extra/xblk.ko': { name: 'xblk', ...BLOCK },
      'updates/drivers/scsi/ublk.ko': { name: 'ublk', ...BLOCK },
      'kernel/drivers/block/plainblk.ko': { name: 'plainblk' },
      'kernel/drivers/block/omitme.ko': { name: 'omitme', ...BLOCK },
      'kernel/drivers/hid/hidthing.ko': { name: 'hidthing' },
      'extra/named.ko': { name: 'named' },
      'extra/bound.ko': { name: 'bound', ...BLOCK, modinfo: [['alias', 'pci:v00001234d*sv*sd*bc*sc*i*']] },
      'kernel/fs/nfs/nfs.ko': { name: 'nfs' },
      'kernel/fs/myfs/myfs.ko': { name: 'myfs' },
    });
    cpSync('/usr/lib/dracut', fx.path('/usr/lib/dracut'), { recursive: true });
    fx.write('/etc/dracut.conf.d/10-test.conf', conf);
    return { fx, modules };
  }
  const load = (fx: FixtureRoot, modules: string[], host: HostView) => (installed: InstalledModules) => dracutModel({ root: fx.root, fs: nodeFs, release: K, installed, host, modulesTxt: modules });
  const ALL = ['kblk', 'xblk', 'ublk', 'plainblk', 'omitme', 'hidthing', 'named', 'bound', 'nfs', 'myfs'];

  it('not hostonly: block drivers under kernel/, extra/ or updates/drivers, the driver classes, file systems but nfs, add_drivers; omit_drivers wins', async () => {
    const { fx, modules } = dracutRoot('add_drivers+=" named "\nomit_drivers+=" omitme "\n');
    const v = await verdicts(fx, load(fx, modules, fixedHostView({})), ALL);
    expect(v).toEqual({ kblk: true, xblk: false, ublk: true, plainblk: false, omitme: false, hidthing: true, named: true, bound: false, nfs: false, myfs: true });
  });

  it('hostonly: only what the running system uses (bound to a device, or loaded), plus add_drivers', async () => {
    const { fx, modules } = dracutRoot('hostonly="yes"\nadd_drivers+=" named "\n');
    const host = fixedHostView({ loaded: ['hidthing'], modaliases: ['pci:v00001234d00005678sv00000000sd00000000bc01sc00i00'] });
    const v = await verdicts(fx, load(fx, modules, host), ALL);
    // kblk is a block driver nothing here uses: host-only filtering drops it. bound drives a
    // device of this machine: dracut's host-only rules that name the drivers of the running
    // system's devices (record_block_dev_drv, the watchdog, drm) may take it, which only a
    // run can tell.
    expect(v).toMatchObject({ kblk: false, plainblk: false, named: true, bound: undefined, hidthing: true, myfs: false, omitme: false });
  });

  it('a module named at run time with a known prefix (crypto-$cipher) is undecided only if its name or an alias starts so; one without a prefix only if the running system uses it', async () => {
    const { fx } = dracutRoot('');
    fx.write('/lib/modules/' + K + '/extra/mycipher.ko', externalModule(K, { name: 'mycipher', intree: true, modinfo: [['alias', 'crypto-mycipher']] }));
    fx.write('/lib/modules/' + K + '/extra/plainer.ko', externalModule(K, { name: 'plainer', intree: true }));
    fx.write('/usr/lib/dracut/modules.d/90kabicrypt/module-setup.sh', 'installkernel() {\n    instmods "crypto-$(cipher_of_root)" $(other_probe)\n}\n');
    execFileSync('depmod', ['-b', fx.root, K]);
    const host = fixedHostView({ loaded: ['used'] });
    fx.write('/lib/modules/' + K + '/extra/used.ko', externalModule(K, { name: 'used', intree: true }));
    fx.write('/lib/modules/' + K + '/extra/otherfs.ko', externalModule(K, { name: 'otherfs', intree: true, modinfo: [['alias', 'fs-otherfs']] }));
    execFileSync('depmod', ['-b', fx.root, K]);
    const v = await verdicts(fx, load(fx, ['kernel-modules', 'kabicrypt'], host), ['mycipher', 'plainer', 'otherfs', 'used', 'named']);
    expect(v).toEqual({ mycipher: undefined, plainer: false, otherfs: false, used: undefined, named: false });
  });

  it('drivers="…" replaces the generic selection; a value computed at run time leaves every module undecided', async () => {
    const a = dracutRoot('drivers="plainblk"\n');
    expect(await verdicts(a.fx, load(a.fx, a.modules, fixedHostView({})), ['kblk', 'plainblk', 'hidthing'])).toEqual({ kblk: false, plainblk: true, hidthing: false });
    const b = dracutRoot('add_drivers+=" $(cat /etc/list) "\n');
    expect((await verdicts(b.fx, load(b.fx, b.modules, fixedHostView({})), ['plainblk'])).plainblk).toBeUndefined();
  });
});

const hasTools = existsSync('/usr/share/initramfs-tools/hook-functions');

describe.runIf(hasTools)("initramfs-tools, with this machine's hook-functions", () => {
  function toolsRoot(modules: string, list = '') {
    const fx = system({
      'kernel/drivers/block/kblk.ko': { name: 'kblk' },
      'extra/xblk.ko': { name: 'xblk' },
      'kernel/drivers/hid/hid-thingff.ko': { name: 'hid-thingff' },
      'kernel/drivers/hid/hid-thing.ko': { name: 'hid-thing' },
      'kernel/drivers/net/mynic.ko': { name: 'mynic' },
      'extra/listed.ko': { name: 'listed' },
      'extra/hooked.ko': { name: 'hooked' },
    });
    cpSync('/usr/share/initramfs-tools/hook-functions', fx.path('/usr/share/initramfs-tools/hook-functions'));
    fx.write('/etc/initramfs-tools/initramfs.conf', `MODULES=${modules}\n`);
    fx.write('/etc/initramfs-tools/modules', list);
    fx.write('/etc/initramfs-tools/hooks/mine', '#!/bin/sh\ncase "$1" in prereqs) echo ""; exit 0;; esac\n. /usr/share/initramfs-tools/hook-functions\nmanual_add_modules hooked\n');
    chmodSync(fx.path('/etc/initramfs-tools/hooks/mine'), 0o755);
    return fx;
  }
  const load = (fx: FixtureRoot) => (installed: InstalledModules) => initramfsToolsModel({ root: fx.root, fs: nodeFs, release: K, installed, host: fixedHostView({}), imageModules: new Set() });
  const ALL = ['kblk', 'xblk', 'hid_thingff', 'hid_thing', 'mynic', 'listed', 'hooked'];

  it('MODULES=most: the groups under kernel/drivers (hid-*ff.ko left out), the modules file, the hooks', async () => {
    const fx = toolsRoot('most', 'listed\n');
    expect(await verdicts(fx, load(fx), ALL)).toEqual({ kblk: true, xblk: false, hid_thingff: false, hid_thing: true, mynic: true, listed: true, hooked: true });
  });

  it('MODULES=list: only the modules file and the hooks; netboot: base and net, not block', async () => {
    const fx = toolsRoot('list', 'listed\n');
    expect(await verdicts(fx, load(fx), ALL)).toEqual({ kblk: false, xblk: false, hid_thingff: false, hid_thing: false, mynic: false, listed: true, hooked: true });
    const nb = toolsRoot('netboot');
    expect(await verdicts(nb, load(nb), ['kblk', 'hid_thing', 'mynic'])).toEqual({ kblk: false, hid_thing: true, mynic: true });
  });
});

describe('mkinitcpio', () => {
  it('MODULES, and the install hooks of HOOKS; autodetect keeps only what the running system uses', async () => {
    const fx = system({ 'kernel/drivers/scsi/myscsi.ko': { name: 'myscsi' }, 'kernel/drivers/ata/myata.ko': { name: 'myata' }, 'extra/mine.ko': { name: 'mine' } });
    fx.write('/usr/lib/initcpio/install/block', "#!/bin/bash\nbuild() {\n    map add_module 'virtio_blk?'\n    add_checked_modules '/drivers/scsi/' '/drivers/ata/'\n}\n");
    fx.write('/etc/mkinitcpio.conf', 'MODULES=(mine)\nHOOKS=(base udev block)\n');
    const load = (installed: InstalledModules) => mkinitcpioModel({ root: fx.root, fs: nodeFs, release: K, style: 'mkinitcpio', installed, host: fixedHostView({ loaded: ['myata'] }), tree: undefined, imageModules: new Set() });
    expect(await verdicts(fx, load, ['myscsi', 'myata', 'mine'])).toEqual({ myscsi: true, myata: true, mine: true });
    fx.write('/etc/mkinitcpio.conf', 'MODULES=()\nHOOKS=(base udev autodetect block)\n');
    expect(await verdicts(fx, load, ['myscsi', 'myata', 'mine'])).toEqual({ myscsi: false, myata: true, mine: false });
  });
});
