import { existsSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import type { KabiFs } from '../../fs.js';
import { isNotFound } from '../../fs.js';
import type { ModuleFile } from '../../kernel/module-tree.js';
import { hostPath, resolveInRoot } from '../../kernel/paths.js';
import { findProgram } from '../find-program.js';
import { readText } from './dracut.js';
import type { HostView } from './host-view.js';
import { foldName, type InstalledModules } from './installed-modules.js';
import { firstVerdict, HostModules, NO, type GeneratorModel, type Verdict } from './model.js';
import { globMatch, ShellEval, type Arg, type Call, type Value } from './shell-eval.js';

/*
 * initramfs-tools' module selection, as mkinitramfs makes it:
 *  - configuration: CONFDIR/initramfs.conf, /usr/share/initramfs-tools/conf.d/* (unless
 *    CONFDIR/conf.d has the name), CONFDIR/conf.d/*, /usr/share/initramfs-tools/conf-hooks.d/*;
 *  - CONFDIR/modules and /usr/share/initramfs-tools/modules.d/* (force_load, always);
 *  - MODULES=most: auto_add_modules; netboot: its base and net groups; dep: the modules of the
 *    running system's root and /usr devices (dep_add_modules); list: nothing more; anything
 *    else: most;
 *  - every hook (/usr/share/initramfs-tools/hooks, CONFDIR/hooks): manual_add_modules,
 *    copy_modules_dir, force_load… calls, read abstractly (shell-eval.ts);
 *  - hidden_dep_add_modules: a few modules that others need without saying so.
 * auto_add_modules and hidden_dep_add_modules are read from the root's own hook-functions, so
 * the groups are those of the installed version. A name reaches the module modprobe picks for
 * it (`modprobe --show-depends`), so a weak-updates or updates/ file of a name found under
 * kernel/drivers/… is the one installed.
 */

const CONFDIR = '/etc/initramfs-tools';
const SHARE = '/usr/share/initramfs-tools';
const RECORDED = ['manual_add_modules', 'copy_modules_dir', 'force_load', 'add_modules_from_file', 'add_loaded_modules', 'auto_add_modules', 'dep_add_modules', 'block_dev_mod_add', 'sys_walk_mod_add', 'class_add_modules', 'dep_add_modules_mount'];

export interface ToolsContext {
  readonly root: string;
  readonly fs: KabiFs;
  readonly release: string;
  readonly installed: InstalledModules;
  readonly host: HostView;
  /** Module names the current image holds (hidden_dep_add_modules looks at what is already in). */
  readonly imageModules: ReadonlySet<string>;
}

type Source =
  | { readonly kind: 'name'; readonly arg: Arg; readonly origin: string; readonly certain: boolean; readonly because: readonly string[] }
  | { readonly kind: 'dir'; readonly dir: string; readonly excludes: readonly string[]; readonly origin: string; readonly certain: boolean; readonly because: readonly string[] }
  | { readonly kind: 'host'; readonly origin: string; readonly what: string }
  | { readonly kind: 'loaded'; readonly pattern: string; readonly origin: string };

export async function initramfsToolsModel(ctx: ToolsContext): Promise<GeneratorModel> {
  const { fs, root } = ctx;
  const notes: string[] = [];
  const conf = new ShellEval({ record: new Set() });
  for (const f of await configFiles(fs, root)) {
    const text = await readText(fs, root, f);
    if (text !== undefined) conf.run(text);
  }
  const modulesValue: Value = conf.vars.get('MODULES') ?? { known: true, text: '' };
  if (!modulesValue.known) notes.push(`MODULES is computed at run time (${modulesValue.why})`);
  const modules = modulesValue.known ? (['most', 'dep', 'netboot', 'list'].includes(modulesValue.text) ? modulesValue.text : 'most') : undefined;

  const sources: Source[] = [];
  const fileTest = (op: string, path: string) => testInRoot(root, op, path);
  const arch = await dpkgArch(fs, root);
  const newEval = () => {
    const ev = new ShellEval({ record: new Set(RECORDED), fileTest });
    ev.set('MODULES', modules ?? { known: false, why: 'MODULES' });
    ev.set('version', ctx.release);
    ev.set('MODULESDIR', `/lib/modules/${ctx.release}`);
    ev.set('CONFDIR', CONFDIR);
    ev.set('DPKG_ARCH', arch);
    ev.set('verbose', 'n');
    ev.set('DESTDIR', { known: false, why: 'DESTDIR' });
    for (const [k, v] of conf.vars) if (/^[A-Z_]+$/.test(k)) ev.set(k, v);
    return ev;
  };

  // The root's hook-functions: auto_add_modules' groups, hidden_dep_add_modules' table.
  const hookFunctions = (await readText(fs, root, `${SHARE}/hook-functions`)) ?? '';
  const addCalls = (origin: string, calls: readonly Call[]) => {
    for (const c of calls) sources.push(...sourcesOf(origin, c));
  };

  for (const f of [`${CONFDIR}/modules`, ...(await listDir(fs, root, `${SHARE}/modules.d`))]) {
    const text = await readText(fs, root, f);
    if (text === undefined) continue;
    for (const name of moduleListNames(text)) sources.push({ kind: 'name', arg: { known: true, text: name }, origin: f, certain: true, because: [] });
  }
  if (modules === undefined) {
    sources.push({ kind: 'host', origin: 'initramfs.conf', what: 'MODULES' });
  } else if (modules !== 'list') {
    const ev = newEval();
    ev.load(hookFunctions);
    const groups = modules === 'netboot' ? [['base'], ['net']] : modules === 'most' ? [[]] : [];
    for (const g of groups) ev.callFunction('auto_add_modules', g);
    if (modules === 'dep') ev.callFunction('dep_add_modules');
    addCalls(`MODULES=${modules}`, ev.calls);
  }
  for (const hook of await hooks(fs, root)) {
    const text = await readText(fs, root, hook);
    if (text === undefined) continue;
    const interpreter = /^#!\s*(\S+)/.exec(text)?.[1];
    if (text.includes('\0') || (interpreter !== undefined && !/\/(ba|da|k|z|mk)?sh$/.test(interpreter))) {
      sources.push({ kind: 'host', origin: hook, what: 'a hook that is not a shell script' });
      continue;
    }
    const ev = newEval();
    ev.set('1', '');
    ev.run(text);
    addCalls(hook, ev.calls);
  }
  const hidden = hiddenDependencies(hookFunctions);

  const installed = ctx.installed;
  const host = new HostModules(ctx.host, installed);
  const unpacks = (await findProgram(fs, root, 'xz')) !== undefined || (await findProgram(fs, root, 'zstd')) !== undefined;

  return {
    description: `initramfs-tools, MODULES=${modules ?? '(computed at run time)'}`,
    omits: () => false,
    strips: undefined,
    unpacks,
    softdeps: true,
    weakdeps: false,
    firmwareDirs: [`/lib/firmware/updates/${ctx.release}`, '/lib/firmware/updates', `/lib/firmware/${ctx.release}`, '/lib/firmware'],
    firmwareFromEveryDir: false,
    notes,
    async selects(file: ModuleFile): Promise<Verdict> {
      for (const [needs, names] of hidden) {
        if (names.includes(file.name) && [...ctx.imageModules].some((m) => globMatch(needs, m))) return { include: true, rule: `hidden_dep_add_modules (${needs} needs ${file.name})` };
      }
      return firstVerdict(sources, (s) => matchSource(s, file, installed, host));
    },
  };
}

function sourcesOf(origin: string, c: Call): Source[] {
  const where = `${origin}${c.line ? `:${c.line}` : ''}`;
  const base = { origin: where, certain: c.certain, because: c.because };
  switch (c.command) {
    case 'manual_add_modules':
    case 'force_load':
      return (c.command === 'force_load' ? c.args.slice(0, 1) : c.args).map((arg) => ({ kind: 'name', arg, ...base }));
    case 'copy_modules_dir': {
      const [dir, ...excl] = c.args;
      if (!dir?.known || excl.some((e) => !e.known)) return [{ kind: 'host', origin: where, what: `copy_modules_dir ${c.args.map((a) => (a.known ? a.text : a.raw)).join(' ')}` }];
      return [{ kind: 'dir', dir: dir.text, excludes: excl.map((e) => (e as { text: string }).text), ...base }];
    }
    case 'add_loaded_modules':
      return [c.args[0]?.known ? { kind: 'loaded', pattern: c.args[0].text, origin: where } : { kind: 'host', origin: where, what: 'add_loaded_modules' }];
    case 'auto_add_modules':
    case 'dep_add_modules':
    case 'add_modules_from_file':
      // A hook calling these again: the groups are already in (MODULES=…) or it reads a file at run time.
      return c.command === 'add_modules_from_file' ? [{ kind: 'host', origin: where, what: 'add_modules_from_file' }] : [];
    default:
      return [{ kind: 'host', origin: where, what: c.command === '' ? 'a command named at run time' : c.command }];
  }
}

async function matchSource(s: Source, file: ModuleFile, installed: InstalledModules, host: HostModules): Promise<Verdict> {
  const certainly = (how: string, certain: boolean, because: readonly string[]): Verdict =>
    certain ? { include: true, rule: `${s.origin} (${how})` } : { include: undefined, why: `${s.origin} (${how}) runs only if ${because.join(' and ')}` };
  switch (s.kind) {
    case 'name':
      if (!s.arg.known) return (await host.couldBeNamed(file, s.arg.prefix)) ? { include: undefined, why: `${s.origin} adds modules named at run time (${s.arg.raw})` } : NO;
      return (await installed.reaches(s.arg.text, file)) ? certainly(`${s.arg.text}`, s.certain, s.because) : NO;
    case 'dir': {
      const prefix = s.dir.replace(/\/+$/, '') + '/';
      const hit = installed.filesNamed(file.name).find((f) => f.relPath !== undefined && f.relPath.startsWith(prefix) && !excluded(f.relPath.slice(prefix.length), s.excludes));
      return hit ? certainly(`copy_modules_dir ${s.dir}: ${hit.relPath}`, s.certain, s.because) : NO;
    }
    case 'loaded':
      return globMatch(s.pattern, file.name) && (await host.has(file)) ? { include: true, rule: `${s.origin} (add_loaded_modules '${s.pattern}')` } : NO;
    case 'host':
      return (await host.couldBeNamed(file, undefined)) ? { include: undefined, why: `${s.origin} (${s.what}) adds modules the running system names` } : NO;
  }
}

/** copy_modules_dir's `find … -name EXCL -prune`: an exclude ending in .ko also matches .ko.xz (EXCL*). */
function excluded(relBelow: string, excludes: readonly string[]): boolean {
  const parts = relBelow.split('/');
  return excludes.some((e) => {
    const pat = e.endsWith('.ko') ? `${e}*` : e;
    return parts.some((p) => globMatch(pat, p));
  });
}

/** Names in a modules file: the first word of each line, comments left out. */
export function moduleListNames(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => /^[^#]/.test(l))
    .map((l) => l.trim().split(/\s+/)[0]!)
    .filter(Boolean);
}

/** hidden_dep_add_modules' table: module pattern → names it pulls in. */
function hiddenDependencies(hookFunctions: string): [string, string[]][] {
  const body = /hidden_dep_add_modules\(\)\s*\{([\s\S]*?)\n\}/.exec(hookFunctions)?.[1];
  if (body === undefined) return [];
  const out: [string, string[]][] = [];
  for (const m of body.matchAll(/^\s*([A-Za-z0-9_|*?-]+)\)\s*\n\s*echo\s+([^\n]+)/gm)) {
    const names = m[2]!.trim().split(/\s+/).map(foldName);
    for (const pat of m[1]!.split('|')) out.push([foldName(pat), names]);
  }
  return out;
}

async function configFiles(fs: KabiFs, root: string): Promise<string[]> {
  const out = [`${CONFDIR}/initramfs.conf`];
  const valid = (n: string) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(n) && !/\.dpkg-/.test(n);
  const etc = (await listDir(fs, root, `${CONFDIR}/conf.d`)).map((p) => posix.basename(p));
  for (const f of await listDir(fs, root, `${SHARE}/conf.d`)) if (!etc.includes(posix.basename(f)) && valid(posix.basename(f))) out.push(f);
  for (const n of etc) if (valid(n)) out.push(`${CONFDIR}/conf.d/${n}`);
  out.push(...(await listDir(fs, root, `${SHARE}/conf-hooks.d`)));
  return out;
}

/** The hooks mkinitramfs runs: executable files with plain names, in both hook directories. */
async function hooks(fs: KabiFs, root: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of [`${SHARE}/hooks`, `${CONFDIR}/hooks`]) {
    for (const f of await listDir(fs, root, d)) {
      if (!/^[A-Za-z0-9._-]+$/.test(posix.basename(f))) continue;
      const host = await resolveInRoot(fs, root, hostPath(root, f)).catch(() => undefined);
      if (host === undefined) continue;
      const st = await fs.stat(host).catch(() => undefined);
      if (st?.isFile() && (st.mode & 0o111) !== 0) out.push(f);
    }
  }
  return out;
}

