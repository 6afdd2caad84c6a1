import { posix } from 'node:path';
import type { KabiFs } from '../../fs.js';
import { isNotFound } from '../../fs.js';
import type { ModuleFile } from '../../kernel/module-tree.js';
import { hostPath, readSystemFile, resolveInRoot } from '../../kernel/paths.js';
import { findProgram } from '../find-program.js';
import type { HostView } from './host-view.js';
import { foldName, type InstalledModules } from './installed-modules.js';
import { firstVerdict, HostModules, NO, type GeneratorModel, type StripTool, type Verdict } from './model.js';
import { ShellEval, type Arg, type Call, type Value } from './shell-eval.js';
import { tokenize } from './shell-syntax.js';

/*
 * dracut's module selection, as dracut.sh, its modules' installkernel() and dracut-install
 * make it:
 *  - configuration: /etc/dracut.conf, then the *.conf of /etc/dracut.conf.d and
 *    /usr/lib/dracut/dracut.conf.d by name (/etc winning a name), sourced in that order;
 *  - the dracut modules the image was built with (lib/dracut/modules.txt in the image), each
 *    one's installkernel() read abstractly (shell-eval.ts) for its instmods/dracut_instmods
 *    calls, under the configuration's hostonly, hostonly_mode and drivers;
 *  - then drivers, add_drivers, force_drivers and filesystems, installed unconditionally;
 *  - dracut-install's rules for each call: a name or alias is looked up like modprobe does;
 *    "=DIR" walks extra/DIR, kernel/DIR and updates/DIR under the module directory and
 *    installs the module modprobe picks for every file name found there; -s/-S keep modules
 *    importing (not importing) a matching symbol, -p/-P filter on the path; omit_drivers
 *    (less the names also given in drivers, add_drivers or force_drivers) is never installed,
 *    not even as a dependency; in host-only mode (-H) a module must be loaded on the running
 *    system or match the modalias of one of its devices.
 */

export interface DracutContext {
  readonly root: string;
  readonly fs: KabiFs;
  readonly release: string;
  readonly installed: InstalledModules;
  readonly host: HostView;
  /** The dracut modules the image was built with (its lib/dracut/modules.txt), if it says. */
  readonly modulesTxt: readonly string[] | undefined;
  /**
   * The command-line options the image was built with (its lib/dracut/build-parameter.txt),
   * when the rebuild passes them again (`dracut --rebuild`): they override the configuration
   * as they did then.
   */
  readonly buildParameters?: string | undefined;
}

/** The options of a dracut command line that choose kernel modules, applied over the configuration as dracut.sh applies them. */
export function applyBuildParameters(values: Map<string, Value>, params: string): void {
  const ev = new ShellEval({ record: new Set() });
  const args = ev.fields(tokenize(params).flatMap((t) => (t.type === 'word' ? [t.word] : [])));
  const lists: Record<string, string[]> = {};
  const set = (k: string, v: string) => values.set(k, { known: true, text: v });
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.known) continue;
    const m = /^(--[a-z-]+)(?:=(.*))?$/s.exec(a.text);
    const opt = m ? m[1]! : a.text;
    const value = (): string | undefined => {
      if (m?.[2] !== undefined) return m[2];
      const n = args[++i];
      return n?.known ? n.text : undefined;
    };
    const list: Record<string, string> = { '--drivers': 'drivers', '--add-drivers': 'add_drivers', '--force-drivers': 'force_drivers', '--omit-drivers': 'omit_drivers', '--filesystems': 'filesystems' };
    if (list[opt] !== undefined) {
      const v = value();
      if (v !== undefined) (lists[list[opt]!] ??= []).push(v);
    } else if (opt === '-H' || opt === '--hostonly' || opt === '--host-only') set('hostonly', 'yes');
    else if (opt === '-N' || opt === '--no-hostonly' || opt === '--no-host-only') set('hostonly', 'no');
    else if (opt === '--hostonly-mode') {
      const v = value();
      if (v !== undefined) set('hostonly_mode', v);
    } else if (opt === '--no-kernel') set('no_kernel', 'yes');
  }
  // drivers and filesystems on the command line replace the configuration's; the others add to it.
  for (const [k, l] of Object.entries(lists)) {
    const old = values.get(k);
    const joined = l.join(' ');
    if (k === 'drivers' || k === 'filesystems') set(k, joined);
    else if (old?.known !== false) set(k, `${old?.text ?? ''} ${joined} `);
  }
}

