import { KabiError } from '../src/errors.js';
import { findTool, runTool } from './cli.js';
import type { Compression, Where } from './common.js';

/*
 * bzip2, lzma and lzo appear only in old or unusual initramfs images, so they go through the
 * programs (no JS dependency for formats nobody ships modules in). None of these formats can be
 * delimited without decoding it, so an initramfs segment in one of them is "the rest of the
 * image", which is also what every real image looks like: these segments come last.
 */

export type CliFormat = 'bzip2' | 'lzma' | 'lzo';

interface Tool {
  program: string;
  args: string[];
}

/**
 * xz reads .lzma itself; `lzma` may be xz-utils' link or the LZMA SDK program (Debian's `lzma`
 * package), which has levels 1-9 only and no --single-stream but ignores trailing zeros anyway.
 */
function lzmaTool(args: string[], xzOnly: string[] = []): Tool | undefined {
  if (findTool('xz')) return { program: 'xz', args: ['--format=lzma', ...args, ...xzOnly] };
  if (findTool('lzma')) return { program: 'lzma', args: args.map((a) => (a === '-0' ? '-1' : a)) };
  return undefined;
}

function decodeTool(format: CliFormat, segment: boolean): Tool | undefined {
  switch (format) {
    case 'bzip2':
      return { program: 'bzip2', args: ['-dc'] };
    case 'lzma':
      // --single-stream: in an image the segment is followed by padding, which plain
      // `xz --format=lzma -d` calls corrupt data.
      return lzmaTool(['-dc'], segment ? ['--single-stream'] : []);
    case 'lzo':
      return { program: 'lzop', args: ['-dc'] };
  }
}

function missing(format: CliFormat, mode: string, where: Where): KabiError {
  const needs = format === 'lzma' ? "'xz' or 'lzma'" : format === 'bzip2' ? "'bzip2'" : "'lzop'";
  return new KabiError('UNSUPPORTED_COMPRESSION', `${format} ${mode} needs the ${needs} program, which is not installed`, { file: where.file });
}

export function cliDecompress(format: CliFormat, bytes: Uint8Array, limit: number, where: Where, segment = false): Promise<Uint8Array> {
  const tool = decodeTool(format, segment);
  if (!tool) return Promise.reject(missing(format, 'decompression', where));
  return runTool(tool.program, tool.args, bytes, {
    format,
    mode: 'decompress',
    where,
    limit,
    // lzop exits 2 (warnings only) for "ignoring trailing garbage"; in a segment that garbage
    // is the padding that follows it. bzip2 exits 0 there, and its 2 means corrupt data.
    okExitCodes: segment && format === 'lzo' ? [2] : [],
  });
}

export function cliCompress(format: CliFormat, data: Uint8Array, level: number | undefined, where: Where): Promise<Uint8Array> {
  const lvl = level === undefined ? [] : [`-${level}`];
  let tool: Tool | undefined;
  switch (format) {
    case 'bzip2':
      tool = { program: 'bzip2', args: ['-c', ...lvl] };
      break;
    case 'lzma':
      tool = lzmaTool(['-c', ...lvl]);
      break;
    case 'lzo':
      tool = { program: 'lzop', args: ['-c', ...lvl] };
      break;
  }
  if (!tool) return Promise.reject(missing(format, 'compression', where));
  return runTool(tool.program, tool.args, data, { format, mode: 'compress', where });
}

export function cliImplementations(format: CliFormat): { decompress: string; compress: string } {
  const t = decodeTool(format, false);
  const path = t ? findTool(t.program) : undefined;
  const s = t && path ? `${t.program}${t.args[0] === '--format=lzma' ? ' --format=lzma' : ''} CLI (${path})` : `unavailable (${missingName(format)} not installed)`;
  return { decompress: s, compress: s };
}

function missingName(format: CliFormat): string {
  return format === 'lzma' ? 'xz/lzma' : format === 'bzip2' ? 'bzip2' : 'lzop';
}

export function isCliFormat(f: Compression): f is CliFormat {
  return f === 'bzip2' || f === 'lzma' || f === 'lzo';
}
