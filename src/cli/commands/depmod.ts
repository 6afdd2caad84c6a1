import { release as hostRelease } from 'node:os';
import { posix } from 'node:path';
import { KabiError } from '../../errors.js';
import type { KabiFs } from '../../fs.js';
import { installedKmodFlavor, kmodFlavor } from '../../depmod/kmod-flavor.js';
import { replaceFilesAtomically } from '../../depmod/atomic-write.js';
import { latin1Text } from '../../depmod/c-text.js';
import type { DepmodMessage } from '../../depmod/compute.js';
import { formatDepmodMessage, runDepmod, type DepmodOptions } from '../../depmod/run.js';
import { confinedPath } from '../../kernel/paths.js';
import { readSymbolFileBytes } from '../../symvers/read-file.js';
import { parse, type Command } from '../command.js';
import { HELP_OPTION, ROOT_OPTION, rootPath } from '../options.js';
import { withProgress } from '../progress.js';
import { kabiVersion } from '../version.js';
import { depfileUpToDate, outputText, prefixMatters, withDuplicateWarnings } from './depmod-extras.js';
import { summaryOf } from '../summaries.js';

const usage =
  'Usage: kabi depmod [-aA] [-b BASEDIR | --root DIR] [-o OUTDIR] [-C CONFIG]... [-e] [-E SYMVERS] [-F SYSTEM.MAP] [-n] [-P C] [-v] [-w] [--kmod-version N] [--no-cache] [KVER]';

const options = {
  all: { type: 'boolean', short: 'a', help: 'probe all modules (the default; accepted for compatibility)' },
  quick: { type: 'boolean', short: 'A', help: 'do nothing when no module file is newer than modules.dep' },
  basedir: { type: 'string', short: 'b', arg: 'BASEDIR', complete: 'dir', help: "the module tree is BASEDIR/lib/modules/KVER, read as kmod's depmod -b reads it" },
  root: { ...ROOT_OPTION, help: 'the system installed under DIR, as it sees itself (its depmod.d, external directories and links taken inside DIR); default $KABI_ROOT when -b is not given' },
  outdir: { type: 'string', short: 'o', arg: 'OUTDIR', complete: 'dir', help: 'write the files to OUTDIR/lib/modules/KVER instead (kmod ≥ 31)' },
  config: { type: 'string', short: 'C', multiple: true, arg: 'CONFIG', complete: 'file', help: 'read depmod.d configuration from CONFIG (file or directory) instead' },
  errsyms: { type: 'boolean', short: 'e', help: 'report symbols no module or kernel provides (needs -E or -F)' },
  symvers: { type: 'string', short: 'E', arg: 'SYMVERS', complete: 'file', help: "the kernel's Module.symvers; with -e also report CRC mismatches" },
  filesyms: { type: 'string', short: 'F', arg: 'SYSTEM.MAP', complete: 'file', help: "the kernel's System.map" },
  show: { type: 'boolean', short: 'n', help: 'write the text files to standard output instead; change nothing' },
  'dry-run': { type: 'boolean', help: 'the same as -n' },
  'symbol-prefix': { type: 'string', short: 'P', arg: 'C', complete: 'none', help: "the architecture's symbol prefix character, stripped from symbol names" },
  verbose: { type: 'boolean', short: 'v', multiple: true, help: 'print each dependency found' },
  warn: { type: 'boolean', short: 'w', help: 'warn about duplicate entries of the indexes' },
  version: { type: 'boolean', short: 'V', help: 'print the version (and the kmod whose files are written) and exit' },
  'kmod-version': { type: 'string', arg: 'N', complete: 'none', help: "write the files as kmod N's depmod does (index layout, modules.weakdep) instead of the installed one's" },
  'no-cache': { type: 'boolean', help: 'neither read nor write the cache of parsed modules' },
  help: HELP_OPTION,
} as const;

