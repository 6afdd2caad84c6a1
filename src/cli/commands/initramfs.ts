import { resolve } from 'node:path';
import { KabiError } from '../../errors.js';
import { systemPathOf } from '../../kernel/paths.js';
import type { Runner } from '../../util/run.js';
import { kindOf, modeString, type CpioEntry } from '../../initramfs/cpio.js';
import type { DepmodRunner } from '../../initramfs/depmod-refresh.js';
import { flushDeferred, type FlushOutcome } from '../../initramfs/deferred.js';
import { isGeneratorName, regenerateWithGenerator, type GeneratorName, type RegenerateResult } from '../../initramfs/generators.js';
import { readImageFile, segmentLabel, type InitramfsImage } from '../../initramfs/image.js';
import { imageNeedsUpdate, type ImageCheck } from '../../initramfs/check.js';
import { refreshInitramfs, type RefreshResult, type RefreshStrategy } from '../../initramfs/refresh.js';
import { parse, EXIT_ERROR, type Command } from '../command.js';
import { ROOT_OPTION, systemRoot } from '../options.js';
import type { CliIo } from '../io.js';
import { summaryOf } from '../summaries.js';

const usage = `Usage: kabi initramfs ls [--json | --names] IMAGE
       kabi initramfs check [--root DIR] [--module PATH]... [--json] KERNEL
       kabi initramfs update [--root DIR] [--module PATH]... [--strategy native|auto|generator|defer]
                             [--generator NAME] [--level N] [--dry-run] [--json] KERNEL
       kabi initramfs regenerate [--root DIR] [--generator NAME] [--dry-run] [--json] KERNEL
       kabi initramfs flush [--root DIR] [--strategy auto|native|generator] [--generator NAME] [--dry-run] [--json]`;

const help = `${usage}

ls          List an image's segments (offset, compression, entry count) and members, like
            lsinitrd/lsinitramfs. --names prints only member names, one per line, exactly as
            lsinitramfs does.
check       Would KERNEL's initramfs generator, run now on the installed tree under --root
            (default /), put anything into the image other than what it holds? Modules the
            image holds are compared with the installed files; a module it lacks is judged by
            the generator's own rules read from its configuration (dracut: dracut.conf(.d),
            hostonly, add_drivers/force_drivers/omit_drivers/filesystems and each dracut
            module's installkernel(); initramfs-tools: MODULES, the modules files and hooks;
            mkinitcpio: MODULES, HOOKS, autodetect), and reported as "would include X but the
            image lacks it". --module limits the question to these changed module files;
            without it, every module changed since the image was written is asked about.
            Exit status: 0 current (or no image), 1 needs an update, 2 error.
update      Bring the image to what its generator would make. native: kabi rewrites it in
            place (modules with their dependencies, soft dependencies and firmware, stored as
            the generator stores them; modules.dep and friends; other segments kept byte for
            byte; verified before it replaces the old image; no copy is kept). auto (default):
            native when kabi can produce the generator's result, else the generator.
            generator: run it (--generator dracut|initramfs-tools|mkinitcpio|kernel-install,
            default: the one that built the image). defer: record KERNEL and the changed
            modules for a later \`flush\`. Nothing is done when the image is current; --dry-run
            prints what would be done and why, and writes and runs nothing.
regenerate  Run the generator for KERNEL unconditionally.
flush       Refresh every kernel recorded by \`update --strategy defer\`, each once (RPM %posttrans).
`;

export interface InitramfsCommandDeps {
  /** Runs generators (tests pass a recording stub). */
  runner?: Runner;
  depmod?: DepmodRunner;
}

export function makeInitramfsCommand(deps: InitramfsCommandDeps = {}): Command {
  return {
    name: 'initramfs',
    summary: summaryOf('initramfs'),
    usage,
    async run(argv, io) {
      const [sub, ...rest] = argv;
      switch (sub) {
        case undefined:
          throw new KabiError('USAGE', `no subcommand given\n${usage}`);
        case '-h':
        case '--help':
        case 'help':
          io.stdout(help);
          return 0;
        case 'ls':
          return runLs(rest, io);
        case 'check':
          return runCheck(rest, io);
        case 'update':
          return runUpdate(rest, io, deps);
        case 'regenerate':
          return runRegenerate(rest, io, deps);
        case 'flush':
          return runFlush(rest, io, deps);
        default:
          throw new KabiError('USAGE', `unknown subcommand '${sub}'\n${usage}`);
      }
    },
  };
}

