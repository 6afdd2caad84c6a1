import type { ModuleFile } from '../../kernel/module-tree.js';
import { dropIns, readText } from './dracut.js';
import type { ModelContext } from './index.js';
import { firstVerdict, HostModules, NO, type GeneratorModel, type Verdict } from './model.js';
import { ShellEval, type Arg, type Call } from './shell-eval.js';

/*
 * mkinitcpio's module selection: the MODULES array of mkinitcpio.conf (and mkinitcpio.conf.d),
 * then each hook of HOOKS, its install script's build() read abstractly for add_module,
 * add_checked_modules and add_all_modules. With the autodetect hook before it,
 * add_checked_modules keeps only the modules the running system uses (its loaded modules and
 * the drivers of its devices); add_all_modules never filters. Patterns are extended regular
 * expressions matched anywhere in a module's path under the module directory.
 */

const INSTALL_DIRS = ['/etc/initcpio/install', '/usr/lib/initcpio/install'];

type Source = { readonly origin: string; readonly call: Call; readonly checked: boolean };

export async function mkinitcpioModel(ctx: ModelContext): Promise<GeneratorModel> {
  const { fs, root, installed } = ctx;
  const conf = new ShellEval({ record: new Set() });
  for (const f of ['/etc/mkinitcpio.conf', ...(await dropIns(fs, root, ['/etc/mkinitcpio.conf.d'], '.conf'))]) {
    const text = await readText(fs, root, f);
    if (text !== undefined) conf.run(text);
  }
  const notes: string[] = [];
  const list = (name: string): string[] | undefined => {
    const v = conf.vars.get(name);
    if (v === undefined) return [];
    if (!v.known) {
      notes.push(`${name} in mkinitcpio.conf is computed at run time`);
      return undefined;
    }
    return v.items ? [...v.items] : v.text.split(/\s+/).filter(Boolean);
  };
  const modules = list('MODULES');
  const hooks = list('HOOKS') ?? [];
  const sources: Source[] = [];
  let autodetect = false;
  for (const hook of hooks) {
    if (hook === 'autodetect') autodetect = true;
    let script: string | undefined;
    let where = '';
    for (const d of INSTALL_DIRS) {
      script = await readText(fs, root, `${d}/${hook}`);
      where = `${d}/${hook}`;
      if (script !== undefined) break;
    }
    if (script === undefined) continue;
    const ev = new ShellEval({ record: new Set(['add_module', 'add_checked_modules', 'add_all_modules', 'map']) });
    ev.set('KERNELVERSION', ctx.release);
    ev.set('_d_kmoduledir', `/lib/modules/${ctx.release}`);
    ev.load(script);
    ev.callFunction('build');
    for (const call of ev.calls) sources.push({ origin: where, call, checked: autodetect });
  }
  const host = new HostModules(ctx.host, installed);
  return {
    description: `mkinitcpio${autodetect ? ' with autodetect' : ''}`,
    omits: () => false,
    strips: undefined,
    unpacks: false,
    softdeps: true,
    weakdeps: false,
    firmwareDirs: ['/usr/lib/firmware/updates', '/usr/lib/firmware'],
    firmwareFromEveryDir: false,
    notes,
    async selects(file: ModuleFile): Promise<Verdict> {
      if (modules === undefined) return { include: undefined, why: 'MODULES in mkinitcpio.conf is computed at run time' };
      for (const m of modules) {
        if (await installed.reaches(m.replace(/\?$/, ''), file)) return { include: true, rule: `MODULES in mkinitcpio.conf (${m})` };
      }
      return firstVerdict(sources, (s) => matchCall(s, file, ctx, host));
    },
  };
}

async function matchCall(s: Source, file: ModuleFile, ctx: ModelContext, host: HostModules): Promise<Verdict> {
  const { call } = s;
  const origin = `${s.origin}:${call.line}`;
  let args: Arg[] = [...call.args];
  if (call.command === 'map') {
    if (!args[0]?.known || args[0].text !== 'add_module') return NO;
    args = args.slice(1);
  }
  const unknownArg = args.find((a) => !a.known);
  if (call.command === 'add_module' || call.command === 'map') {
    for (const a of args) if (a.known && (await ctx.installed.reaches(a.text.replace(/\?$/, ''), file))) return maybe(origin, a.text, call);
    if (unknownArg && (await host.couldBeNamed(file, unknownArg.known ? undefined : unknownArg.prefix))) return { include: undefined, why: `${origin} adds modules named at run time` };
    return NO;
  }
  // add_checked_modules / add_all_modules [-f FILTER] PATTERN...
  let filter: RegExp | undefined;
  const patterns: RegExp[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.known && a.text === '-f') {
      const f = args[++i];
      if (f?.known) filter = safe(f.text);
      continue;
    }
    if (a.known) {
      const re = safe(a.text);
      if (re) patterns.push(re);
    }
  }
  if (unknownArg) return (await host.couldBeNamed(file, undefined)) ? { include: undefined, why: `${origin} adds modules matched at run time` } : NO;
  const hit = ctx.installed.filesNamed(file.name).find((f) => f.relPath !== undefined && f.relPath.startsWith('kernel/') && patterns.some((p) => p.test('/' + f.relPath)) && !filter?.test('/' + f.relPath));
  if (!hit) return NO;
  if (call.command === 'add_checked_modules' && s.checked && !(await host.has(file))) return NO;
  return maybe(origin, hit.relPath!, call);
}

function maybe(origin: string, what: string, call: Call): Verdict {
  return call.certain ? { include: true, rule: `${origin} (${call.command} ${what})` } : { include: undefined, why: `${origin} (${call.command} ${what}) runs only if ${call.because.join(' and ')}` };
}

function safe(s: string): RegExp | undefined {
  try {
    return new RegExp(s);
  } catch {
    return undefined;
  }
}
