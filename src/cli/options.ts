import { resolve } from 'node:path';
import { requireRoot } from '../api/root.js';
import { KabiError } from '../errors.js';
import type { CliIo } from './io.js';
import { suggest } from './suggest.js';

/**
 * kabi's option tables and their parser. One table per command (or subcommand) says what it
 * accepts; the same table parses the command line, validates choices, and is read by the
 * completion scripts (`kabi completion`) and the man pages (`man/*.1`, written at build time),
 * so the three cannot disagree.
 *
 * Parsing follows GNU conventions: `--name value` or `--name=value`, `-k value`, `-kvalue`,
 * bundled flags (`-an`), options and operands in any order, `--` ends the options, a lone `-`
 * is an operand. Mistakes are reported in kabi's words, with the nearest option when one is
 * near enough ("unknown option '--rot' (did you mean --root?)").
 */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The option may be given several times; its values are collected in order. */
  readonly multiple?: boolean;
  /** The value's name in help, man pages and errors: DIR, K, FILE… */
  readonly arg?: string;
  /** The only values accepted (checked here, offered by completion). */
  readonly choices?: readonly string[];
  /** What it does, for man pages and completion (the command's --help text says it in full). */
  readonly help?: string;
  /** What completion offers as the value; default from `arg`/`choices`. */
  readonly complete?: Completion;
}

/** What a shell offers for an option's value or an operand. */
export type Completion = 'file' | 'dir' | 'kernel' | 'module' | 'command' | 'none';

export type OptionTable = Readonly<Record<string, OptionSpec>>;

type StringOf<S> = S extends { choices: readonly (infer C extends string)[] } ? C : string;
type ValueOf<S> = S extends { type: 'string' } ? (S extends { multiple: true } ? StringOf<S>[] : StringOf<S>) : S extends { multiple: true } ? boolean[] : boolean;

/** The parsed values, typed from the table: a string, a boolean, or arrays of them for `multiple`. */
export type ParsedValues<T extends OptionTable> = { -readonly [K in keyof T]?: ValueOf<T[K]> };

export interface ParseConfig {
  /**
   * Accept a long option abbreviated to a unique prefix, as getopt_long does (kabi depmod,
   * which imitates depmod). kabi's own commands do not: an abbreviation that works today
   * would become ambiguous, or change meaning, when an option is added.
   */
  abbreviations?: boolean;
}

/** A command line that does not fit the table: the message says what, in kabi's words. */
export class OptionError extends KabiError {
  constructor(detail: string) {
    super('USAGE', detail);
  }
}

/** Parse `argv` against `table`. Throws OptionError (a KabiError, code USAGE). */
export function parseOptions<const T extends OptionTable>(argv: readonly string[], table: T, config: ParseConfig = {}): { values: ParsedValues<T>; positionals: string[] } {
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const longs = Object.keys(table);
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(table)) if (spec.short !== undefined) byShort.set(spec.short, name);

  const set = (name: string, value: string | boolean, spelled: string) => {
    const spec = table[name]!;
    if (typeof value === 'string' && spec.choices && !spec.choices.includes(value)) {
      const near = suggest(value, spec.choices);
      throw new OptionError(`${spelled} must be ${orList(spec.choices)}, not '${value}'${near ? ` (did you mean ${near}?)` : ''}`);
    }
    if (spec.multiple) ((values[name] ??= []) as unknown[]).push(value);
    else values[name] = value;
  };
  const needsValue = (spelled: string, spec: OptionSpec, next: string | undefined): string => {
    if (next === undefined) throw new OptionError(`${spelled} needs a value (${spec.arg ?? 'a value'})`);
    // `--root --dry-run`: a forgotten value, not a directory named "--dry-run".
    if (next.startsWith('--') && next.length > 2 && lookupLong(next.slice(2).split('=')[0]!, longs, config) !== undefined) {
      throw new OptionError(`${spelled} needs a value (${spec.arg ?? 'a value'}); '${next}' is an option`);
    }
    return next;
  };

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const typed = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const name = lookupLong(typed, longs, config);
      if (name === undefined) throw unknownLong(typed, longs, config);
      const spec = table[name]!;
      const spelled = `--${name}`;
      if (spec.type === 'boolean') {
        if (eq >= 0) throw new OptionError(`${spelled} takes no value (given '${a.slice(eq + 1)}')`);
        set(name, true, spelled);
      } else {
        set(name, eq >= 0 ? a.slice(eq + 1) : needsValue(spelled, spec, argv[++i]), spelled);
      }
      continue;
    }
    if (a.startsWith('-') && a !== '-') {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j]!;
        const name = byShort.get(ch);
        if (name === undefined) {
          const long = lookupLong(a.slice(1), longs, { abbreviations: false });
          throw new OptionError(`unknown option '-${ch}'${a.length > 2 && long !== undefined ? ` (did you mean --${long}?)` : ''}`);
        }
        const spec = table[name]!;
        if (spec.type === 'boolean') {
          set(name, true, `-${ch}`);
          continue;
        }
        // -kVALUE, or -k VALUE
        const rest = a.slice(j + 1);
        set(name, rest !== '' ? rest : needsValue(`-${ch}`, spec, argv[++i]), `-${ch}`);
        break;
      }
      continue;
    }
    positionals.push(a);
  }
  return { values: values as ParsedValues<T>, positionals };
}

