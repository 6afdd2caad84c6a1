import { newestFirst, readKmp, type Kmp } from './kmp.js';
import { byKmp, settleKmp } from './newest-rules.js';
import { kernelFlavor, parseKmpName, type KmpName } from './nvr.js';
import { Planner, type KmpPlanOptions, type KmpSet } from './planner.js';
import type { KmpPlan, Wm2Mode } from './types.js';
import { addKmpWm2, removeKmpWm2, walkKmpsWm2 } from './wm2-rules.js';

export type { KmpPlanOptions } from './planner.js';

/**
 * Plan one weak-modules2 run: which links change in which kernel, which kernels get depmod and
 * the initrd step, what is printed. Reads the rpm database and the kernels' trees; writes
 * nothing. `arg` is the NVR (KMP modes) or kernel release (kernel modes); `stdin` the module
 * list --remove-kmp reads.
 */
export async function planKmp(mode: Wm2Mode, arg: string, stdin: string, opts: KmpPlanOptions): Promise<KmpPlan> {
  const p = await Planner.create(mode, opts);
  switch (mode) {
    case 'add-kmp':
      await addKmp(p, parseKmpName(arg));
      break;
    case 'remove-kmp':
      await removeKmp(p, parseKmpName(arg), stdin);
      break;
    case 'remove-kernel':
      await removeKernel(p, arg);
      break;
    default:
      await kernelChanged(p, arg);
  }
  return p.finish();
}

/** The package-name glob a KMP's versions are found with (all of the flavor when versions are grouped by family). */
function globFor(p: Planner, name: KmpName): string {
  return p.policy.newest ? `*-kmp-${name.flavor}` : `${name.basename}-kmp-${name.flavor}`;
}

function versionsOf(set: KmpSet, name: KmpName): Kmp[] {
  return set.kmps.filter((k) => k.family === name.family && k.flavor === name.flavor);
}

/**
 * A refused package among those looked at fails the run, as in weak-modules2. With versions
 * grouped by family every KMP of the flavor is read, but only this KMP's own versions count.
 */
function refusedFor(p: Planner, set: KmpSet, name: KmpName): boolean {
  if (!p.policy.newest) return set.refused.size > 0;
  return [...set.refused].some((nvr) => {
    const other = parseKmpName(nvr);
    return other.family === name.family && other.flavor === name.flavor;
  });
}

async function addKmp(p: Planner, name: KmpName): Promise<void> {
  const set = await p.kmps(globFor(p, name));
  if (refusedFor(p, set, name)) {
    p.failed = true;
    return;
  }
  const kmp = set.kmps.find((k) => k.nvr === name.nvr && k.origin === 'rpm');
  if (!kmp) {
    // Listed but not a KMP weak-modules2 handles (no modules, or built with the kernel): nothing to do.
    if (!set.listed.has(name.nvr)) {
      p.error(`ERROR: package ${name.nvr} is not installed`);
      p.failed = true;
    }
    return;
  }
  if (p.policy.newest) {
    const versions = versionsOf(set, name);
    for (const k of p.kernelsOf(name.flavor)) {
      const state = await p.state(k);
      const { before, chosen } = await settleKmp(p, state, versions);
      const kept = chosen?.nvr === kmp.nvr && before?.nvr === kmp.nvr;
      if (kept) p.log(`Package ${kmp.nvr} does not need to be added to kernel ${k.release}`);
      // Its own kernel got its files, used or not; where it was there already, as wm2 does.
      if (kept || (kmp.layout === 'tree' && kmp.buildRelease === k.release)) p.refreshFor(state, kmp);
    }
  } else {
    await addKmpWm2(p, kmp, set.kmps);
  }
  await settleCopies(p, set, name.flavor);
}

async function removeKmp(p: Planner, name: KmpName, stdin: string): Promise<void> {
  const set = await p.kmps(globFor(p, name));
  if (refusedFor(p, set, name)) {
    p.failed = true;
    return;
  }
  const r = await readKmp(name, undefined, stdin.split('\n'), 'stdin', p.kmpContext);
  if ('refusal' in r) {
    p.error(r.refusal.message);
    p.failed = true;
    return;
  }
  if ('warning' in r) {
    p.warn(r.warning);
    return;
  }
  const gone = r.kmp;
  // rpm may have erased the KMP's kernel before the KMP: nothing else would remove its directory.
  if (gone.layout === 'tree' && gone.buildRelease !== undefined && !p.kernels.some((k) => k.release === gone.buildRelease)) p.tidy.push(gone.buildRelease);
  if (p.policy.newest) {
    // On `rpm --reinstall` the package is still listed: it is not gone.
    const versions = versionsOf(set, name).filter((k) => !(k.origin === 'rpm' && k.nvr === gone.nvr));
    for (const k of p.kernelsOf(name.flavor)) await settleKmp(p, await p.state(k), versions, gone);
  } else {
    await removeKmpWm2(p, gone, set.kmps);
  }
  await settleCopies(p, set, name.flavor);
}

