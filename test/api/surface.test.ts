// The public API as TypeScript sees it (src/index.ts): every export documented, and every type
// a user meets in a signature, an option or a result exported under its own name.
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const INDEX = `${REPO}src/index.ts`;
const OURS = [`${REPO}src/`, `${REPO}native-bindings/`];

let checker: ts.TypeChecker;
let exported: ts.Symbol[];

beforeAll(() => {
  const config = ts.getParsedCommandLineOfConfigFile(`${REPO}tsconfig.json`, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
  const program = ts.createProgram([INDEX], config!.options);
  checker = program.getTypeChecker();
  exported = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(INDEX)!)!);
});

const resolved = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
const declaredIn = (s: ts.Symbol) => s.declarations?.[0]?.getSourceFile().fileName ?? '';
const isOurs = (s: ts.Symbol) => OURS.some((d) => declaredIn(s).startsWith(d));

/** Named types (interfaces, aliases, classes) reachable from `type`, with the path that reaches them. */
function reachableTypes(start: ts.Type, path: string, out: Map<string, string>, seen: Set<ts.Type>): void {
  const walk = (t: ts.Type, where: string): void => {
    const named = t.aliasSymbol ?? t.getSymbol();
    if (named && named.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias | ts.SymbolFlags.Class | ts.SymbolFlags.Enum) && isOurs(named)) {
      if (!out.has(named.name)) out.set(named.name, where);
    }
    if (seen.has(t)) return;
    seen.add(t);
    if (named && !isOurs(named) && !(named.flags & ts.SymbolFlags.TypeLiteral) && named.name !== '__type' && named.name !== '__object') {
      // Array, Map, Promise…: look only at their type arguments.
      for (const a of [...(t.aliasTypeArguments ?? []), ...((t as ts.TypeReference).target ? checker.getTypeArguments(t as ts.TypeReference) : [])]) walk(a, where);
      return;
    }
    if (t.isUnionOrIntersection()) for (const u of t.types) walk(u, where);
    for (const sig of [...t.getCallSignatures(), ...t.getConstructSignatures()]) {
      for (const p of sig.getParameters()) walk(checker.getTypeOfSymbol(p), `${where}(${p.name})`);
      walk(sig.getReturnType(), `${where}()`);
    }
    if (t.flags & ts.TypeFlags.Object) {
      for (const p of t.getProperties()) {
        const d = p.valueDeclaration;
        if (d && ts.getCombinedModifierFlags(d) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
        if (p.name.startsWith('#') || p.name.startsWith('__')) continue;
        walk(checker.getTypeOfSymbol(p), `${where}.${p.name}`);
      }
    }
  };
  walk(start, path);
}

describe('the public API (src/index.ts)', () => {
  it('has a doc comment on every export', () => {
    const undocumented = exported.filter((e) => {
      const doc = e.getDocumentationComment(checker).length > 0 || resolved(e).getDocumentationComment(checker).length > 0;
      return !doc;
    });
    expect(undocumented.map((e) => `${e.name} (${declaredIn(resolved(e)).slice(REPO.length)})`)).toEqual([]);
    expect(exported.length).toBeGreaterThan(100);
  });

  it('exports every type its functions, classes, options and results mention', () => {
    const names = new Set(exported.map((e) => e.name));
    const reachable = new Map<string, string>();
    const seen = new Set<ts.Type>();
    for (const e of exported) {
      const s = resolved(e);
      if (s.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias | ts.SymbolFlags.Class)) reachableTypes(checker.getDeclaredTypeOfSymbol(s), e.name, reachable, seen);
      const decl = s.valueDeclaration ?? e.valueDeclaration;
      if (decl) reachableTypes(checker.getTypeOfSymbolAtLocation(s, decl), e.name, reachable, seen);
    }
    const missing = [...reachable].filter(([n]) => !names.has(n)).map(([n, where]) => `${n} (reached by ${where})`);
    expect(missing).toEqual([]);
    // The walk does reach into options and results.
    for (const n of ['DepmodStepOptions', 'ApplyOptions', 'DiscoverOptions', 'ReadModuleFileOptions', 'ModVersion', 'KernelExport', 'InspectOptions', 'LinkApplyOptions', 'LinkRequest', 'StatusCallOptions', 'InitramfsUpdateOptions', 'PreserveCallOptions', 'PruneCallOptions', 'SavedTree']) expect(reachable.has(n), n).toBe(true);
  });
});
