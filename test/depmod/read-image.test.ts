// Module bytes for depmod from a tree held in memory (an image's, for its depmod run) are the
// tree's own, not copies; the budget and the refusals of the general path still apply.

import { describe, expect, it } from 'vitest';
import { readModuleImage } from '../../src/depmod/read-image.js';
import { READ_BUDGETS } from '../../src/fs.js';
import { MemoryTree, memoryFs } from '../../src/initramfs/memory-fs.js';

describe('readModuleImage over an in-memory tree', () => {
  const tree = new MemoryTree();
  const data = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]);
  tree.file('/lib/modules/6.1/kernel/a.ko', data);
  tree.symlink('/lib/modules/6.1/kernel/link.ko', 'a.ko');
  tree.mkdirs('/lib/modules/6.1/kernel/dir.ko');
  const fs = memoryFs(tree);

  it("hands out the file's own bytes, through a link too", async () => {
    expect(await readModuleImage(fs, '/lib/modules/6.1/kernel/a.ko')).toBe(data);
    expect(await readModuleImage(fs, '/lib/modules/6.1/kernel/link.ko')).toBe(data);
  });

  it('refuses what the general path refuses: a missing file, a directory, a file past the budget', async () => {
    await expect(readModuleImage(fs, '/lib/modules/6.1/kernel/none.ko')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readModuleImage(fs, '/lib/modules/6.1/kernel/dir.ko')).rejects.toMatchObject({ code: 'EISDIR' });
    const big = new MemoryTree();
    big.file('/big.ko', new Uint8Array(READ_BUDGETS.module.maxBytes + 1));
    await expect(readModuleImage(memoryFs(big), '/big.ko')).rejects.toMatchObject({ code: 'LIMIT', file: '/big.ko' });
  });
});
