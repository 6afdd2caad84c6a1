import { posix } from 'node:path';
import { withInTreeProviders } from '../compat/in-tree-providers.js';
import { loadKernelModel, ModuleCache, type LoadedKernelModel } from '../compat/kernel-model.js';
import type { Semantics } from '../compat/types.js';
import { KabiError } from '../errors.js';
import type { KabiFs } from '../fs.js';
import { nodeFs } from '../fs.js';
import { discoverKernels, runningRelease, type InstalledKernel } from '../kernel/discover.js';
import { hostPath, systemPathOf } from '../kernel/paths.js';
import { targetHost } from '../linker/validate.js';
import { moduleReleaseFromPath } from '../linker/weak-link-name.js';
import { readWeakUpdates } from '../linker/weak-updates-state.js';
import { isModuleFileName, moduleNameFromPath } from '../module/read-module.js';
import { isOutOfTree, isWeakLink, kernelCells, type JudgedCell, type LinkInfo } from './kernel-cells.js';
import { DKMS_TREE, listDkmsModules, listModuleFiles, readCopy, type CopyInput } from './sources.js';
import type { KernelColumn, ModuleCopy, ModuleRow, StatusReport } from './types.js';

/** What statusReport() and explainCell() read: the root, where module copies are kept (stores, DKMS tree), the rules to judge by. */
export interface StatusOptions {
  /** System root (default "/"). */
  root?: string;
  fs?: KabiFs;
  /** loader (default: what the kernel decides) or depmod (what weak-modules decides). */
  semantics?: Semantics;
  /** Module store directories (system paths) whose modules count as candidates for every kernel. */
  stores?: readonly string[];
  /** DKMS's tree (system path); default /var/lib/dkms. */
  dkmsTree?: string;
  /** The running kernel (default: uname -r when root is "/"). */
  running?: string;
  /** Called as work advances (for a progress indicator). */
  onProgress?: (label: string, done: number, total: number) => void;
}

/** Everything gathered for one kernel, kept for explanations. */
export interface KernelDetail {
  readonly kernel: InstalledKernel;
  readonly model: LoadedKernelModel;
  readonly cells: ReadonlyMap<string, JudgedCell>;
}

export interface StatusResult {
  readonly report: StatusReport;
  readonly details: ReadonlyMap<string, KernelDetail>;
}

/** Build the status report: every out-of-tree module × every installed kernel. Reads only. */
export async function statusReport(opts: StatusOptions = {}): Promise<StatusReport> {
  return (await collectStatus(opts)).report;
}

