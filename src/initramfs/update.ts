import type { Compression } from '../../native-bindings/index.js';
import { KabiError } from '../errors.js';
import type { InitramfsStyle } from '../kernel/discover.js';
import { joinImage, type ImagePath } from './archive-path.js';
import { replaceFile } from './atomic-write.js';
import { lockImage } from './image-lock.js';
import { nodeFs } from '../fs.js';
import { analyseImage, findKernel, kernelImage, locateImage, type Analysis, type AnalysisTimings, type CheckOptions, type ImageCheck } from './check.js';
import { kindOf, newEntry, S_IFLNK, S_IFREG, type CpioEntry } from './cpio.js';
import { nativeDepmod, type DepmodRunner } from './depmod-refresh.js';
import { ImageEditor, type ArchiveRef } from './editor.js';
import { parseImage, segmentLabel, type ImageSegment, type ReadImageOptions } from './image.js';
import { linkTargetPath, type ImageTree } from './image-tree.js';
import { bytesEqual } from './module-compare.js';
import { planUpdate, type PlannedOp } from './plan.js';

export interface UpdateOptions extends CheckOptions {
  /** Report what would change; read only, run nothing, write nothing. */
  dryRun?: boolean;
  depmod?: DepmodRunner;
  /** Compression level for rewritten segments (default: see DEFAULT_LEVELS). */
  level?: number;
  /** Seconds since the epoch for new directories and depmod files (default: now). */
  now?: number;
  /** Reuse an analysis made just before (the check of the same image). */
  analysis?: Analysis;
  /** Adds the time the analysis and the rewrite spend, by phase (the bench prints it). */
  timings?: UpdateTimings;
}

/** Milliseconds a native rewrite spends, by phase, after the analysis's own. */
export interface UpdateTimings extends AnalysisTimings {
  /** Planning the edits (reading, stripping and placing the new files) and making them. */
  plan?: number;
  /** Running depmod over the edited tree. */
  depmod: number;
  /** Serialising and compressing the touched segments (an xz or lz4 splice decodes back what it encodes). */
  compress: number;
  /** Writing beside the original, flushing, reading back, verifying and renaming. */
  write: number;
}

/** One change of a native image rewrite: a file written, a link made, an entry removed. */
export interface UpdateOperation {
  readonly op: 'write' | 'link' | 'remove';
  readonly path: ImagePath;
  readonly detail: string;
}

/** What a native rewrite of a kernel's image changed. */
export interface UpdateResult {
  readonly release: string;
  /** System path of the image. */
  readonly image: string;
  readonly check: ImageCheck;
  readonly updated: boolean;
  readonly dryRun: boolean;
  readonly operations: readonly UpdateOperation[];
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  /** Rewritten segments; for an xz or lz4 one whose unchanged blocks were kept, how many were kept and how many encoded. */
  readonly segmentsRewritten: readonly { index: number; compression: Compression | undefined; blocks?: { kept: number; encoded: number } }[];
}

/**
 * Levels for rewritten segments: the generator's own, except where its level costs many times
 * the time for under 1 % of size (measured on the 18.6 MiB cpio of a Debian 6.1 dracut image;
 * the kernel decompresses either equally fast):
 * - zstd: dracut's -15 takes about 6x the time of -9 for 0.6 % less;
 * - gzip: dracut's -9 took 4.8 s in zlib against 0.5 s at -6, for 0.7 % less;
 * - lz4: dracut's and initramfs-tools' -9 took 0.70 s in lz4(1) against 0.38 s at -6, for
 *   0.8 % less (-4: 0.23 s, 2.1 % more).
 * xz keeps the generator's preset 6 when it compresses a whole segment; the blocks a splice
 * encodes between kept ones get their own default (see xz-splice.ts).
 */
const DEFAULT_LEVELS: Partial<Record<InitramfsStyle, Partial<Record<Compression, number>>>> = {
  dracut: { zstd: 9, gzip: 6, lz4: 6 },
  suse: { zstd: 9, gzip: 6, lz4: 6 },
  'initramfs-tools': { zstd: 9, lz4: 6 },
  'kernel-install': { zstd: 9, gzip: 6, lz4: 6 },
};

/**
 * Bring the modules inside kernel `release`'s image in line with the installed tree, without
 * running the generator. Does nothing (updated: false) when the image is current or absent.
 * Throws INITRAMFS_FORMAT when only the generator can do it (check.nativePossible false, or
 * a hard-linked module).
 */
