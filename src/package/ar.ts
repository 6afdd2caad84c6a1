import { KabiError } from '../errors.js';
import type { ByteSource } from './byte-source.js';

/*
 * The ar container of a .deb (deb(5)): "!<arch>\n", then members, each a 60-byte ASCII
 * header (name 16, mtime 12, uid 6, gid 6, mode 8, size 10, "`\n") followed by the data,
 * padded to an even offset. dpkg writes plain names and accepts a GNU-style trailing '/'.
 */

export const AR_MAGIC = '!<arch>\n';
const HEADER = 60;
/** A .deb has three members, plus any number of '_'-prefixed extension members. */
const MAX_MEMBERS = 64;

export interface ArMember {
  readonly name: string;
  /** Offset of the member's data in the file. */
  readonly offset: number;
  readonly size: number;
}

const ascii = new TextDecoder('latin1');

export async function readArMembers(src: ByteSource): Promise<ArMember[]> {
  const magic = ascii.decode(await src.read(0, AR_MAGIC.length, 'ar magic'));
  if (magic !== AR_MAGIC) throw new KabiError('PACKAGE_FORMAT', 'not an ar archive (a .deb starts with "!<arch>")', { file: src.file, offset: 0 });
  const members: ArMember[] = [];
  let at = AR_MAGIC.length;
  while (at < src.size) {
    // dpkg tolerates nothing after the last member but the even-offset padding.
    if (src.size - at === 1) break;
    if (members.length >= MAX_MEMBERS) throw new KabiError('PACKAGE_FORMAT', `more than ${MAX_MEMBERS} ar members`, { file: src.file, offset: at });
    const h = ascii.decode(await src.read(at, HEADER, 'ar member header'));
    if (h.slice(58, 60) !== '`\n') throw new KabiError('PACKAGE_FORMAT', 'bad ar member header (no "`\\n" terminator)', { file: src.file, offset: at });
    const name = h.slice(0, 16).trimEnd().replace(/\/$/, '');
    const sizeText = h.slice(48, 58).trimEnd();
    if (!/^\d+$/.test(sizeText)) throw new KabiError('PACKAGE_FORMAT', `bad ar member size "${sizeText}"`, { file: src.file, offset: at + 48 });
    const size = Number(sizeText);
    const offset = at + HEADER;
    if (offset + size > src.size) {
      throw new KabiError('PACKAGE_FORMAT', `ar member ${name} is ${size} bytes but the file ends ${src.size - offset} bytes after its header`, { file: src.file, offset: at });
    }
    members.push({ name, offset, size });
    at = offset + size + (size % 2);
  }
  return members;
}