export async function collectStatus(opts: StatusOptions = {}): Promise<StatusResult> {
  const root = opts.root ?? '/';
  const fs = opts.fs ?? nodeFs;
  const semantics = opts.semantics ?? 'loader';
  const cache = new ModuleCache(fs);
  const progress = opts.onProgress ?? (() => undefined);
  const kernels = await discoverKernels({ root, fs });
  const running = opts.running ?? (await runningRelease(root));

  const byIdentity = new Map<string, ModuleCopy>();
  const copies: ModuleCopy[] = [];
  const identity = async (host: string) => {
    try {
      const st = await fs.stat(host);
      return `${st.dev}:${st.ino}`;
    } catch {
      return `path:${host}`;
    }
  };
  const addCopy = async (input: CopyInput): Promise<ModuleCopy> => {
    const id = await identity(input.host);
    const known = byIdentity.get(id);
    if (known) return known;
    const c = await readCopy(cache, input);
    byIdentity.set(id, c);
    copies.push(c);
    return c;
  };

  // Pass 1: each kernel's tree as modprobe sees it, and its weak-updates links.
  const perKernel: { kernel: InstalledKernel; model: LoadedKernelModel; notes: string[]; own: ModuleCopy[]; rawLinks: { link: string; target: string; host: string | undefined }[] }[] = [];
  // Reading each kernel, reading DKMS and stores, judging each kernel.
  const steps = 2 * kernels.length + 1;
  let step = 0;
  for (const k of kernels) {
    progress(`reading ${k.release}`, step++, steps);
    const model = await loadKernelModel(k, { fs, cache });
    const notes = [...model.notes];
    const own: ModuleCopy[] = [];
    for (const f of model.files) {
      if (!isOutOfTree(f) || isWeakLink(f)) continue;
      own.push(await addCopy({ path: f.path, host: f.host, origin: f.external ? 'external' : 'tree', kernel: k.release }));
    }
    const rawLinks: { link: string; target: string; host: string | undefined }[] = [];
    try {
      const wu = await readWeakUpdates(fs, root, k.moduleDir);
      for (const [link, target] of wu.links) {
        if (!isModuleFileName(link)) continue;
        let host: string | undefined;
        try {
          host = await targetHost(fs, root, link, target);
        } catch (e) {
          if (!(e instanceof KabiError)) throw e;
          notes.push(`${link}: ${e.detail}`);
        }
        rawLinks.push({ link, target, host });
      }
    } catch (e) {
      if (!(e instanceof KabiError)) throw e;
      notes.push(e.message);
    }
    perKernel.push({ kernel: k, model, notes, own, rawLinks });
  }

  progress('reading DKMS and module stores', step++, steps);
  for (const d of await listDkmsModules(fs, root, opts.dkmsTree ?? DKMS_TREE)) {
    await addCopy({ path: d.path, host: hostPath(root, d.path), origin: 'dkms', kernel: d.dkms.kernel, dkms: d.dkms });
  }
  for (const store of opts.stores ?? []) {
    for (const p of await listModuleFiles(fs, root, store)) await addCopy({ path: p, host: hostPath(root, p), origin: 'store' });
  }
  const linksOf = new Map<string, LinkInfo[]>();
  for (const pk of perKernel) {
    const infos: LinkInfo[] = [];
    for (const l of pk.rawLinks) {
      let copy: ModuleCopy | undefined;
      if (l.host !== undefined) {
        const sys = systemPathOf(root, l.host) ?? l.host;
        copy = await addCopy({ path: sys, host: l.host, origin: 'link-target', kernel: moduleReleaseFromPath(sys) });
      }
      infos.push({ name: moduleNameFromPath(l.link), link: l.link, target: l.target, copy });
    }
    linksOf.set(pk.kernel.release, infos);
  }

  const names = [...new Set([...copies.map((c) => c.name), ...[...linksOf.values()].flat().map((l) => l.name)])].sort();
  const details = new Map<string, KernelDetail>();
  const cellsByKernel = new Map<string, ReadonlyMap<string, JudgedCell>>();
  for (const pk of perKernel) {
    const release = pk.kernel.release;
    progress(`judging modules for ${release}`, step++, steps);
    const ownPaths = new Set(pk.own.map((c) => c.path));
    const group = <T extends { name: string }>(items: readonly T[]) => {
      const m = new Map<string, T[]>();
      for (const it of items) m.set(it.name, [...(m.get(it.name) ?? []), it]);
      return m;
    };
    // Every copy may be judged here, so every in-tree provider one of them uses is read.
    pk.model = await withInTreeProviders(pk.model, copies.flatMap((c) => (c.module ? [c.module] : [])), { cache, fs });
    const cells = kernelCells({
      release,
      model: pk.model,
      semantics,
      own: group(pk.own),
      links: group(linksOf.get(release) ?? []),
      elsewhere: group(copies.filter((c) => !ownPaths.has(c.path) && !(c.kernel === release && (c.origin === 'tree' || c.origin === 'external')))),
      names,
    });
    cellsByKernel.set(release, cells);
    details.set(release, { kernel: pk.kernel, model: pk.model, cells });
  }
  progress('done', steps, steps);

  const columns: KernelColumn[] = perKernel.map((pk) => ({
    release: pk.kernel.release,
    moduleDir: pk.kernel.moduleDir,
    running: pk.kernel.release === running,
    hasSymvers: pk.kernel.symvers !== undefined,
    notes: pk.notes,
  }));
  const rows: ModuleRow[] = names.map((name) => ({
    name,
    copies: copies.filter((c) => c.name === name).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    cells: perKernel.map((pk) => cellsByKernel.get(pk.kernel.release)!.get(name)!.cell),
  }));
  return { report: { root, semantics, running, kernels: columns, modules: rows }, details };
}

/** A store given on the command line may be a host path under the root; the report speaks system paths. */
export function storeSystemPath(root: string, store: string): string {
  if (root !== '/' && posix.isAbsolute(store)) {
    const sys = systemPathOf(root, store);
    if (sys !== undefined) return sys;
  }
  return store;
}
