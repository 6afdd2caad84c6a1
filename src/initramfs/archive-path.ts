import { posix } from 'node:path';
import { KabiError } from '../errors.js';

/**
 * Paths inside an image, always in one spelling: relative to the image root, '/'-separated,
 * no '.', no empty components, '' for the root itself. Such a path joined to any extraction
 * directory stays inside it, which is the whole point: nothing read from an archive can name a
 * place outside the directory kabi unpacks into.
 */
export type ImagePath = string;

export interface NameContext {
  file?: string | undefined;
  offset?: number | undefined;
}

/**
 * The normalised path of an archive member name. GNU cpio and dracut write "usr/lib/…",
 * initramfs-tools writes "." and "usr/…", some tools "./usr/…": all the same path. A '..'
 * component or an absolute name is refused: the kernel would confine them to rootfs, but
 * no generator writes them, so in an image they mean a crafted archive.
 */
export function normaliseName(name: string, ctx: NameContext = {}): ImagePath {
  if (name.includes('\0')) throw unsafe(`member name contains a NUL byte`, ctx);
  if (name.startsWith('/')) throw unsafe(`member name "${shown(name)}" is an absolute path`, ctx);
  const parts: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw unsafe(`member name "${shown(name)}" contains '..'`, ctx);
    parts.push(c);
  }
  return parts.join('/');
}

/** Parent of a normalised path ('' for top-level names and for the root). */
export function parentOf(p: ImagePath): ImagePath {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

export function baseOf(p: ImagePath): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

export function joinImage(a: ImagePath, b: string): ImagePath {
  if (a === '') return b;
  if (b === '') return a;
  return `${a}/${b}`;
}

/** Every ancestor of `p`, outermost first, not including '' or `p` itself. */
export function ancestorsOf(p: ImagePath): ImagePath[] {
  const parts = p.split('/');
  const out: ImagePath[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

/** A symlink target that reaches `target` from a link at `link` (both image paths), as dracut and mkinitramfs store them. */
export function relativeLinkTarget(link: ImagePath, target: ImagePath): string {
  const rel = posix.relative(posix.join('/', parentOf(link)), posix.join('/', target));
  return rel === '' ? '.' : rel;
}

function shown(name: string): string {
  return name.length > 120 ? `${name.slice(0, 117)}...` : name;
}

function unsafe(detail: string, ctx: NameContext): KabiError {
  return new KabiError('UNSAFE_PATH', detail, { file: ctx.file, offset: ctx.offset });
}