async function listDir(fs: KabiFs, root: string, dir: string): Promise<string[]> {
  try {
    const host = await resolveInRoot(fs, root, hostPath(root, dir));
    if (host === undefined) return [];
    return (await fs.readdir(host)).sort().map((n) => posix.join(dir, n));
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

async function dpkgArch(fs: KabiFs, root: string): Promise<string> {
  const arch = (await readText(fs, root, '/var/lib/dpkg/arch'))?.split('\n')[0]?.trim();
  if (arch) return arch;
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: 'i386', arm: 'armhf', s390x: 's390x', ppc64: 'ppc64el' };
  return map[process.arch] ?? process.arch;
}

/**
 * `[ -e PATH ]` and friends in a hook, on the root's files (links followed inside it); paths
 * under /sys and /proc are the running system's, as the hook would see them.
 */
function testInRoot(root: string, op: string, path: string): boolean | undefined {
  if (!path.startsWith('/')) return undefined;
  const onHost = path.startsWith('/sys/') || path.startsWith('/proc/') || path === '/sys' || path === '/proc';
  const p = onHost ? path : posix.join(root, path);
  if (!existsSync(p)) return op === '-e' || op === '-f' || op === '-d' || op === '-x' || op === '-s' ? false : undefined;
  let real: string;
  try {
    real = realpathSync(p);
  } catch {
    return undefined;
  }
  if (!onHost && root !== '/' && real !== posix.normalize(root) && !real.startsWith(posix.normalize(root).replace(/\/$/, '') + '/')) return undefined;
  return op === '-e' ? true : undefined;
}
