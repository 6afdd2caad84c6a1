import { KabiError } from '../errors.js';
import { readArMembers, type ArMember } from './ar.js';
import type { ByteSource } from './byte-source.js';
import { decodeStream, sniffCompression, type PayloadCompression } from './decode-stream.js';
import type { Deadline, PackageLimits } from './limits.js';
import { TarReader } from './tar.js';

/*
 * A .deb (deb(5)): an ar archive of "debian-binary" (2.x), control.tar[.gz|.xz|.zst] and
 * data.tar[.gz|.xz|.zst|.bz2|.lzma], in that order; members whose names start with '_' are
 * extensions and are skipped, as by dpkg. The control archive is small and read whole: its
 * `control` names the package and `md5sums` lists every regular file the package installs,
 * which says whether a package holds a kernel without decompressing its data.
 */

export interface DebInfo {
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  /** Regular files per md5sums (system paths), or undefined when the package has no md5sums. */
  readonly listedFiles: readonly string[] | undefined;
  readonly data: ArMember;
  readonly dataCompression: PayloadCompression;
}

const EXTENSIONS: Record<string, PayloadCompression> = { '': 'none', '.gz': 'gzip', '.xz': 'xz', '.zst': 'zstd', '.bz2': 'bzip2', '.lzma': 'lzma' };

export async function readDeb(src: ByteSource, limits: PackageLimits, deadline: Deadline): Promise<DebInfo> {
  const members = (await readArMembers(src)).filter((m) => !m.name.startsWith('_'));
  const [binary, control, data] = members;
  if (binary?.name !== 'debian-binary') throw new KabiError('PACKAGE_FORMAT', 'first ar member is not debian-binary: not a .deb', { file: src.file, offset: 8 });
  const version = new TextDecoder().decode(await src.read(binary.offset, Math.min(binary.size, 16), 'debian-binary'));
  if (!/^2\.\d+\n/.test(version)) throw new KabiError('PACKAGE_FORMAT', `unsupported .deb format version "${version.trim()}"`, { file: src.file, offset: binary.offset });
  if (!control || !/^control\.tar(\.(gz|xz|zst))?$/.test(control.name)) throw new KabiError('PACKAGE_FORMAT', `second ar member is "${control?.name ?? '(none)'}", not control.tar`, { file: src.file });
  if (!data || !/^data\.tar(\.(gz|xz|zst|bz2|lzma))?$/.test(data.name)) throw new KabiError('PACKAGE_FORMAT', `third ar member is "${data?.name ?? '(none)'}", not data.tar`, { file: src.file });
  if (control.size > limits.maxMetadataBytes) throw new KabiError('PACKAGE_FORMAT', `control.tar of ${control.size} bytes is over the limit`, { file: src.file, offset: control.offset });

  const files = await readControlFiles(src, control, limits, deadline);
  const fields = parseControl(files.get('/control'), src.file);
  const md5 = files.get('/md5sums');
  const dataCompression = await memberCompression(src, data);
  return {
    name: fields.get('Package') ?? '',
    version: fields.get('Version') ?? '',
    arch: fields.get('Architecture') ?? '',
    listedFiles: md5 === undefined ? undefined : parseMd5sums(md5),
    data,
    dataCompression,
  };
}

/** The compression of a member: its name's suffix, checked against its magic. */
async function memberCompression(src: ByteSource, m: ArMember): Promise<PayloadCompression> {
  const suffix = m.name.replace(/^(control|data)\.tar/, '');
  const named = EXTENSIONS[suffix]!;
  const head = await src.read(m.offset, Math.min(m.size, 8), m.name);
  const found = sniffCompression(head);
  if (named === 'none' ? found !== undefined && found !== 'lzma' : found !== named) {
    throw new KabiError('PACKAGE_FORMAT', `${m.name} is ${found ?? 'not compressed'}, not what its name says`, { file: src.file, offset: m.offset });
  }
  return named;
}

async function readControlFiles(src: ByteSource, m: ArMember, limits: PackageLimits, deadline: Deadline): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const want = new Set(['/control', '/md5sums']);
  const label = m.name;
  const where = { file: src.file, label, base: m.offset };
  const tar = new TarReader(
    {
      entry(e) {
        if (e.type !== 'file' || !want.has(e.path)) return undefined;
        // Checked before anything is allocated: the size is only what the header claims.
        if (e.size > limits.maxMetadataBytes) throw new KabiError('PACKAGE_FORMAT', `${label}: ${e.path.slice(1)} claims ${e.size} bytes, over the ${limits.maxMetadataBytes}-byte limit`, { file: src.file, offset: m.offset });
        const buf = new Uint8Array(e.size);
        let at = 0;
        out.set(e.path, buf);
        return (chunk) => {
          buf.set(chunk, at);
          at += chunk.length;
        };
      },
    },
    where,
    limits,
  );
  const compression = await memberCompression(src, m);
  for await (const chunk of decodeStream(compression, { source: src, start: m.offset, length: m.size }, { limit: limits.maxMetadataBytes, deadline, file: src.file, label, offset: m.offset })) tar.push(chunk);
  tar.end();
  return out;
}

/** deb-control(5) fields of the one paragraph in `control` (continuation lines joined). */
export function parseControl(bytes: Uint8Array | undefined, file: string): Map<string, string> {
  if (bytes === undefined) throw new KabiError('PACKAGE_FORMAT', 'control.tar has no control file', { file });
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of new TextDecoder().decode(bytes).split('\n')) {
    if (line === '') continue;
    if (/^[ \t]/.test(line)) {
      if (last !== undefined) fields.set(last, `${fields.get(last)}\n${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon);
    fields.set(last, line.slice(colon + 1).trim());
  }
  return fields;
}

/** "<md5>  <path relative to />" lines. */
function parseMd5sums(bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (const line of new TextDecoder().decode(bytes).split('\n')) {
    const m = /^[0-9a-f]{32} [ *](.+)$/.exec(line);
    if (m) out.push('/' + m[1]!.replace(/^\.?\/+/, ''));
  }
  return out;
}
