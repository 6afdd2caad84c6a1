/**
 * kabi's initramfs layer: read, check and rewrite images natively, or drive the generator.
 *
 * Reading (pure, bounded, never writes):
 *   parseImage(bytes, {file, limits}) / readImageFile(fs, path)  → InitramfsImage
 *     The image walked as init/initramfs.c walks it: uncompressed newc/crc archives at 4-byte
 *     aligned offsets (dracut's early microcode cpio), NUL padding, compressed segments found by
 *     magic (gzip, zstd, xz, lz4 legacy, lzma, bzip2, lzo), each decompressed and read as a
 *     stream of archives. Member names are normalised (ImagePath); '..' or absolute names are
 *     UNSAFE_PATH, malformed archives CPIO_FORMAT, bad layout INITRAMFS_FORMAT, each naming the
 *     file and offset. ImageLimits bound decoded bytes, entries and segments (cpio bombs).
 *   new ImageTree(image)  → the rootfs the kernel would unpack, symlinks resolved in memory.
 *   readCpioArchive / readCpioStream / writeCpioArchive / writeCpioStream  → the cpio codec;
 *     read → write is byte-identical for what GNU cpio, dracut, mkinitramfs and kabi write.
 *
 * Deciding (read only):
 *   imageNeedsUpdate({root, fs, release, changedModules?}) / analyseImage(…)  → ImageCheck
 *     One decision per image and change: would the image's generator, run now on the tree
 *     under `root`, put other module files into it? Taken by the generator's own rules read
 *     from the root (generator/: dracut's configuration and each dracut module's
 *     installkernel(), initramfs-tools' MODULES, modules file and hooks, mkinitcpio's MODULES,
 *     HOOKS and autodetect) through an abstract shell evaluator. `changedModules` (system paths
 *     added, replaced, linked or removed) narrows the question to those names; without it every
 *     module the image holds or the generator selects is compared. `changes`: changed / removed
 *     / added (selected, or needed by a module the image keeps) / undecided (only a generator
 *     run can tell: the safe default is to rebuild, and `detail` says why) / create (no image,
 *     and the host's tools would make one: SUSE-style systems, or `createMissing`). A dracut
 *     image holding a `strip -g`ed copy counts as current. `nativePossible` says whether
 *     updateImage can do it.
 *
 * Acting:
 *   refreshInitramfs({root, fs, release, changedModules?, strategy, dryRun, …})  → RefreshResult
 *     The one call every path makes (weak-modules, kabi link, flush, the hooks): decide under
 *     the image's lock, then nothing / native update / generator / deferred record, by strategy
 *     'auto' (native when possible, else the generator), 'native', 'generator' or 'defer'.
 *     `reasons` says why an image is rebuilt. A dry run reads but never writes or runs anything.
 *   updateImage(opts)  → UpdateResult
 *     Native rewrite: what the generator would produce for the changed modules (their
 *     dependencies, softdeps and the firmware they name, `strip -g` where dracut strips; weak-updates
 *     links as relative links with the target copied as installed; modules uncompressed where
 *     initramfs-tools unpacks them; what only removed modules needed leaves), depmod outputs
 *     of the image's tree rendered in memory, untouched segments (the early cpio) copied byte
 *     for byte, touched ones recompressed in their own format, written beside the original,
 *     read back and verified, then renamed into place (no backup copy is left on /boot).
 *   regenerateWithGenerator({root, fs, release, generator?, runner?, dryRun})
 *     dracut -f [--rebuild] IMAGE K | update-initramfs -u -k K | mkinitcpio -p PRESET (-k K -g IMAGE) |
 *     kernel-install add K KERNEL; detectGenerator() picks the one matching the image's naming.
 *   deferRefresh / listDeferred / flushDeferred
 *     Record kernels and their changed modules in /run/kabi/initramfs (one file per call; RPM
 *     %post), then refresh each kernel once with the same decision (%posttrans, `kabi initramfs flush`).
 */

export { normaliseName, relativeLinkTarget, type ImagePath } from './archive-path.js';
export {
  readCpioArchive,
  readCpioStream,
  writeCpioArchive,
  writeCpioStream,
  withEntries,
  newEntry,
  newTrailer,
  kindOf,
  modeString,
  NEWC_MAGIC,
  CRC_MAGIC,
  type CpioArchive,
  type CpioEntry,
  type CpioStream,
  type EntryKind,
} from './cpio.js';
export { DEFAULT_IMAGE_LIMITS, type ImageLimits } from './limits.js';
export { parseImage, readImageFile, allEntries, entryCount, segmentLabel, type ImageSegment, type InitramfsImage } from './image.js';
export { ImageTree, type TreeNode } from './image-tree.js';
export { locateModuleDir, listImageModules, type ImageModule } from './image-modules.js';
export { compareModules, type ModuleSameness } from './module-compare.js';
export { imageNeedsUpdate, analyseImage, type CheckOptions, type AnalysisTimings, type ImageCheck, type ImageChange, type ChangeKind } from './check.js';
export { updateImage, verifyRewrite, type UpdateOptions, type UpdateResult, type UpdateOperation, type UpdateTimings } from './update.js';
export { systemDepmod, nativeDepmod, type DepmodRunner } from './depmod-refresh.js';
export { replaceFile } from './atomic-write.js';
export { lockImage, type ImageLock } from './image-lock.js';
export {
  regenerateWithGenerator,
  detectGenerator,
  generatorCommand,
  isGeneratorName,
  GENERATORS,
  type GeneratorName,
  type RegenerateOptions,
  type RegenerateResult,
} from './generators.js';
export { refreshInitramfs, type RefreshOptions, type RefreshResult, type RefreshStrategy, type RefreshAction } from './refresh.js';
export { deferRefresh, listDeferred, flushDeferred, DEFAULT_STATE_DIR, type DeferredRecord, type FlushOptions, type FlushOutcome } from './deferred.js';
