import { checkLevel, compress, type Compression } from '../../native-bindings/index.js';
import { spliceLz4Legacy } from '../../native-bindings/lz4-splice.js';
import { spliceXzStream } from '../../native-bindings/xz-splice.js';
import { KabiError } from '../errors.js';
import { ancestorsOf, type ImagePath } from './archive-path.js';
import { kindOf, memberShifts, newEntry, S_IFDIR, withEntries, writeCpioArchive, writeCpioStream, type CpioArchive, type CpioEntry } from './cpio.js';
import type { ImageSegment, InitramfsImage } from './image.js';
import { ImageTree } from './image-tree.js';

/*
 * Edits to an image's archives, kept as new entry lists beside the parsed image (which is
 * never modified), then written out: untouched segments are copied byte for byte from the
 * original, touched ones re-serialised and recompressed in their own format.
 */

export interface ArchiveRef {
  readonly segment: number;
  readonly archive: number;
}

export class ImageEditor {
  private readonly lists = new Map<string, CpioEntry[]>();
  private readonly nextIno = new Map<string, number>();
  /** Directories appended but not yet visible in any tree view. */
  private readonly pendingDirs = new Set<ImagePath>();
  constructor(readonly image: InitramfsImage) {}

  private key(ref: ArchiveRef): string {
    return `${ref.segment}/${ref.archive}`;
  }

  private archiveOf(ref: ArchiveRef): CpioArchive {
    const a = this.image.segments[ref.segment]?.stream.archives[ref.archive];
    if (!a) throw new KabiError('INITRAMFS_FORMAT', `no archive ${ref.archive} in segment ${ref.segment}`, { file: this.image.file });
    return a;
  }

  /** The (possibly edited) entry list of one archive; editing it marks the segment as touched. */
  private list(ref: ArchiveRef): CpioEntry[] {
    const k = this.key(ref);
    let l = this.lists.get(k);
    if (!l) this.lists.set(k, (l = [...this.archiveOf(ref).entries]));
    return l;
  }

  private indexOf(ref: ArchiveRef, entry: CpioEntry): number {
    const l = this.list(ref);
    const i = l.lastIndexOf(entry);
    if (i < 0) throw new Error(`internal: entry ${entry.name} is not in archive ${this.key(ref)}`);
    return i;
  }

  replace(ref: ArchiveRef, old: CpioEntry, next: CpioEntry): void {
    refuseHardLink(old, this.image.file);
    const l = this.list(ref);
    l[this.indexOf(ref, old)] = next;
  }

  remove(ref: ArchiveRef, old: CpioEntry): void {
    refuseHardLink(old, this.image.file);
    const l = this.list(ref);
    l.splice(this.indexOf(ref, old), 1);
  }

  append(ref: ArchiveRef, entry: CpioEntry): void {
    this.list(ref).push(entry);
  }

  /** An inode number no other member of the archive uses (hard links are keyed on it). */
  freshIno(ref: ArchiveRef): number {
    const k = this.key(ref);
    let n = this.nextIno.get(k);
    if (n === undefined) {
      n = 0;
      for (const e of this.list(ref)) n = Math.max(n, e.ino);
      n += 1;
    }
    this.nextIno.set(k, n + 1);
    return n;
  }

  /**
   * Add directory members for every missing ancestor of `path`, in the archive at `ref`, the
   * way the generators list them (parents before children). `tree` is the current view.
   */
  ensureParents(ref: ArchiveRef, tree: ImageTree, path: ImagePath, template: CpioEntry, mtime: number): void {
    for (const dir of ancestorsOf(path)) {
      if (tree.isDir(dir) || this.pendingDirs.has(dir)) continue;
      if (tree.get(dir) !== undefined) throw new KabiError('INITRAMFS_FORMAT', `${dir} exists in the image but is not a directory`, { file: this.image.file });
      this.append(ref, newEntry({ path: dir, mode: S_IFDIR | 0o755, mtime, ino: this.freshIno(ref), devmajor: template.devmajor, devminor: template.devminor }));
      this.pendingDirs.add(dir);
    }
  }