const CONFIG_VARS = ['hostonly', 'hostonly_mode', 'drivers', 'add_drivers', 'force_drivers', 'omit_drivers', 'filesystems', 'no_kernel', 'kernel_only', 'fw_dir', 'do_strip'];

interface Rule {
  /** Where the call is: "90kernel-modules/module-setup.sh:33", "dracut.conf add_drivers". */
  readonly origin: string;
  readonly call: string;
  /** Host-only filtering applies (dracut-install -H): true, false, or undecided. */
  readonly hostonly: boolean | undefined;
  readonly certain: boolean;
  readonly because: readonly string[];
  readonly args: readonly Arg[];
  readonly symbol?: RegExp;
  readonly nosymbol?: RegExp;
  readonly path?: RegExp;
  readonly nopath?: RegExp;
  /** A special rule: every module outside the module directory, or every module in depmod.d's search directories. */
  readonly special?: 'external' | 'search-dirs';
  /** Its unknown arguments may name any module (configuration computed at run time), not only what the running system uses. */
  readonly anyModule?: boolean;
}

export interface DracutConfig {
  readonly values: ReadonlyMap<string, Value>;
  readonly files: readonly string[];
}

/** Source dracut's configuration files in dracut's order, abstractly. */
export async function readDracutConfig(fs: KabiFs, root: string): Promise<DracutConfig> {
  const ev = new ShellEval({ record: new Set() });
  for (const v of CONFIG_VARS) ev.set(v, '');
  const files: string[] = [];
  for (const f of ['/etc/dracut.conf', ...(await dropIns(fs, root, ['/etc/dracut.conf.d', '/usr/lib/dracut/dracut.conf.d'], '.conf'))]) {
    const text = await readText(fs, root, f);
    if (text === undefined) continue;
    files.push(f);
    ev.run(text);
  }
  return { values: new Map(CONFIG_VARS.map((v) => [v, ev.vars.get(v) ?? { known: true, text: '' }])), files };
}