export const initramfsCommand: Command = makeInitramfsCommand();

function one(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new KabiError('USAGE', `expected exactly one ${what}\n${usage}`);
  return positionals[0]!;
}

function generatorOption(v: string | undefined): GeneratorName | undefined {
  if (v === undefined) return undefined;
  if (!isGeneratorName(v)) throw new KabiError('USAGE', `--generator must be dracut, initramfs-tools, mkinitcpio or kernel-install, not '${v}'`);
  return v;
}

/** --module takes system paths; a host path under --root is accepted and translated. */
function modulePaths(values: string[] | undefined, root: string, cwd: string): string[] | undefined {
  if (!values) return undefined;
  return values.map((p) => {
    if (root !== '/' && p.startsWith('/')) {
      const sys = systemPathOf(root, resolve(cwd, p));
      if (sys !== undefined && sys !== '/') return sys;
    }
    if (!p.startsWith('/')) throw new KabiError('USAGE', `--module wants an absolute path, got '${p}'`);
    return p;
  });
}

// ---- ls ----------------------------------------------------------------------------------------

async function runLs(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, names: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, usage);
  if (values.help) {
    io.stdout(help);
    return 0;
  }
  const file = resolve(io.cwd, one(positionals, 'IMAGE'));
  const image = await readImageFile(io.fs, file);
  if (values.json) io.stdout(JSON.stringify(lsJson(image), null, 2) + '\n');
  else if (values.names) io.stdout(image.segments.flatMap((s) => s.stream.archives.flatMap((a) => a.entries.map((e) => e.name + '\n'))).join(''));
  else io.stdout(lsText(image));
  return 0;
}

function target(e: CpioEntry): string | undefined {
  return kindOf(e.mode) === 'symlink' ? new TextDecoder().decode(e.data) : undefined;
}

export function lsJson(image: InitramfsImage) {
  return {
    file: image.file,
    size: image.bytes.length,
    segments: image.segments.map((s) => ({
      index: s.index,
      offset: s.offset,
      end: s.end,
      compression: s.compression ?? 'none',
      archives: s.stream.archives.length,
      entries: s.stream.archives.reduce((n, a) => n + a.entries.length, 0),
      decodedSize: s.decodedSize,
    })),
    entries: image.segments.flatMap((s) =>
      s.stream.archives.flatMap((a) =>
        a.entries.map((e) => ({
          segment: s.index,
          name: e.name,
          path: e.path,
          kind: kindOf(e.mode),
          mode: e.mode,
          permissions: modeString(e.mode),
          uid: e.uid,
          gid: e.gid,
          nlink: e.nlink,
          size: e.data.length,
          mtime: e.mtime,
          ...(target(e) !== undefined ? { target: target(e) } : {}),
        })),
      ),
    ),
  };
}

