import { release as hostRelease } from 'node:os';
import { KabiError } from '../../errors.js';
import type { KabiFs } from '../../fs.js';
import { installedKmodFlavor, kmodFlavor } from '../../depmod/kmod-flavor.js';
import { formatDepmodMessage, runDepmod } from '../../depmod/run.js';
import { parse, type Command } from '../command.js';

const usage = 'Usage: kabi depmod [-a] [-b BASEDIR | --root DIR] [-C CONFIG]... [-e] [-E SYMVERS] [-F SYSTEM.MAP] [-n] [-v] [--kmod-version N] [--no-cache] [KVER]';

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

export const depmodCommand: Command = {
  name: 'depmod',
  summary: 'write modules.dep and the module indexes, as kmod’s depmod does',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(
      argv,
      {
        all: { type: 'boolean', short: 'a' },
        basedir: { type: 'string', short: 'b' },
        root: { type: 'string' },
        config: { type: 'string', short: 'C', multiple: true },
        errsyms: { type: 'boolean', short: 'e' },
        symvers: { type: 'string', short: 'E' },
        filesyms: { type: 'string', short: 'F' },
        show: { type: 'boolean', short: 'n' },
        'dry-run': { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v', multiple: true },
        'kmod-version': { type: 'string' },
        'no-cache': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      usage,
    );
    if (values.help) {
      io.stdout(`${usage}

Computes modules.dep, modules.dep.bin, modules.alias(.bin), modules.symbols(.bin),
modules.softdep, modules.devname, modules.builtin.bin and modules.builtin.alias.bin for the
kernel KVER (default: the running one) and writes them all at once, byte for byte as the
installed kmod's depmod would. Options mean what they mean to depmod:

  -a          probe all modules (the default; accepted for compatibility)
  -b BASEDIR  the module tree is BASEDIR/lib/modules/KVER, read as kmod's depmod -b reads it
  --root DIR  the system installed under DIR, as it sees itself: its depmod.d, its external
              directories and every link of its tree are taken inside DIR, as in a chroot
  -C CONFIG   read depmod.d configuration from CONFIG (file or directory) instead
  -e          report symbols no module or kernel provides (needs -E or -F)
  -E SYMVERS  the kernel's Module.symvers; with -e also report CRC mismatches
  -F MAP      the kernel's System.map
  -n          write the text files to stdout instead, change nothing
  -v          print each dependency found

As with depmod, configuration and external directories are read on this machine, not
under BASEDIR, and with -b a symbolic link in the module tree is followed on this machine
too (an absolute target names a path of this machine, as kmod's depmod -b reads it);
--root DIR reads everything inside DIR instead, as "chroot DIR depmod" would. Unlike kmod,
BASEDIR/lib/modules/KVER itself is found inside BASEDIR (a link
lib/modules/KVER -> /usr/lib/modules/KVER leads to BASEDIR/usr/lib/modules/KVER) and
nothing is ever written outside BASEDIR. --kmod-version N writes for kmod N instead of the
installed one (index layout, modules.weakdep). Parsed modules are cached in
/var/cache/kabi/depmod/KVER under BASEDIR when it has a /var/cache (--no-cache: neither
read nor write it).

Exit status: 0 on success, 1 when depmod would fail (e.g. dependency cycles).
`);
      return 0;
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
    const given = values.root ?? values.basedir;
    const root = given === undefined ? '/' : absolute(io.cwd, given);
    const release = kver ?? hostRelease();
    const resolvedRoot = await realpathOr(io.fs, root);
    // kmod's depmod -b opens BASEDIR/… paths on the host, so its configuration, external
    // directories and the links in the tree are this machine's; --root is the installed
    // system's view of itself. Without either the tree is this machine's anyway.
    const host = values.root === undefined ? '/' : resolvedRoot;
    const result = await runDepmod({
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
      ...(values.symvers !== undefined ? { symvers: { path: absolute(io.cwd, values.symvers), name: values.symvers } } : {}),
      ...(values.filesyms !== undefined ? { systemMap: { path: absolute(io.cwd, values.filesyms), name: values.filesyms } } : {}),
      verbose: (values.verbose?.length ?? 0) > 0,
      dryRun: values.show === true || values['dry-run'] === true,
      kmod,
      cache: values['no-cache'] !== true,
      messageDir: `${given === undefined ? '' : root}/lib/modules/${release}`,
    });
    io.stdout(result.stdout);
    for (const m of result.messages) io.stderr(formatDepmodMessage(m));
    return result.status;
  },
};