export async function dracutModel(ctx: DracutContext): Promise<GeneratorModel> {
  const { fs, root, release, installed } = ctx;
  const conf = await readDracutConfig(fs, root);
  if (ctx.buildParameters) applyBuildParameters(conf.values as Map<string, Value>, ctx.buildParameters);
  const notes: string[] = [];
  const get = (k: string): Value => conf.values.get(k)!;
  const text = (k: string): string | undefined => {
    const v = get(k);
    if (!v.known) notes.push(`${k} in the dracut configuration is computed at run time (${v.why})`);
    return v.known ? v.text : undefined;
  };
  const version = (await readText(fs, root, '/usr/lib/dracut/dracut-version.sh'))?.match(/DRACUT_VERSION=(\S+)/)?.[1];
  const major = Number.parseInt(version ?? '', 10);

  // dracut.sh: hostonly=yes means -h, anything else none; hostonly_mode only with hostonly.
  const hostonlyText = text('hostonly');
  const hostonly: boolean | undefined = hostonlyText === undefined ? undefined : hostonlyText === 'yes' || hostonlyText === '-h';
  const modeText = text('hostonly_mode') ?? '';
  const strict = hostonly === false ? false : modeText === 'strict' ? hostonly : false;
  // ${var/-/_}: dracut folds only the first dash of each list (kmod folds the rest when looking up).
  const firstDash = (s: string | undefined) => (s === undefined ? undefined : s.replace('-', '_'));
  const drivers = text('drivers');
  const addDrivers = firstDash(text('add_drivers'));
  const forceDrivers = firstDash(text('force_drivers'));
  const omitText = firstDash(text('omit_drivers'));
  const filesystems = text('filesystems');
  const words = (s: string | undefined) => (s ?? '').split(/\s+/).filter(Boolean);
  // omit_drivers, less what drivers/add_drivers/force_drivers name, as regexes ^name$ on kmod names.
  const kept = new Set([...words(drivers), ...words(addDrivers), ...words(forceDrivers)]);
  const omitted = words(omitText).filter((d) => !kept.has(d));
  const omitRe = omitted.length > 0 ? safeRegex(omitted.map((d) => `^${d}$`).join('|')) : undefined;
  const omits = (name: string) => omitRe?.test(name) === true;

  const host = new HostModules(ctx.host, installed);
  const rules: Rule[] = [];
  const noKernel = text('no_kernel') === 'yes';

  if (!noKernel) {
    if (ctx.modulesTxt === undefined) {
      notes.push('the image does not list the dracut modules it was built with (lib/dracut/modules.txt)');
    } else {
      const dirs = await dracutModuleDirs(fs, root);
      for (const name of ctx.modulesTxt) {
        const dir = dirs.get(name);
        if (dir === undefined) continue;
        if (name === 'kernel-modules-extra') {
          rules.push({ origin: `${posix.basename(dir)}/module-setup.sh`, call: 'depmod.d search, override and external directories', hostonly, certain: true, because: [], args: [], special: 'search-dirs' });
          continue;
        }
        const script = await readText(fs, root, `${dir}/module-setup.sh`);
        if (script === undefined || !/\binstallkernel\s*\(\)/.test(script)) continue;
        rules.push(...installkernelRules(posix.basename(dir), script, { hostonly, strict, drivers, filesystems, release, modulesTxt: ctx.modulesTxt, notes }));
      }
    }
    const conf = (key: string, list: string | undefined) => {
      if (list === undefined) rules.push({ origin: 'dracut configuration', call: key, hostonly: false, certain: true, because: [], args: [{ known: false, raw: `${key} is computed at run time` }], anyModule: true });
      else if (words(list).length > 0) rules.push({ origin: 'dracut configuration', call: key, hostonly: false, certain: true, because: [], args: words(list).map((t) => ({ known: true, text: t })) });
    };
    conf('drivers', drivers);
    conf('add_drivers', addDrivers);
    conf('force_drivers', forceDrivers);
    conf('filesystems', filesystems);
  }

  const stripTool = await stripToolOf(fs, root);
  const doStrip = text('do_strip');
  const fwDir = text('fw_dir');
  const firmwareDirs = fwDir ? fwDir.split(/[\s:]+/).filter(Boolean) : [`/lib/firmware/updates/${release}`, '/lib/firmware/updates', `/lib/firmware/${release}`, '/lib/firmware'];
  const mode = hostonly === undefined ? 'hostonly undecided' : hostonly ? `hostonly (${strict ? 'strict' : 'sloppy'})` : 'not hostonly';

  return {
    description: `dracut ${version ?? '(version unknown)'}, ${mode}`,
    omits,
    strips: doStrip !== 'no' ? stripTool : undefined,
    unpacks: false,
    softdeps: true,
    weakdeps: Number.isFinite(major) && major >= 103,
    firmwareDirs,
    firmwareFromEveryDir: true,
    notes,
    async selects(file: ModuleFile): Promise<Verdict> {
      if (noKernel) return NO;
      if (ctx.modulesTxt === undefined) return { include: undefined, why: 'the image does not list the dracut modules it was built with' };
      if (omits(file.name)) return NO;
      return firstVerdict(rules, (r) => match(r, file, installed, host));
    },
  };
}

interface EvalSettings {
  readonly hostonly: boolean | undefined;
  readonly strict: boolean | undefined;
  readonly drivers: string | undefined;
  readonly filesystems: string | undefined;
  readonly release: string;
  readonly modulesTxt: readonly string[];
  readonly notes: string[];
}

/** The instmods/dracut_instmods calls of one dracut module's installkernel(), as rules. */
export function installkernelRules(dirName: string, script: string, s: EvalSettings): Rule[] {
  const hostonlyValue: Value = s.hostonly === undefined ? { known: false, why: 'hostonly' } : { known: true, text: s.hostonly ? '-h' : '' };
  const ev = new ShellEval({
    record: new Set(['instmods', 'dracut_instmods']),
    substitution: (t) => {
      if (t === 'uname -m') return { known: true, text: hostArch() };
      if (t === 'optional_hostonly') return s.strict === undefined ? { known: false, why: 'hostonly_mode' } : { known: true, text: s.strict ? '-h' : '' };
      return undefined;
    },
    condition: (command, args) => {
      if (command === 'dracut_module_included') return args.every((a) => a.known && s.modulesTxt.includes(a.text));
      return undefined;
    },
  });
  ev.set('hostonly', hostonlyValue);
  ev.set('hostonly_mode', s.hostonly === false ? '' : s.strict === undefined ? { known: false, why: 'hostonly_mode' } : s.strict ? 'strict' : 'sloppy');
  ev.set('drivers', s.drivers === undefined ? { known: false, why: 'drivers' } : s.drivers);
  ev.set('filesystems', s.filesystems === undefined ? { known: false, why: 'filesystems' } : s.filesystems);
  ev.set('kernel', s.release);
  ev.set('srcmods', `/lib/modules/${s.release}`);
  ev.set('DRACUT_ARCH', '');
  ev.set('no_kernel', '');
  // What dracut learns from the running system before the modules run.
  // Set only while dracut checks the modules of --mount options, never while installing.
  ev.set('mount_needs', '');
  for (const v of ['host_fs_types', 'host_devs', 'root_devs', 'swap_devs', 'fstab_lines', 'user_devs']) ev.set(v, { known: false, why: `${v} (the running system's devices)` });
  ev.load(script);
  ev.callFunction('installkernel');
  const rules: Rule[] = [];
  for (const c of ev.calls) {
    const r = ruleOf(dirName, c, s.hostonly);
    if (r) rules.push(r);
  }
  return rules;
}

