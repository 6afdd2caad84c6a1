import { describe, expect, it } from 'vitest';
import { makeRoot } from '../../corpus/fixtures/system-root.js';
import { configuredDrivers, initramfsToolsModules, mkinitcpioModules, shellAssignments } from '../../src/initramfs/generator-config.js';

describe('module names the generators are configured to include', () => {
  it('dracut: add_drivers, force_drivers, drivers and filesystems assignments', () => {
    const text = 'add_drivers+=" nvme  virtio-blk "\nforce_drivers+="dm_crypt"\n# add_drivers+=" commented "\nomit_drivers+=" ignored "\nfilesystems="ext4 xfs"\n';
    expect(shellAssignments(text, new Set(['add_drivers', 'force_drivers', 'drivers', 'filesystems']))).toEqual(['nvme', 'virtio-blk', 'dm_crypt', 'ext4', 'xfs']);
  });

  it('initramfs-tools: one module per line, arguments and comments ignored', () => {
    expect(initramfsToolsModules('# comment\nraid1\nbonding mode=1 # trailing\n\n')).toEqual(['raid1', 'bonding']);
  });

  it('mkinitcpio: MODULES=(…) with optional (?) modules', () => {
    expect(mkinitcpioModules('MODULES=(ext4 nvme? "usbhid")\nHOOKS=(base udev)\n')).toEqual(['ext4', 'nvme', 'usbhid']);
  });

  it('reads the files of a root; a later dracut.conf.d directory hides the same file name', async () => {
    const fx = makeRoot();
    fx.write('/usr/lib/dracut/dracut.conf.d/10-x.conf', 'add_drivers+=" hidden "\n');
    fx.write('/etc/dracut.conf.d/10-x.conf', 'add_drivers+=" shown-one "\n');
    fx.write('/etc/initramfs-tools/modules', 'loop\n');
    fx.write('/etc/mkinitcpio.conf', 'MODULES=(btrfs)\n');
    const c = await configuredDrivers((await import('../../src/fs.js')).nodeFs, fx.root);
    expect([...c.names].sort()).toEqual(['btrfs', 'loop', 'shown_one']);
    expect(c.files).toEqual(['/etc/dracut.conf.d/10-x.conf', '/etc/initramfs-tools/modules', '/etc/mkinitcpio.conf']);
  });
});