function lookupLong(typed: string, longs: readonly string[], config: ParseConfig): string | undefined {
  if (longs.includes(typed)) return typed;
  if (!config.abbreviations || typed === '') return undefined;
  const matches = longs.filter((l) => l.startsWith(typed));
  return matches.length === 1 ? matches[0] : undefined;
}

function unknownLong(typed: string, longs: readonly string[], config: ParseConfig): OptionError {
  if (config.abbreviations) {
    const matches = longs.filter((l) => l.startsWith(typed));
    if (matches.length > 1) return new OptionError(`option '--${typed}' is ambiguous: ${matches.map((m) => `--${m}`).join(', ')}`);
  }
  const near = suggest(typed, longs);
  return new OptionError(`unknown option '--${typed}'${near ? ` (did you mean --${near}?)` : ''}`);
}

function orList(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

// ---- options every command spells the same way -------------------------------------------

/** --root DIR: the system installed under DIR, as it sees itself (default $KABI_ROOT, else /). */
export const ROOT_OPTION = {
  type: 'string',
  arg: 'DIR',
  complete: 'dir',
  help: 'work on the system installed under DIR, as it sees itself (symbolic links followed inside DIR, as in a chroot); default: $KABI_ROOT, else /',
} as const satisfies OptionSpec;

/** --kernel K (-k K), repeatable: only these installed kernels. */
export const KERNELS_OPTION = {
  type: 'string',
  short: 'k',
  multiple: true,
  arg: 'K',
  complete: 'kernel',
  help: 'only the installed kernel K; default: every kernel installed under the root',
} as const satisfies OptionSpec;

export const JSON_OPTION = { type: 'boolean', help: 'print the result as JSON' } as const satisfies OptionSpec;
export const HELP_OPTION = { type: 'boolean', short: 'h', help: 'show the options and exit' } as const satisfies OptionSpec;
export const SEMANTICS_OPTION = {
  type: 'string',
  arg: 'S',
  choices: ['loader', 'depmod'],
  help: "loader (default): judge as the kernel's module loader does; depmod: exactly as depmod -e -E, and so weak-modules, does",
} as const satisfies OptionSpec;
export const DRY_RUN_OPTION = { type: 'boolean', short: 'n', help: 'say what would be done; write and run nothing' } as const satisfies OptionSpec;

/**
 * --color WHEN, accepted by every command (before or after its name): main() takes it out of
 * the command line and sets CliIo.color, so a command only paints (see style.ts).
 */
export const COLOR_OPTION = {
  type: 'string',
  arg: 'WHEN',
  choices: ['auto', 'always', 'never'],
  help: 'colour the output: auto (the default: when standard output is a terminal, unless NO_COLOR is set or TERM is dumb), always, never',
} as const satisfies OptionSpec;

export type ColorMode = (typeof COLOR_OPTION.choices)[number];

/**
 * Take every `--color[=WHEN]` / `--color WHEN` out of a command line (up to a `--`); the last
 * one counts. A bare `--color` means always, as in GNU ls.
 */
export function extractColor(argv: readonly string[]): { argv: string[]; color: ColorMode | undefined } {
  const rest: string[] = [];
  let color: ColorMode | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    let value: string | undefined;
    if (a.startsWith('--color=')) value = a.slice('--color='.length);
    else if (a === '--color') value = argv[i + 1] !== undefined && (COLOR_OPTION.choices as readonly string[]).includes(argv[i + 1]!) ? argv[++i]! : 'always';
    else {
      rest.push(a);
      continue;
    }
    if (!(COLOR_OPTION.choices as readonly string[]).includes(value)) {
      const near = suggest(value, COLOR_OPTION.choices);
      throw new OptionError(`--color must be auto, always or never, not '${value}'${near ? ` (did you mean ${near}?)` : ''}`);
    }
    color = value as ColorMode;
  }
  return { argv: rest, color };
}

/** The root a command works on: --root, else $KABI_ROOT, else "/" (absolute, from the cwd). */
export function rootPath(io: Pick<CliIo, 'env' | 'cwd'>, given: string | undefined): string {
  const env = io.env['KABI_ROOT'];
  return resolve(io.cwd, given ?? (env !== undefined && env !== '' ? env : '/'));
}

/**
 * rootPath(), checked: a root that does not exist (a typo) is an error before anything is read
 * or planned, the same for a dry run as for the real one.
 */
export async function systemRoot(io: Pick<CliIo, 'env' | 'cwd' | 'fs'>, given: string | undefined): Promise<string> {
  try {
    return await requireRoot(rootPath(io, given), io.fs);
  } catch (e) {
    // Say where a root nobody typed on this command line came from.
    if (e instanceof KabiError && given === undefined) throw new KabiError(e.code, `${e.detail} ($KABI_ROOT)`, { file: e.file });
    throw e;
  }
}