function lsText(image: InitramfsImage): string {
  let out = `${image.file}: ${image.bytes.length} bytes, ${image.segments.length} segment${image.segments.length === 1 ? '' : 's'}\n`;
  for (const s of image.segments) {
    const n = s.stream.archives.reduce((k, a) => k + a.entries.length, 0);
    out += `\n${segmentLabel(s)}: ${n} entries, ${s.decodedSize} bytes of cpio${s.stream.archives.length > 1 ? ` in ${s.stream.archives.length} archives` : ''}\n`;
    for (const a of s.stream.archives) {
      for (const e of a.entries) {
        const t = target(e);
        const date = new Date(e.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
        out += `${modeString(e.mode)} ${String(e.nlink).padStart(3)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${String(e.data.length).padStart(10)} ${date} ${e.name}${t !== undefined ? ` -> ${t}` : ''}\n`;
      }
    }
  }
  return out;
}

// ---- check -------------------------------------------------------------------------------------

async function runCheck(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { root: ROOT_OPTION, module: { type: 'string', multiple: true }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    usage,
  );
  if (values.help) {
    io.stdout(help);
    return 0;
  }
  const root = await systemRoot(io, values.root);
  const release = one(positionals, 'KERNEL');
  const changed = modulePaths(values.module, root, io.cwd);
  const check = await imageNeedsUpdate({ root, fs: io.fs, release, ...(changed ? { changedModules: changed } : {}) });
  if (values.json) io.stdout(JSON.stringify(checkJson(check), null, 2) + '\n');
  else io.stdout(checkText(check));
  return check.needsUpdate ? 1 : 0;
}

function checkJson(c: ImageCheck) {
  return {
    release: c.release,
    image: c.image,
    exists: c.exists,
    style: c.style,
    generator: c.generator,
    moduleDir: c.moduleDir ?? null,
    needsUpdate: c.needsUpdate,
    nativePossible: c.nativePossible,
    changes: c.changes.map((x) => ({ kind: x.kind, name: x.name, imagePath: x.imagePath ?? null, installed: x.installed?.path ?? null, detail: x.detail })),
    notes: c.notes,
  };
}

function checkText(c: ImageCheck): string {
  let out: string;
  if (!c.exists && !c.needsUpdate) out = `${c.release}: no initramfs at ${c.image}; nothing to update\n`;
  else if (!c.needsUpdate) out = `${c.release}: ${c.image} is what ${c.generator} would make for the installed modules\n`;
  else {
    out = `${c.release}: ${c.image} needs an update (${c.generator}; ${c.nativePossible ? 'kabi can rewrite it' : 'the generator has to rebuild it'}):\n`;
    for (const x of c.changes) out += `  ${x.kind.padEnd(9)} ${x.detail}\n`;
  }
  for (const n of c.notes) out += `  note: ${n}\n`;
  return out;
}

// ---- update / regenerate / flush ---------------------------------------------------------------

const STRATEGIES = ['native', 'auto', 'generator', 'defer'] as const;

async function runUpdate(argv: string[], io: CliIo, deps: InitramfsCommandDeps): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      root: ROOT_OPTION,
      module: { type: 'string', multiple: true },
      strategy: { type: 'string' },
      generator: { type: 'string' },
      level: { type: 'string' },
      'no-backup': { type: 'boolean' },
      'dry-run': { type: 'boolean', short: 'n' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    usage,
  );
  if (values.help) {
    io.stdout(help);
    return 0;
  }
  const root = await systemRoot(io, values.root);
  const release = one(positionals, 'KERNEL');
  const generator = generatorOption(values.generator);
  const strategy = (values.strategy ?? (generator ? 'generator' : 'auto')) as RefreshStrategy;
  if (!(STRATEGIES as readonly string[]).includes(strategy)) throw new KabiError('USAGE', `--strategy must be one of ${STRATEGIES.join(', ')}`);
  const level = values.level === undefined ? undefined : Number(values.level);
  if (level !== undefined && !Number.isInteger(level)) throw new KabiError('USAGE', `--level must be an integer, got '${values.level}'`);
  const changed = modulePaths(values.module, root, io.cwd);
  const r = await refreshInitramfs({
    root,
    fs: io.fs,
    release,
    strategy,
    dryRun: values['dry-run'] === true,
    env: io.env,
    ...(changed ? { changedModules: changed } : {}),
    ...(generator ? { generator } : {}),
    ...(level !== undefined ? { level } : {}),
    ...(deps.runner ? { runner: deps.runner } : {}),
    ...(deps.depmod ? { depmod: deps.depmod } : {}),
  });
  if (values.json) io.stdout(JSON.stringify(refreshJson(r), null, 2) + '\n');
  else io.stdout(refreshText(r));
  return 0;
}

function refreshJson(r: RefreshResult) {
  return {
    release: r.release,
    action: r.action,
    dryRun: r.dryRun,
    reasons: r.reasons,
    cleaned: r.cleaned,
    check: checkJson(r.check),
    update: r.update
      ? {
          updated: r.update.updated,
          operations: r.update.operations,
          bytesBefore: r.update.bytesBefore,
          bytesAfter: r.update.bytesAfter,
          segmentsRewritten: r.update.segmentsRewritten.map((s) => ({ index: s.index, compression: s.compression ?? 'none', ...(s.blocks ? { blocks: s.blocks } : {}) })),
        }
      : null,
    regenerate: r.regenerate ? regenerateJson(r.regenerate) : null,
    notes: r.notes,
  };
}

function regenerateJson(g: RegenerateResult) {
  return { generator: g.generator, argv: g.argv, ran: g.ran };
}