export async function updateImage(opts: UpdateOptions): Promise<UpdateResult> {
  if (opts.analysis !== undefined || opts.dryRun) return rewrite(opts.analysis ?? (await analyseImage(opts)), opts);
  return withImageLock(opts, async () => rewrite(await analyseImage(opts), opts));
}

/**
 * Run `fn` holding the lock of the image `opts` names (taken before anything is read from it;
 * what killed runs left beside it is removed then). No lock when the image's directory is missing.
 */
export async function withImageLock<T>(opts: CheckOptions & { lockTimeoutMs?: number }, fn: (cleaned: readonly string[]) => Promise<T>): Promise<T> {
  const root = opts.root ?? '/';
  const fs = opts.fs ?? nodeFs;
  const kernel = await findKernel(fs, root, opts.release);
  const { imageFile } = await locateImage(fs, root, kernel, opts.image ?? (await kernelImage(fs, root, kernel)).path);
  if (imageFile === undefined) return fn([]);
  const lock = await lockImage(fs, imageFile, opts.lockTimeoutMs !== undefined ? { timeoutMs: opts.lockTimeoutMs } : {});
  try {
    return await fn(lock.cleaned);
  } finally {
    await lock.release();
  }
}

async function rewrite(listed: Analysis, opts: UpdateOptions): Promise<UpdateResult> {
  // The decision listed only what it needed; a rewrite reads every member (under the same lock).
  const a = listed.image?.partial && listed.check.needsUpdate && listed.check.nativePossible ? await analyseImage({ ...opts, wholeImage: true }, listed.installed) : listed;
  const { check } = a;
  const size = a.image?.bytes.length ?? 0;
  const base = { release: check.release, image: check.image, check, dryRun: opts.dryRun === true, bytesBefore: size, bytesAfter: size };
  if (!check.exists || !check.needsUpdate) return { ...base, updated: false, operations: [], segmentsRewritten: [] };
  if (!check.nativePossible) {
    throw new KabiError('INITRAMFS_FORMAT', `the image needs its generator: ${check.changes.filter((c) => c.kind === 'undecided' || c.kind === 'create').map((c) => c.detail).join('; ') || check.notes.join('; ')}`, {
      file: a.imageHost,
    });
  }
  const t0 = performance.now();
  const plan = await planUpdate(a);
  const operations: UpdateOperation[] = plan.ops.map(describe);
  if (opts.dryRun) return { ...base, updated: false, operations, segmentsRewritten: [] };

  const image = a.image!;
  const tree = a.tree!;
  const moduleDir = check.moduleDir!;
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const editor = new ImageEditor(image);
  const dirNode = tree.get(moduleDir)!;
  const home: ArchiveRef = { segment: dirNode.segment, archive: dirNode.archive };
  const put = (t: ImageTree, path: ImagePath, mode: number, data: Uint8Array, mtime: number) => {
    const existing = t.get(path);
    if (existing && kindOf(existing.entry.mode) === kindOf(mode)) {
      editor.replace(existing, existing.entry, { ...existing.entry, data, mtime });
    } else if (existing) {
      editor.replace(existing, existing.entry, newEntry({ path, mode, data, mtime, ino: editor.freshIno(existing), ...dev(existing.entry) }));
    } else {
      editor.ensureParents(home, t, path, dirNode.entry, now);
      editor.append(home, newEntry({ path, mode, data, mtime, ino: editor.freshIno(home), ...dev(dirNode.entry) }));
    }
  };

  for (const op of plan.ops) {
    if (op.op === 'remove') {
      const n = tree.get(op.path);
      if (n) editor.remove(n, n.entry);
    } else if (op.op === 'file') put(tree, op.path, S_IFREG | op.perm, op.data, op.mtime);
    else put(tree, op.path, S_IFLNK | 0o777, new TextEncoder().encode(op.target), op.mtime);
  }

  // Drop copies of link targets nothing points to any more (the generator would not have them).
  let after = editor.tree();
  const stillLinked = new Set<ImagePath>();
  for (const n of after.all()) if (n.kind === 'symlink') stillLinked.add(linkTargetPath(after, n) ?? '');
  for (const t of new Set(plan.formerTargets)) {
    if (t.startsWith(moduleDir + '/') || stillLinked.has(t)) continue;
    const n = after.get(t);
    if (n?.kind === 'file') {
      editor.remove(n, n.entry);
      operations.push({ op: 'remove', path: t, detail: 'no link points to it any more' });
    }
  }
  after = editor.tree();

  const tPlanned = performance.now();
  const outputs = await (opts.depmod ?? nativeDepmod(a.fs, a.root))({ tree: after, moduleDir, release: check.release });
  for (const [name, data] of outputs) {
    const path = joinImage(moduleDir, name);
    const existing = after.get(path);
    if (existing?.kind === 'file' && bytesEqual(existing.content.data, data)) continue;
    put(after, path, S_IFREG | (existing ? existing.entry.mode & 0o7777 : 0o644), data, now);
    operations.push({ op: 'write', path, detail: 'regenerated by depmod' });
  }

  const levels = DEFAULT_LEVELS[check.style] ?? {};
  const t1 = performance.now();
  const { bytes, segments, known } = await editor.write((f) => opts.level ?? levels[f]);
  const touched = editor.touchedSegments();
  const imageHost = a.imageFile!;
  const t2 = performance.now();
  await replaceFile(a.fs, imageHost, bytes, {
    verify: async (written) => {
      // Parsing skips NULs after the last segment, so only a byte comparison sees any added there.
      if (!bytesEqual(written, bytes)) throw new KabiError('INITRAMFS_FORMAT', 'the rewritten image read back differs from what was written; the original is untouched', { file: imageHost });
      await verifyRewrite(written, segments, touched, image.bytes, imageHost, known);
    },
  });
  if (opts.timings) {
    opts.timings.plan = (opts.timings.plan ?? 0) + (tPlanned - t0);
    opts.timings.depmod += t1 - tPlanned;
    opts.timings.compress += t2 - t1;
    opts.timings.write += performance.now() - t2;
  }
  return {
    ...base,
    updated: true,
    operations,
    bytesAfter: bytes.length,
    segmentsRewritten: [...touched].sort((x, y) => x - y).map((i) => {
      const blocks = editor.blocks.get(i);
      return { index: i, compression: segments[i]!.compression, ...(blocks ? { blocks } : {}) };
    }),
  };
}

