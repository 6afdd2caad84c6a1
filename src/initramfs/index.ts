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
 *   imageNeedsUpdate({root, fs, release, changedModules?})  → ImageCheck
 *     Compares every module the image holds for `release` with the installed tree under
 *     `root` (after the linker applied its plan), or only the module names of `changedModules`
 *     (system paths of files added, replaced, linked or removed). `changes` says what is stale:
 *     changed / removed / added (modprobe now picks a file the image lacks) / config (not in the
 *     image but named in dracut.conf.d, initramfs-tools' modules or mkinitcpio.conf, so only the
 *     generator can add it). A dracut image holding a `strip -g`ed copy counts as current.
 *     `nativePossible` says whether updateImage can do it. No image → exists: false and nothing
 *     to do (kabi never creates an image that was never built, like weak-modules).
 *
 * Acting:
 *   refreshInitramfs({root, fs, release, changedModules?, strategy, dryRun, …})  → RefreshResult
 *     What the linker calls per kernel after applying a plan: check, then nothing / native
 *     update / generator / deferred record, by strategy 'auto' (native when possible, else the
 *     generator), 'native', 'generator' or 'defer'. A dry run reads but never writes or runs
 *     anything.
 *   updateImage(opts)  → UpdateResult
 *     Native rewrite: modules put at the image's own paths (weak-updates links as relative links
 *     with the target copied to its real path, modules uncompressed where initramfs-tools
 *     unpacked them), missing dependencies added, depmod outputs regenerated over the image's
 *     module tree (DepmodRunner; default `depmod -a -b` on a private scratch copy), untouched
 *     segments (the early cpio) copied byte for byte, touched ones recompressed in their own
 *     format (xz with a CRC32 check and a 1 MiB dictionary, zstd at -9, others at the generator's level), written beside the original,
 *     read back and verified, the old image kept as IMAGE.kabi-bak, then renamed into place.
 *   regenerateWithGenerator({root, fs, release, generator?, runner?, dryRun})
 *     dracut -f IMAGE K | update-initramfs -u -k K | mkinitcpio -p PRESET (-k K -g IMAGE) |
 *     kernel-install add K KERNEL; detectGenerator() picks the one matching the image's naming.
 *   deferRefresh / listDeferred / flushDeferred
 *     Record kernels in /run/kabi/initramfs (RPM %post), refresh each once later (%posttrans).
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
export { imageNeedsUpdate, analyseImage, type CheckOptions, type ImageCheck, type ImageChange, type ChangeKind } from './check.js';
export { updateImage, verifyRewrite, type UpdateOptions, type UpdateResult, type UpdateOperation } from './update.js';
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
