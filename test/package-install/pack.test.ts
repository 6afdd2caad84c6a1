// What `npm pack` puts in kabi's tarball (the bytes `npm publish` would upload, so what the
// registry would serve): checked file by file, for imports that leave it, and for size.
// test/package-install/install.test.ts installs it.
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, posix } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { pack, PKG, REPO, walk, type Packed } from './npm.js';

let packed: Packed;
beforeAll(() => {
  packed = pack();
});

describe('npm pack', () => {
  it('ships the bins, the bundled library with its types and worker, integrations, docs, README and LICENSE: nothing else', () => {
    const unexpected = [...packed.files.keys()].filter(
      (f) =>
        !(
          ['package.json', 'README.md', 'LICENSE'].includes(f) ||
          /^dist\/bin\/[\w-]+\.js$/.test(f) ||
          /^dist\/lib\/(index\.js|index\.cjs|read-worker\.js)$/.test(f) ||
          (/^dist\/(src|native-bindings)\/.*\.d\.ts$/.test(f) && !/^dist\/src\/(bin|cli)\//.test(f)) ||
          /^docs\/[\w-]+\.md$/.test(f) ||
          /^dist\/man\/[\w-]+\.1$/.test(f) ||
          f.startsWith('integrations/')
        ),
    );
    expect(unexpected).toEqual([]);
    // No test bundle, demo, source map, sources or leftover tarball slipped in.
    expect([...packed.files.keys()].filter((f) => /(^|\/)(test|corpus|demo)\/|\.map$|\.tgz$|(?<!\.d)\.ts$/.test(f))).toEqual([]);
    // The worker beside each bundle that reads modules on threads.
    for (const f of ['dist/bin/read-worker.js', 'dist/lib/read-worker.js', 'dist/lib/index.cjs', 'dist/src/index.d.ts', 'LICENSE']) expect(packed.files.has(f), f).toBe(true);
    // Every integration file in the checkout is shipped.
    const integrations = walk(join(REPO, 'integrations')).map((f) => `integrations/${f}`);
    expect(integrations.filter((f) => !packed.files.has(f))).toEqual([]);
  });

  it('has every bin (executable) and every entry point of package.json', () => {
    for (const [name, path] of Object.entries(PKG.bin)) {
      const f = packed.files.get(posix.normalize(path));
      expect(f, `bin ${name} -> ${path}`).toBeDefined();
      expect(f!.mode & 0o111, `bin ${name} is executable`).not.toBe(0);
      expect(readFileSync(join(REPO, path), 'utf8').startsWith('#!/usr/bin/env node\n'), `${path} has a shebang`).toBe(true);
    }
    const targets = JSON.stringify(PKG.exports).match(/"\.\/[^"]+"/g)!.map((s) => posix.normalize(s.slice(3, -1)));
    for (const t of targets) expect(packed.files.has(t), `exports -> ${t}`).toBe(true);
  });

  it('is self-contained: packed files import only packed files, Node built-ins and declared dependencies', () => {
    // Its own name too: the CommonJS entry's message tells users to import('kabi').
    const declared = new Set(['kabi', ...Object.keys(PKG.dependencies ?? {}), ...Object.keys(PKG.optionalDependencies ?? {}), ...Object.keys(PKG.peerDependencies ?? {})]);
    const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    const problems: string[] = [];
    for (const f of packed.files.keys()) {
      if (!/\.(js|cjs|d\.ts)$/.test(f)) continue;
      const text = readFileSync(join(REPO, f), 'utf8');
      for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^import\s+)["']([^"']+)["']/gm)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) {
          const target = posix.join(posix.dirname(f), spec);
          const candidates = f.endsWith('.d.ts') ? [target.replace(/\.js$/, '.d.ts')] : [target];
          if (!candidates.some((c) => packed.files.has(c))) problems.push(`${f}: ${spec} is not packed`);
        } else {
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
          if (!builtins.has(spec) && !builtins.has(name) && !declared.has(name)) problems.push(`${f}: ${spec} is not a declared dependency`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('ships a man page for kabi, each of its commands and weak-modules, where package.json points man at them', () => {
    const pages = [...packed.files.keys()].filter((f) => f.startsWith('dist/man/'));
    // The build writes them from the option tables (scripts/build.mjs, src/cli/man.ts): every page it wrote is packed.
    expect(walk(join(REPO, 'dist/man')).map((f) => `dist/man/${f}`).filter((f) => !packed.files.has(f))).toEqual([]);
    for (const name of ['kabi', 'kabi-check', 'kabi-link', 'kabi-status', 'kabi-initramfs', 'kabi-depmod', 'kabi-preserve', 'kabi-inspect', 'kabi-completion', 'weak-modules']) {
      expect(pages, name).toContain(`dist/man/${name}.1`);
      expect(readFileSync(join(REPO, `dist/man/${name}.1`), 'utf8')).toMatch(/^\.TH /m);
    }
    expect(posix.normalize((PKG as { directories?: { man?: string } }).directories?.man ?? '')).toBe('dist/man');
  });

  it('has the docs the README links to', () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/i.test(l));
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((l) => !packed.files.has(posix.normalize(l)))).toEqual([]);
  });

  // The generators' models (initramfs/generator/, bundled into each bin), the library's
  // high-level API (initramfs, status and preserve code), the man pages and weak-modules2's own
  // bundle (a third bin); a bundle of tests or fixtures would add megabytes.
  it('stays small: no bundle of tests or fixtures (tarball ≤ 1000 kB, unpacked ≤ 3.6 MB)', () => {
    expect(packed.size).toBeLessThanOrEqual(1000 * 1024);
    expect(packed.unpackedSize).toBeLessThanOrEqual(3.6 * 1024 * 1024);
  });

  it('has its licence and no @types/node (nor any build tool) among what it installs', () => {
    expect(PKG.license).toBe('GPL-2.0-or-later');
    expect(readFileSync(join(REPO, 'LICENSE'), 'utf8')).toContain('GNU GENERAL PUBLIC LICENSE\n                       Version 2, June 1991');
    const installed = { ...PKG.dependencies, ...PKG.optionalDependencies, ...Object.fromEntries(Object.entries(PKG.peerDependencies ?? {}).filter(([n]) => !PKG.peerDependenciesMeta?.[n]?.optional)) };
    expect(Object.keys(installed).filter((n) => n.startsWith('@types/') || ['typescript', 'esbuild', 'vitest'].includes(n))).toEqual([]);
  });
});