const help = `${usage}

Computes modules.dep, modules.dep.bin, modules.alias(.bin), modules.symbols(.bin),
modules.softdep, modules.devname, modules.builtin.bin and modules.builtin.alias.bin for the
kernel KVER (default: the running one) and writes them all at once, byte for byte as the
installed kmod's depmod would. Options mean what they mean to depmod:

  -a          probe all modules (the default; accepted for compatibility)
  -A          quick: do nothing when no module file of the tree is newer than modules.dep
  -b BASEDIR  the module tree is BASEDIR/lib/modules/KVER, read as kmod's depmod -b reads it
  --root DIR  the system installed under DIR, as it sees itself: its depmod.d, its external
              directories and every link of its tree are taken inside DIR, as in a chroot
              (without -b or --root: $KABI_ROOT when it is set, else /)
  -o OUTDIR   write the files to OUTDIR/lib/modules/KVER (created) instead of the tree
  -C CONFIG   read depmod.d configuration from CONFIG (file or directory) instead
  -e          report symbols no module or kernel provides (needs -E or -F)
  -E SYMVERS  the kernel's Module.symvers; with -e also report CRC mismatches
  -F MAP      the kernel's System.map
  -n          write the text files to stdout instead, change nothing
  -P C        the architecture's symbol prefix (one character). kabi's depmod does not strip
              one: where it would change kmod's result, nothing is written and it says why
  -v          print each dependency found
  -w          warn about duplicate entries of the indexes (an alias listed twice)
  -V          print the version and the kmod whose files are written

As with depmod, configuration and external directories are read on this machine, not
under BASEDIR, and with -b a symbolic link in the module tree is followed on this machine
too (an absolute target names a path of this machine, as kmod's depmod -b reads it);
--root DIR reads everything inside DIR instead, as "chroot DIR depmod" would. Unlike kmod,
BASEDIR/lib/modules/KVER itself is found inside BASEDIR (a link
lib/modules/KVER -> /usr/lib/modules/KVER leads to BASEDIR/usr/lib/modules/KVER) and
nothing is ever written outside BASEDIR (or OUTDIR). --kmod-version N writes for kmod N
instead of the installed one (index layout, modules.weakdep). Parsed modules are cached in
/var/cache/kabi/depmod/KVER under BASEDIR when it has a /var/cache (--no-cache: neither
read nor write it). Long options may be abbreviated, as depmod's.

Exit status: 0 on success, 1 when depmod would fail (e.g. dependency cycles) or on a usage
error, as depmod's.
`;

/** depmod's is_version_number(): sscanf("%u.%u") succeeds. */
function isVersionNumber(v: string): boolean {
  return /^\s*[+-]?\d+\.\s*[+-]?\d/.test(v);
}

async function realpathOr(fs: KabiFs, p: string): Promise<string> {
  try {
    return await fs.realpath(p);
  } catch {
    return p;
  }
}

/** path_make_absolute_cwd(): an absolute path as given, else "<cwd>/<path>" (not normalised). */
function absolute(cwd: string, p: string): string {
  return p.startsWith('/') ? p : `${cwd}/${p}`;
}

async function textOf(fs: KabiFs, path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return latin1Text(await readSymbolFileBytes(path, fs));
  } catch {
    return undefined; // depmod reports an unreadable one itself
  }
}

