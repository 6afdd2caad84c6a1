/**
 * GNU getopt_long semantics, as the weak-modules scripts rely on them: long options may be
 * abbreviated to a unique prefix, take their argument as `--opt=value` or `--opt value`,
 * options and positionals may be mixed (permutation), and `--` ends option parsing.
 */
export interface LongOption {
  name: string;
  hasArg: boolean;
}

export interface GetoptResult {
  options: Map<string, string | true>;
  positionals: string[];
  /** Every option in the order given, repeats included (`-vv`, the last of several modes). */
  sequence: [string, string | true][];
}

export class GetoptError extends Error {}

export function getopt(argv: readonly string[], longs: readonly LongOption[], shorts: Record<string, string> = {}): GetoptResult {
  const options = new Map<string, string | true>();
  const positionals: string[] = [];
  const sequence: [string, string | true][] = [];
  const set = (name: string, value: string | true) => {
    options.set(name, value);
    sequence.push([name, value]);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const exact = longs.find((o) => o.name === name);
      const matches = exact ? [exact] : longs.filter((o) => o.name.startsWith(name));
      if (matches.length === 0) throw new GetoptError(`unrecognized option '--${name}'`);
      if (matches.length > 1) throw new GetoptError(`option '--${name}' is ambiguous`);
      const opt = matches[0]!;
      if (opt.hasArg) {
        let value: string | undefined;
        if (eq >= 0) value = a.slice(eq + 1);
        else if (i + 1 < argv.length) value = argv[++i];
        if (value === undefined) throw new GetoptError(`option '--${opt.name}' requires an argument`);
        set(opt.name, value);
      } else {
        if (eq >= 0) throw new GetoptError(`option '--${opt.name}' doesn't allow an argument`);
        set(opt.name, true);
      }
    } else if (a.startsWith('-') && a.length > 1) {
      for (const ch of a.slice(1)) {
        const long = shorts[ch];
        if (long === undefined) throw new GetoptError(`invalid option -- '${ch}'`);
        set(long, true);
      }
    } else {
      positionals.push(a);
    }
  }
  return { options, positionals, sequence };
}