function refreshText(r: RefreshResult): string {
  const would = r.dryRun ? 'would ' : '';
  let out = '';
  const why = () => r.reasons.map((x) => `  ${x}\n`).join('');
  switch (r.action) {
    case 'none':
      out = checkText(r.check);
      break;
    case 'deferred':
      out = `${r.release}: ${would}record ${r.check.image} for \`kabi initramfs flush\` (${r.check.generator}):\n${why()}`;
      break;
    case 'generator':
      out = `${r.release}: ${r.dryRun ? 'would run' : 'ran'}: ${r.regenerate!.argv.join(' ')} (${r.check.generator}):\n${why()}`;
      break;
    case 'native': {
      const u = r.update!;
      out = `${r.release}: ${r.dryRun ? 'would rewrite' : 'rewrote'} ${u.image} as ${r.check.generator} would make it:\n${why()}`;
      for (const op of u.operations) out += `  ${would}${op.op} ${op.path} ${op.op === 'link' ? op.detail : `(${op.detail})`}\n`;
      if (!r.dryRun) {
        const segs = u.segmentsRewritten
          .map((s) => `${s.index} (${s.compression ?? 'uncompressed'}${s.blocks ? `, ${s.blocks.kept} blocks kept, ${s.blocks.encoded} encoded` : ''})`)
          .join(', ');
        out += `  segments rewritten: ${segs}; ${u.bytesBefore} -> ${u.bytesAfter} bytes\n`;
      }
      break;
    }
  }
  if (r.action !== 'none') for (const n of r.notes) out += `  note: ${n}\n`;
  for (const c of r.cleaned) out += `  removed ${c}, left by a run that was killed\n`;
  return out;
}

async function runRegenerate(argv: string[], io: CliIo, deps: InitramfsCommandDeps): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { root: ROOT_OPTION, generator: { type: 'string' }, 'dry-run': { type: 'boolean', short: 'n' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    usage,
  );
  if (values.help) {
    io.stdout(help);
    return 0;
  }
  const generator = generatorOption(values.generator);
  const g = await regenerateWithGenerator({
    root: await systemRoot(io, values.root),
    fs: io.fs,
    release: one(positionals, 'KERNEL'),
    dryRun: values['dry-run'] === true,
    env: io.env,
    ...(generator ? { generator } : {}),
    ...(deps.runner ? { runner: deps.runner } : {}),
  });
  if (values.json) io.stdout(JSON.stringify(regenerateJson(g), null, 2) + '\n');
  else io.stdout(`${g.release}: ${g.ran ? 'ran' : 'would run'}: ${g.argv.join(' ')}\n`);
  return 0;
}

async function runFlush(argv: string[], io: CliIo, deps: InitramfsCommandDeps): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      root: ROOT_OPTION,
      strategy: { type: 'string' },
      generator: { type: 'string' },
      'dry-run': { type: 'boolean', short: 'n' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    usage,
  );
  if (values.help) {
    io.stdout(help);
    return 0;
  }
  if (positionals.length > 0) throw new KabiError('USAGE', `flush takes no arguments\n${usage}`);
  const strategy = values.strategy ?? 'auto';
  if (strategy !== 'auto' && strategy !== 'native' && strategy !== 'generator') throw new KabiError('USAGE', '--strategy must be auto, native or generator');
  const generator = generatorOption(values.generator);
  const outcomes = await flushDeferred({
    root: await systemRoot(io, values.root),
    fs: io.fs,
    strategy,
    dryRun: values['dry-run'] === true,
    env: io.env,
    ...(generator ? { generator } : {}),
    ...(deps.runner ? { runner: deps.runner } : {}),
    ...(deps.depmod ? { depmod: deps.depmod } : {}),
  });
  if (values.json) io.stdout(JSON.stringify(outcomes.map(flushJson), null, 2) + '\n');
  else {
    if (outcomes.length === 0) io.stdout('no deferred initramfs refreshes\n');
    for (const o of outcomes) {
      if (o.dropped) io.stdout(`${o.release}: no longer installed; record dropped\n`);
      else if (o.error) io.stderr(`kabi initramfs flush: ${o.release}: ${o.error.message}\n`);
      else io.stdout(refreshText(o.result!));
    }
  }
  return outcomes.some((o) => o.error) ? EXIT_ERROR : 0;
}

function flushJson(o: FlushOutcome) {
  return { release: o.release, dropped: o.dropped === true, error: o.error?.message ?? null, result: o.result ? refreshJson(o.result) : null };
}