export const depmodCommand: Command = {
  name: 'depmod',
  summary: summaryOf('depmod'),
  usage,
  usageStatus: 1,
  async run(argv, io) {
    const { values, positionals } = parse(argv, options, usage, { abbreviations: true });
    if (values.help) {
      io.stdout(help);
      return 0;
    }
    if (values.version) {
      const kmod = installedKmodFlavor();
      const feature = (ext: string, name: string) => `${kmod.extensions.includes(ext) ? '+' : '-'}${name}`;
      io.stdout(`kabi depmod ${kabiVersion()}: writes what kmod version ${kmod.version}'s depmod writes (${kmod.source})\n${feature('.ko.zst', 'ZSTD')} ${feature('.ko.xz', 'XZ')} ${feature('.ko.gz', 'ZLIB')}\n`);
      return 0;
    }
    const prefix = values['symbol-prefix'];
    if (prefix !== undefined && [...prefix].length !== 1) {
      io.stderr('depmod: FATAL: -P only takes a single char\n');
      return 1;
    }
    if (positionals.length > 1) throw new KabiError('USAGE', `module files cannot be given (only KVER)\n${usage}`);
    const kver = positionals[0];
    if (kver !== undefined && !isVersionNumber(kver)) {
      io.stderr(`depmod: ERROR: Bad version passed ${kver}\n`);
      return 1;
    }
    let kmod = installedKmodFlavor();
    if (values['kmod-version'] !== undefined) {
      const n = Number(values['kmod-version']);
      if (!Number.isInteger(n) || n < 1) throw new KabiError('USAGE', `--kmod-version must be a kmod release number\n${usage}`);
      kmod = { ...kmodFlavor(n), extensions: kmod.extensions };
    }
    if (values.basedir !== undefined && values.root !== undefined) throw new KabiError('USAGE', `-b and --root cannot be given together\n${usage}`);
    // Without -b, the root is the one every kabi command uses: --root, else $KABI_ROOT, else /.
    const asSystem = values.basedir === undefined;
    const given = values.basedir ?? (asSystem && rootPath(io, values.root) !== '/' ? rootPath(io, values.root) : undefined);
    const root = given === undefined ? '/' : absolute(io.cwd, given);
    const release = kver ?? hostRelease();
    const resolvedRoot = await realpathOr(io.fs, root);
    // kmod's depmod -b opens BASEDIR/… paths on the host, so its configuration, external
    // directories and the links in the tree are this machine's; --root is the installed
    // system's view of itself. Without either the tree is this machine's anyway.
    const host = asSystem ? resolvedRoot : '/';
    const messageDir = `${given === undefined ? '' : root}/lib/modules/${release}`;
    const dryRun = values.show === true || values['dry-run'] === true;
    const early: DepmodMessage[] = [];

    if (values.quick) {
      // kmod: -A with -n does nothing at all; otherwise nothing when modules.dep is current.
      if (dryRun) return 0;
      const dir = await confinedPath(io.fs, resolvedRoot, `/lib/modules/${release}`).catch(() => undefined);
      if (dir !== undefined && (await depfileUpToDate(io.fs, dir, messageDir, kmod.extensions, host, early))) {
        for (const m of early) io.stderr(formatDepmodMessage(m));
        return 0;
      }
    }

    const symversPath = values.symvers === undefined ? undefined : absolute(io.cwd, values.symvers);
    const mapPath = values.filesyms === undefined ? undefined : absolute(io.cwd, values.filesyms);
    const outdir = values.outdir === undefined ? undefined : absolute(io.cwd, values.outdir);
    const opts: DepmodOptions = {
      // The root's own path resolved once: links in the tree, followed on the host, then
      // spell its directories the same way (which is how a link loop is recognised).
      root: resolvedRoot,
      release,
      fs: io.fs,
      configRoot: host,
      externalRoot: host,
      linkRoot: host,
      ...(values.config ? { configPaths: values.config.map((c) => absolute(io.cwd, c)) } : {}),
      errsyms: values.errsyms === true,
      ...(symversPath !== undefined ? { symvers: { path: symversPath, name: values.symvers! } } : {}),
      ...(mapPath !== undefined ? { systemMap: { path: mapPath, name: values.filesyms! } } : {}),
      verbose: (values.verbose?.length ?? 0) > 0,
      dryRun,
      kmod,
      cache: values['no-cache'] !== true,
      messageDir,
    };
    // Written here rather than by the run: elsewhere (-o), or only once the prefix is known not to matter (-P).
    const deferWrite = !dryRun && (outdir !== undefined || prefix !== undefined);
    const result = await withProgress(io, 'kabi depmod', `${release}: reading the module tree`, () => runDepmod({ ...opts, ...(deferWrite ? { write: false } : {}) }));
    let messages = [...early, ...result.messages];
    if (values.warn) messages = withDuplicateWarnings(messages, outputText(result.files, 'modules.alias'));
    if (result.status === 0 && prefix !== undefined) {
      const why = prefixMatters(prefix, outputText(result.files, 'modules.symbols'), await textOf(io.fs, symversPath), symversPath === undefined ? await textOf(io.fs, mapPath) : undefined);
      if (why !== undefined) {
        for (const m of messages) io.stderr(formatDepmodMessage(m));
        io.stderr(`depmod: FATAL: -P ${prefix}: ${why}, and kabi's depmod does not strip symbol prefixes (no Linux architecture has had one since 4.17); nothing was written: use kmod's depmod\n`);
        return 1;
      }
    }
    if (result.status === 0 && deferWrite) {
      const files = result.files.map((f) => ({ name: f.name, data: f.data }));
      if (outdir === undefined) await runDepmod(opts); // the prefix changes nothing: a normal run, cache and all
      else {
        const dir = posix.join(outdir, 'lib/modules', release);
        try {
          await io.fs.mkdir(dir, { recursive: true, mode: 0o755 });
        } catch (e) {
          io.stderr(`depmod: FATAL: could not create directory ${dir}: ${(e as Error).message}\n`);
          return 1;
        }
        await replaceFilesAtomically(io.fs, dir, files);
      }
    }
    io.stdout(result.stdout);
    for (const m of messages) io.stderr(formatDepmodMessage(m));
    return result.status;
  },
};