function ruleOf(dirName: string, c: Call, hostonly: boolean | undefined): Rule | undefined {
  const origin = `${dirName}/module-setup.sh:${c.line}`;
  if (c.command === '' || c.command === 'eval') {
    return { origin, call: 'a command computed at run time', hostonly, certain: false, because: c.because, args: [{ known: false, raw: c.args.map((a) => (a.known ? a.text : a.raw)).join(' ') }] };
  }
  const pre = c.prefix.get('hostonly');
  const filtered: boolean | undefined = pre === undefined ? hostonly : pre.known ? pre.text !== '' : undefined;
  const base = { origin, hostonly: filtered, certain: c.certain, because: c.because };
  let args = [...c.args];
  const opts: { symbol?: RegExp; nosymbol?: RegExp; path?: RegExp; nopath?: RegExp } = {};
  if (c.command === 'instmods') {
    if (args[0]?.known && args[0].text === '-c') args.shift();
    if (args[0]?.known && args[0].text === '-s') args.shift();
  } else {
    const rest: Arg[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      const value = args[i + 1];
      if (a.known && ['-s', '-S', '-p', '-P', '-N'].includes(a.text)) {
        i++;
        if (value === undefined || !value.known) return { ...base, call: `${c.command} with a filter computed at run time`, args: [{ known: false, raw: value?.known === false ? value.raw : '' }], certain: false };
        const re = safeRegex(value.text);
        if (re === undefined) continue;
        if (a.text === '-s') opts.symbol = re;
        else if (a.text === '-S') opts.nosymbol = re;
        else if (a.text === '-p') opts.path = re;
        else if (a.text === '-P') opts.nopath = re;
        continue;
      }
      if (a.known && (a.text === '-o' || a.text === '--silent' || a.text === '-m' || a.text === '-H')) continue;
      rest.push(a);
    }
    args = rest;
  }
  const call = `${c.command} ${c.args.map((a) => (a.known ? a.text : a.raw)).join(' ')}`.trim();
  if (args.length === 0) {
    if (c.stdin === undefined) return undefined;
    // awk -F: '/^\// {print $1}' "$srcmods/modules.dep" | instmods: every module outside the module directory.
    if (/modules\.dep/.test(c.stdin) && c.stdin.includes('/^\\//')) return { ...base, ...opts, call: `${c.stdin} | ${c.command}`, args: [], special: 'external' };
    return { ...base, ...opts, call: `${c.stdin} | ${c.command}`, args: [{ known: false, raw: c.stdin }] };
  }
  return { ...base, ...opts, call, args };
}