/** --add-kernel, --add-kernel-modules, --remove-kernel-modules: relink the kernel, then depmod and the initrd. */
async function kernelChanged(p: Planner, release: string): Promise<void> {
  const { kernel, hasModuleDir } = await p.kernel(release);
  const flavor = kernelFlavor(release);
  if (kernel.systemMap === undefined) {
    p.dlog('kernel_changed: kernel removed');
  } else if (!hasModuleDir) {
    p.dlog('kernel_changed: kernel without modules');
  } else {
    const set = await p.kmps(`*-kmp-${flavor}`);
    // weak-modules2 links nothing into the kernel when a KMP of its flavor is refused; kabi's
    // rule settles every other KMP.
    if (set.refused.size === 0 || p.policy.newest) {
      const state = await p.state(kernel);
      if (p.policy.newest) {
        for (const versions of byKmp(set.kmps).values()) await settleKmp(p, state, versions);
      } else {
        await walkKmpsWm2(p, state, set.kmps);
      }
      await settleCopies(p, set, flavor);
    }
  }
  p.refresh(release, '_kernel_');
}

/** --remove-kernel: its links go (then its emptied directories); copies only it used go too. */
async function removeKernel(p: Planner, release: string): Promise<void> {
  p.removedKernel = release;
  p.tidy.push(release);
  // Its files are gone by now: not an installed kernel any more, but its directory may remain.
  const { kernel } = await p.kernel(release);
  const state = await p.state(kernel);
  state.links = new Map();
  if (p.policy.keepFallback) {
    const set = await p.kmps(`*-kmp-${kernelFlavor(release)}`);
    await settleCopies(p, set, kernelFlavor(release));
  }
}

/**
 * keepFallback: keep a copy of each installed version that some kernel uses while a newer
 * version is installed (the newer one may not fit that kernel, and an upgrade is about to
 * erase the older); drop copies no kernel uses once their package is gone, and copies of KMPs
 * no version of which is installed (their links go with them).
 */
async function settleCopies(p: Planner, set: KmpSet, flavor: string): Promise<void> {
  if (!p.policy.keepFallback) return;
  const states = await Promise.all(p.kernelsOf(flavor).map((k) => p.state(k)));
  const installed = set.kmps.filter((k) => k.origin === 'rpm');
  const copies = set.kmps.filter((k) => k.origin === 'preserved');
  const usesAny = async (kmp: Kmp) => {
    for (const s of states) for (const m of kmp.modules) for (const l of s.links.keys()) if (await s.pointsAt(l, m)) return true;
    return false;
  };
  for (const c of copies) {
    if (!installed.some((k) => k.nvr === c.nvr) && !(await usesAny(c))) p.preserve.push({ kind: 'drop', kmp: c });
  }
  for (const x of installed) {
    if (copies.some((c) => c.nvr === x.nvr)) continue;
    if (!installed.some((y) => y.family === x.family && y.flavor === x.flavor && newestFirst(y, x) < 0)) continue;
    let used = false;
    for (const s of states) if (await s.isPresent(x)) used = true;
    if (used) p.preserve.push({ kind: 'keep', kmp: x });
  }
  // Copies of KMPs that are no longer installed at all: their links go now.
  for (const op of p.preserve) {
    if (op.kind !== 'drop') continue;
    for (const s of states) {
      let removed = false;
      for (const m of op.kmp.modules) {
        for (const l of [...s.links.keys()]) {
          if (await s.pointsAt(l, m)) {
            s.links.delete(l);
            removed = true;
          }
        }
      }
      if (removed) {
        p.log(`Package ${op.kmp.nvr} (the copy kabi kept) removed from kernel ${s.release}`);
        p.refreshFor(s, op.kmp);
      }
    }
  }
}