  touchedSegments(): Set<number> {
    return new Set([...this.lists.keys()].map((k) => Number(k.split('/')[0])));
  }

  /** The segments with edits applied (streams only; offsets are the original ones). */
  editedSegments(): ImageSegment[] {
    return this.image.segments.map((s) => {
      const archives = s.stream.archives.map((a, i) => {
        const l = this.lists.get(`${s.index}/${i}`);
        return l ? withEntries(a, l) : a;
      });
      return { ...s, stream: { ...s.stream, archives } };
    });
  }

  /** A view of the edited image. */
  tree(): ImageTree {
    return new ImageTree({ segments: this.editedSegments() });
  }

  /** Serialise: original bytes for untouched segments and gaps, new bytes for touched ones. */
  async write(levelFor: (format: Compression) => number | undefined): Promise<{ bytes: Uint8Array; segments: ImageSegment[]; known: Map<number, { compressed: Uint8Array; data: Uint8Array }> }> {
    const touched = this.touchedSegments();
    const edited = this.editedSegments();
    const parts: Uint8Array[] = [];
    const known = new Map<number, { compressed: Uint8Array; data: Uint8Array }>();
    let out = 0;
    const add = (p: Uint8Array) => {
      parts.push(p);
      out += p.length;
    };
    let at = 0;
    for (const s of edited) {
      add(this.image.bytes.subarray(at, s.offset));
      if (!touched.has(s.index)) {
        add(this.image.bytes.subarray(s.offset, s.end));
      } else if (s.compression === undefined) {
        add(writeCpioArchive(s.stream.archives[0]!));
      } else {
        const r = await this.recompress(s, levelFor(s.compression));
        if (r.verified) known.set(out, { compressed: r.bytes, data: r.data });
        add(r.bytes);
      }
      at = s.end;
    }
    parts.push(this.image.bytes.subarray(at));
    const total = parts.reduce((n, p) => n + p.length, 0);
    const bytes = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      bytes.set(p, o);
      o += p.length;
    }
    return { bytes, segments: edited, known };
  }

  /** By segment index: xz blocks or lz4 chunks copied as they were, and ones encoded anew. */
  readonly blocks = new Map<number, { kept: number; encoded: number }>();

  /**
   * A touched segment in its own format; an xz stream or legacy lz4 keeps the blocks whose
   * content did not change. `verified`: the bytes are known to decode to `data` (a splice
   * decodes back what it encodes and copies the rest).
   */
  private async recompress(s: ImageSegment, level: number | undefined): Promise<{ bytes: Uint8Array; data: Uint8Array; verified: boolean }> {
    const data = writeCpioStream(s.stream);
    const original = this.image.segments[s.index]!;
    const format = s.compression!;
    const opts = { file: this.image.file, ...(level === undefined ? {} : { level }) };
    const splice = format === 'xz' ? spliceXzStream : format === 'lz4' ? spliceLz4Legacy : undefined;
    if (splice !== undefined && original.decoded !== undefined) {
      checkLevel(format, level, opts);
      const where = { file: this.image.file, base: s.offset };
      const spliced = await splice(this.image.bytes.subarray(s.offset, s.end), original.decoded, data, memberShifts(s.stream), level, where);
      if (spliced) {
        this.blocks.set(s.index, { kept: spliced.kept, encoded: spliced.encoded });
        return { bytes: spliced.bytes, data, verified: true };
      }
    }
    return { bytes: await compress(data, format, opts), data, verified: false };
  }
}

/** Replacing one name of a hard-link group would silently change or orphan the others. */
function refuseHardLink(e: CpioEntry, file: string | undefined): void {
  if (e.nlink >= 2 && kindOf(e.mode) === 'file') {
    throw new KabiError('INITRAMFS_FORMAT', `${e.name} is hard-linked inside the image; kabi does not split hard links (run the generator instead)`, {
      file,
      offset: e.offset,
    });
  }
}