function dev(e: CpioEntry): { devmajor: number; devminor: number } {
  return { devmajor: e.devmajor, devminor: e.devminor };
}

function describe(op: PlannedOp): UpdateOperation {
  if (op.op === 'remove') return { op: 'remove', path: op.path, detail: op.reason };
  if (op.op === 'link') return { op: 'link', path: op.path, detail: `-> ${op.target} (${op.reason})` };
  return { op: 'write', path: op.path, detail: op.reason };
}

/**
 * The file on disk must parse to exactly what was meant: same segments in the same formats,
 * untouched segments byte-identical to the original, touched ones holding the edited members.
 */
export async function verifyRewrite(
  written: Uint8Array,
  expected: readonly ImageSegment[],
  touched: ReadonlySet<number>,
  original: Uint8Array,
  file: string,
  known?: ReadImageOptions['known'],
): Promise<void> {
  const bad = (why: string) => new KabiError('INITRAMFS_FORMAT', `the rewritten image failed verification (${why}); the original is untouched`, { file });
  const got = await parseImage(written, { file, known });
  if (got.segments.length !== expected.length) throw bad(`${got.segments.length} segments instead of ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const g = got.segments[i]!;
    if (g.compression !== e.compression) throw bad(`${segmentLabel(g)} should be ${e.compression ?? 'uncompressed'}`);
    if (!touched.has(i)) {
      if (!bytesEqual(written.subarray(g.offset, g.end), original.subarray(e.offset, e.end))) throw bad(`${segmentLabel(g)} changed`);
      continue;
    }
    const ge = g.stream.archives.flatMap((a) => a.entries);
    const ee = e.stream.archives.flatMap((a) => a.entries);
    if (ge.length !== ee.length) throw bad(`${segmentLabel(g)} holds ${ge.length} members instead of ${ee.length}`);
    for (let k = 0; k < ee.length; k++) {
      const x = ge[k]!;
      const y = ee[k]!;
      if (x.name !== y.name || x.mode !== y.mode || !bytesEqual(x.data, y.data)) throw bad(`member ${k} of ${segmentLabel(g)} (${y.name}) differs`);
    }
  }
}