/** Does rule `r` select `file` (the module modprobe picks for its name)? */
async function match(r: Rule, file: ModuleFile, installed: InstalledModules, host: HostModules): Promise<Verdict> {
  let reached: 'certainly' | 'maybe' | undefined;
  let how = '';
  if (r.special === 'external') {
    if (file.external) {
      reached = 'certainly';
      how = 'in a depmod.d external directory';
    }
  } else if (r.special === 'search-dirs') {
    const dirs = installed.config.search.flatMap((e) => (e.kind === 'dir' ? [e.path] : []));
    const f = installed.filesNamed(file.name).find((x) => x.external || (x.relPath !== undefined && (dirs.some((d) => x.relPath!.startsWith(d.replace(/\/$/, '') + '/')) || installed.config.overrides.some((o) => foldName(o.modname) === x.name && x.relPath!.startsWith(o.subdir.replace(/\/$/, '') + '/')))));
    if (f) {
      reached = 'certainly';
      how = `${f.relPath ?? f.path} is in a depmod.d search directory`;
    }
  } else {
    for (const a of r.args) {
      if (!a.known) {
        if (reached === undefined && (r.anyModule || (await host.couldBeNamed(file, a.prefix)))) {
          reached = 'maybe';
          how = a.raw;
        }
        continue;
      }
      if (await installed.reaches(a.text, file)) {
        reached = 'certainly';
        how = a.text;
        break;
      }
    }
  }
  if (reached === undefined) return NO;
  // dracut-install's filters, on the module that would be installed.
  const sys = installed.systemPath(file);
  if (r.nopath?.test(sys) || (r.path !== undefined && !r.path.test(sys))) return NO;
  if (r.symbol !== undefined || r.nosymbol !== undefined) {
    const syms = (await installed.factsOf(file)).undefinedSymbols;
    if (r.nosymbol !== undefined && syms.some((s) => r.nosymbol!.test(s))) return NO;
    if (r.symbol !== undefined && !syms.some((s) => r.symbol!.test(s))) return NO;
  }
  const where = `${r.origin} (${shorten(r.call)})`;
  if (r.hostonly !== false && !(await host.has(file))) {
    if (r.hostonly === true) return NO;
    return { include: undefined, why: `whether ${where} filters by host-only mode is decided at run time` };
  }
  if (reached === 'maybe') return { include: undefined, why: r.anyModule ? `${where}: ${how}` : `${where} installs modules the running system names (${shorten(how)})` };
  if (!r.certain) return { include: undefined, why: `${where} runs only if ${r.because.join(' and ')}` };
  return { include: true, rule: `${where}${how && !r.call.includes(how) ? ` via ${how}` : ''}` };
}

function shorten(s: string): string {
  return s.length > 100 ? `${s.slice(0, 97)}...` : s;
}

function safeRegex(s: string): RegExp | undefined {
  try {
    return new RegExp(s);
  } catch {
    return undefined;
  }
}

function hostArch(): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l', s390x: 's390x', ppc64: 'ppc64le', riscv64: 'riscv64' };
  return map[process.arch] ?? process.arch;
}

/** The strip dracut would run in the root (it prefers elfutils' eu-strip), if any. */
export async function stripToolOf(fs: KabiFs, root: string): Promise<StripTool | undefined> {
  if (await findProgram(fs, root, 'eu-strip')) return { program: 'eu-strip', wordAlignedFile: false };
  if (!(await findProgram(fs, root, 'strip'))) return undefined;
  // binutils' version, from its library's name (libbfd-2.44-system.so, libbfd-2.41-6.fc40.so).
  let version: [number, number] | undefined;
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib']) {
    const host = await resolveInRoot(fs, root, hostPath(root, dir)).catch(() => undefined);
    if (host === undefined) continue;
    const names = await fs.readdir(host).catch(() => [] as string[]);
    for (const n of names) {
      const m = /^libbfd-(\d+)\.(\d+)/.exec(n);
      if (m) version = [Number(m[1]), Number(m[2])];
    }
    if (version) break;
  }
  return { program: 'strip', wordAlignedFile: version !== undefined && (version[0] > 2 || version[1] >= 42) };
}

/** name → directory (system path) of every dracut module in the root. */
async function dracutModuleDirs(fs: KabiFs, root: string): Promise<Map<string, string>> {
  const base = '/usr/lib/dracut/modules.d';
  const out = new Map<string, string>();
  let names: string[];
  try {
    const host = await resolveInRoot(fs, root, hostPath(root, base));
    if (host === undefined) return out;
    names = await fs.readdir(host);
  } catch (e) {
    if (isNotFound(e)) return out;
    throw e;
  }
  for (const n of names.sort()) {
    const m = /^\d\d(.+)$/.exec(n);
    if (m && !out.has(m[1]!)) out.set(m[1]!, `${base}/${n}`);
  }
  return out;
}

/** Configuration drop-ins: every `suffix` file of `dirs` by name (version order), the first directory having a name winning it. */
export async function dropIns(fs: KabiFs, root: string, dirs: readonly string[], suffix: string): Promise<string[]> {
  const byName = new Map<string, string>();
  for (const d of dirs) {
    let names: string[] = [];
    try {
      const host = await resolveInRoot(fs, root, hostPath(root, d));
      if (host !== undefined) names = await fs.readdir(host);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    for (const n of names) if (n.endsWith(suffix) && !byName.has(n)) byName.set(n, posix.join(d, n));
  }
  return [...byName.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).map((n) => byName.get(n)!);
}

export async function readText(fs: KabiFs, root: string, sys: string): Promise<string | undefined> {
  try {
    return new TextDecoder().decode(await readSystemFile(fs, root, sys));
  } catch (e) {
    if (isNotFound(e) || (e as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
    throw e;
  }
}
