import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { addKernel, externalModule, makeRoot, MODULE_LAYOUT_CRC } from '../../corpus/fixtures/system-root.js';
import { gnuCpio, tempDir, writeTree, type TreeItem } from '../initramfs/helpers.js';
import { main } from '../../src/cli/main.js';
import { memoryIo } from '../../src/cli/io.js';
import { recorder, wm } from './helpers.js';

const A = '5.14.0-100.el9.x86_64';
const B = '5.14.0-200.el9.x86_64';
const LAYOUT = { symbol: 'module_layout', crc: MODULE_LAYOUT_CRC };
const spec = (name: string) => ({ name, versions: [LAYOUT, { symbol: 'printk', crc: 0x11 }], undefinedSymbols: ['printk'] });

/** A dracut gzip image for B holding the given module tree entries (and dracut's list of its own modules). */
function image(items: TreeItem[]): Uint8Array {
  const dir = tempDir();
  writeTree(dir, [{ path: `usr/lib/modules/${B}/modules.dep`, data: '' }, { path: 'usr/lib/dracut/modules.txt', data: 'kernel-modules\n' }, ...items]);
  return gzipSync(gnuCpio(dir));
}

function system(imageItems: TreeItem[]) {
  const fx = makeRoot('kabi-step-');
  for (const r of [A, B]) addKernel(fx, { release: r, symvers: 'boot-gz', vmlinux: [{ symbol: 'printk', crc: 0x11 }], config: { CONFIG_CC_VERSION_TEXT: '"gcc (GCC) 11"' }, dirs: ['extra'] });
  fx.write(`/boot/initramfs-${B}.img`, image(imageItems));
  const drv = fx.write(`/lib/modules/${A}/extra/drv.ko`, externalModule(A, spec('drv')));
  return { fx, drv };
}

describe('initramfs after linking', () => {
  it('weak-modules leaves an image alone when none of the changed modules is in it', async () => {
    const { fx, drv } = system([{ path: `usr/lib/modules/${B}/kernel/lib/kabi_base.ko`, data: 'in-tree module' }]);
    const dracut = recorder(fx.root + '/..', `dracut-${Date.now()}`);
    const r = await wm(['--basedir', fx.root, '--add-modules', '--verbose', '--dracut', dracut.path], drv);
    expect(r.status).toBe(0);
    expect(dracut.calls()).toEqual([]);
    expect(r.out).toMatch(/would put nothing else into it for the changed modules; not rebuilding it/);
  });

  it('weak-modules runs dracut when the image holds an older copy of the module it links', async () => {
    const { fx, drv } = system([
      { path: `usr/lib/modules/${B}/weak-updates/drv.ko`, link: `../extra/drv.ko` },
      { path: `usr/lib/modules/${B}/extra/drv.ko`, data: 'an older build' },
    ]);
    const dracut = recorder(fx.root + '/..', `dracut-${Date.now()}`);
    const r = await wm(['--basedir', fx.root, '--add-modules', '--dracut', dracut.path], drv);
    expect(r.status).toBe(0);
    expect(dracut.calls()).toEqual([`-f ${join(fx.root, 'boot', `initramfs-${B}.img`)} ${B}`]);
  });

  it('kabi link --initramfs defer records the kernel for kabi initramfs flush', async () => {
    const { fx, drv } = system([
      { path: `usr/lib/modules/${B}/weak-updates/drv.ko`, link: `../extra/drv.ko` },
      { path: `usr/lib/modules/${B}/extra/drv.ko`, data: 'an older build' },
    ]);
    const io = memoryIo();
    expect(await main(['link', '--root', fx.root, '--add', '--no-depmod', '--initramfs', 'defer', drv], io)).toBe(0);
    expect(io.out()).toMatch(new RegExp(`initramfs /boot/initramfs-${B.replace(/\./g, '\\.')}\\.img: recorded for kabi initramfs flush`));
    const list = memoryIo();
    expect(await main(['initramfs', 'flush', '--root', fx.root, '--dry-run'], list)).toBe(0);
    expect(list.out()).toContain(B);
  });
});
