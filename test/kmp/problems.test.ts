import { describe, expect, it } from 'vitest';
import { ABI, nvr, SuseSystem } from './suse-system.js';

/*
 * The four problems SUSE lists with KMPs, each shown under weak-modules2's rules and then
 * solved by the opt-in that addresses it. (test/hosts/suse/ runs the same scenarios with real
 * rpm transactions.)
 */

const O = '6.4.0-150600.21-default'; // the older kernel
const N = '6.4.0-150600.23-default'; // an update kernel, same kABI
const X = '6.4.0-150700.5-default'; // after a kABI break
const PRINTK_A = { printk: ABI.A[0].crc };
const PRINTK_B = { printk: ABI.B[0].crc };

describe('problem 1: compatibility is forward-only', () => {
  // A KMP built against the update kernel N may rely on what N fixed: wm2 links it into the
  // older O all the same, because its symbols resolve there.
  async function scenario(env: Record<string, string>) {
    const s = new SuseSystem({ [O]: 'A', [N]: 'A' });
    const p = s.kmp('foo', 'default', '1.0', N, { 'foo.ko': s.module(N, 'foo', PRINTK_A) });
    expect((await s.install(p, env)).status).toBe(0);
    // A kernel installed later gets it only if it is not older either.
    const M = '6.4.0-150600.19-default';
    s.addKernel(M, 'A');
    await s.wm2(['--add-kernel', M], { env });
    return { O: s.links(O), M: s.links(M) };
  }

  it('wm2 rules: the KMP built for N is linked into the older O', async () => {
    const r = await scenario({});
    expect(r.O).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${N}/updates/foo.ko` });
    expect(r.M).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${N}/updates/foo.ko` });
  });

  it('KABI_KMP_FORWARD_ONLY: never into a kernel older than the one it was built for', async () => {
    const r = await scenario({ KABI_KMP_FORWARD_ONLY: 'yes' });
    expect(r).toEqual({ O: {}, M: {} });
  });
});

describe('problem 2: two versions built for the same kernel cannot coexist', () => {
  it('wm2 layout: both install into /usr/lib/modules/K/updates: the second is a file conflict', async () => {
    const s = new SuseSystem({ [O]: 'A', [N]: 'A' });
    const v1 = s.kmp('foo', 'default', '1.0', O, { 'foo.ko': s.module(O, 'foo') });
    const v2 = s.kmp('foo', 'default', '2.0', O, { 'foo.ko': s.module(O, 'foo', { ...PRINTK_A, kfree: 0x2222 }) });
    await s.install(v1);
    await expect(s.install(v2)).rejects.toThrow(/conflicts with file from package foo-kmp-default-1.0-1/);
  });

  it('KABI_KMP_STORE: each version in its own directory; both installed, the newer linked, the older back when it goes', async () => {
    const s = new SuseSystem({ [O]: 'A', [N]: 'A' });
    const env = { KABI_KMP_STORE: 'yes' };
    const v1 = s.storeKmp('foo', 'default', '1.0', { 'foo.ko': s.module(O, 'foo') });
    const v2 = s.storeKmp('foo', 'default', '2.0', { 'foo.ko': s.module(O, 'foo', { ...PRINTK_A, kfree: 0x2222 }) });
    expect((await s.install(v1, env)).status).toBe(0);
    // A store KMP is linked into its own kernel too: nothing of it is in the kernel's tree.
    expect(s.links(O)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/1.0-1/updates/foo.ko' });
    const r = await s.install(v2, { ...env, WM2_VERBOSE: '1' });
    expect(r.status).toBe(0);
    expect(r.err).toContain(`Package ${nvr(v1)} replaced by package ${nvr(v2)} in kernel ${O}\n`);
    for (const k of [O, N]) expect(s.links(k)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/2.0-1/updates/foo.ko' });
    expect(s.db().map(nvr)).toEqual([nvr(v1), nvr(v2)]);
    await s.erase(nvr(v2), env);
    for (const k of [O, N]) expect(s.links(k)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/1.0-1/updates/foo.ko' });
    expect(s.modulesDep(O)).toContain('weak-updates/updates/foo.ko:');
  });

  it('without the opt-in, a store KMP has no modules weak-modules2 would link', async () => {
    const s = new SuseSystem({ [O]: 'A' });
    const v1 = s.storeKmp('foo', 'default', '1.0', { 'foo.ko': s.module(O, 'foo') });
    expect(await s.install(v1)).toMatchObject({ status: 0, err: `WARNING: ${nvr(v1)} does not contain any kernel modules\n` });
    expect(s.links(O)).toEqual({});
  });
});

describe('problem 3: a newer KMP built for N does not reach O, where an older one is installed', () => {
  it('wm2 rules: O keeps its own old version although the new one loads there', async () => {
    const s = new SuseSystem({ [O]: 'A', [N]: 'A' });
    await s.install(s.kmp('foo', 'default', '1.0', O, { 'foo.ko': s.module(O, 'foo') }));
    await s.install(s.kmp('foo', 'default', '2.0', N, { 'foo.ko': s.module(N, 'foo', { ...PRINTK_A, kfree: 0x2222 }) }));
    expect(s.links(O)).toEqual({});
    expect(s.modulesDep(O)).toMatch(/^updates\/foo\.ko:/m); // 1.0, its own
  });

  it('KABI_KMP_NEWEST (store KMPs): each kernel gets the newest version that loads there, whatever the order', async () => {
    const env = { KABI_KMP_STORE: 'yes', KABI_KMP_NEWEST: 'yes' };
    const s = new SuseSystem({ [O]: 'A', [N]: 'A', [X]: 'B' });
    const v1 = s.storeKmp('foo', 'default', '1.0', { 'foo.ko': s.module(O, 'foo') });
    const v2 = s.storeKmp('foo', 'default', '2.0', { 'foo.ko': s.module(N, 'foo', { ...PRINTK_A, kfree: 0x2222 }) });
    const v3 = s.storeKmp('foo', 'default', '3.0', { 'foo.ko': s.module(X, 'foo', { ...PRINTK_B, new_api: 0x3333 }) });
    // Newest first, then the older ones: order does not matter.
    await s.install(v3, env);
    await s.install(v1, env);
    const r = await s.install(v2, { ...env, WM2_VERBOSE: '1' });
    expect(r.err).toContain(`Package ${nvr(v1)} replaced by package ${nvr(v2)} in kernel ${O}\n`);
    expect(r.err).not.toContain(`Package ${nvr(v2)} does not need to be added to kernel ${O}\n`);
    expect(s.links(O)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/2.0-1/updates/foo.ko' });
    expect(s.links(N)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/2.0-1/updates/foo.ko' });
    expect(s.links(X)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/3.0-1/updates/foo.ko' });
    // A new kernel of the old kABI gets 2.0 too (3.0 does not load there).
    const M = '6.4.0-150600.30-default';
    s.addKernel(M, 'A');
    await s.wm2(['--add-kernel', M], { env });
    expect(s.links(M)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/2.0-1/updates/foo.ko' });
    // Erasing 2.0 puts 1.0 back where nothing newer loads.
    await s.erase(nvr(v2), env);
    expect(s.links(O)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/1.0-1/updates/foo.ko' });
    expect(s.links(X)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/3.0-1/updates/foo.ko' });
  });
});

describe('problem 4: a kABI break updates kernel and KMP together; the fallback kernel loses the driver', () => {
  async function scenario(env: Record<string, string>) {
    const s = new SuseSystem({ [O]: 'A' });
    const v1 = s.kmp('foo', 'default', '1.0', O, { 'foo.ko': s.module(O, 'foo') });
    await s.install(v1, env);
    // The update: kernel X (kABI break) and foo 2.0 built for it, `rpm -U` of the KMP.
    s.addKernel(X, 'B');
    await s.wm2(['--add-kernel', X], { env });
    const v2 = s.kmp('foo', 'default', '2.0', X, { 'foo.ko': s.module(X, 'foo', PRINTK_B) });
    const { post, postun } = await s.upgrade(nvr(v1), v2, env);
    expect([post.status, postun.status]).toEqual([0, 0]);
    return { s, v1, v2 };
  }

  it('wm2 rules: after the upgrade, O (the kernel to fall back to) has no foo at all', async () => {
    const { s } = await scenario({});
    expect(s.links(O)).toEqual({});
    expect(s.modulesDep(O)).not.toContain('foo.ko');
    expect(s.exists(`/run/regenerate-initrd/${O}`)).toBe(true); // and its initrd is rebuilt without it
  });

  it('KABI_KMP_KEEP_FALLBACK: O keeps 1.0 (a copy kabi kept) until O is removed', async () => {
    const env = { KABI_KMP_KEEP_FALLBACK: 'yes' };
    const { s, v1 } = await scenario(env);
    const copy = `/usr/lib/kabi/kmp/${nvr(v1)}/updates/foo.ko`;
    expect(s.links(O)).toEqual({ 'updates/foo.ko': copy });
    expect(s.modulesDep(O)).toContain('weak-updates/updates/foo.ko:');
    expect(s.links(X)).toEqual({});
    // The kernel goes: so do the copy and the directory it was kept in.
    s.removeKernelFiles(O);
    expect((await s.wm2(['--remove-kernel', O], { env })).status).toBe(0);
    expect(s.exists('/usr/lib/kabi/kmp')).toBe(false);
    expect(s.exists(`/usr/lib/modules/${O}`)).toBe(false);
  });

  it('KABI_KMP_KEEP_FALLBACK: erasing every version of the KMP takes the copy and its links with it', async () => {
    const env = { KABI_KMP_KEEP_FALLBACK: 'yes' };
    const { s, v2 } = await scenario(env);
    const r = await s.erase(nvr(v2), { ...env, WM2_VERBOSE: '1' });
    expect(r.status).toBe(0);
    expect(s.links(O)).toEqual({});
    expect(s.exists('/usr/lib/kabi/kmp')).toBe(false);
    expect(s.modulesDep(O)).not.toContain('foo.ko');
  });

  it('KABI_KMP_KEEP_FALLBACK: no copy is kept when the new version fits the old kernel too', async () => {
    const env = { KABI_KMP_KEEP_FALLBACK: 'yes' };
    const s = new SuseSystem({ [O]: 'A', [N]: 'A' });
    const v1 = s.kmp('foo', 'default', '1.0', O, { 'foo.ko': s.module(O, 'foo') });
    await s.install(v1, env);
    const v2 = s.kmp('foo', 'default', '2.0', N, { 'foo.ko': s.module(N, 'foo') });
    await s.upgrade(nvr(v1), v2, env);
    expect(s.links(O)).toEqual({ 'updates/foo.ko': `/usr/lib/modules/${N}/updates/foo.ko` });
    expect(s.exists('/usr/lib/kabi/kmp')).toBe(false);
  });
});

describe('KABI_KMP_POLICY=kabi (every opt-in, loader verdict)', () => {
  it('solves the four at once on one system', async () => {
    const env = { KABI_KMP_POLICY: 'kabi' };
    const s = new SuseSystem({ [O]: 'A', [N]: 'A' });
    const v1 = s.storeKmp('foo', 'default', '1.0', { 'foo.ko': s.module(O, 'foo') });
    const v2 = s.storeKmp('foo', 'default', '2.0', { 'foo.ko': s.module(N, 'foo', { ...PRINTK_A, kfree: 0x2222 }) });
    await s.install(v1, env);
    await s.install(v2, env);
    // forward-only: O keeps 1.0 (2.0 was built for the newer N); N gets 2.0.
    expect(s.links(O)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/1.0-1/updates/foo.ko' });
    expect(s.links(N)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/2.0-1/updates/foo.ko' });
    // kABI break: kernel X and 3.0 built for it; 1.0 and 2.0 erased by the upgrade; O and N keep theirs.
    s.addKernel(X, 'B');
    await s.wm2(['--add-kernel', X], { env });
    const v3 = s.storeKmp('foo', 'default', '3.0', { 'foo.ko': s.module(X, 'foo', PRINTK_B) });
    await s.install(v3, env);
    await s.erase(nvr(v2), env, true);
    await s.erase(nvr(v1), env, true);
    expect(s.links(X)).toEqual({ 'updates/foo.ko': '/usr/lib/kmp/foo-kmp-default/3.0-1/updates/foo.ko' });
    expect(s.links(N)).toEqual({ 'updates/foo.ko': `/usr/lib/kabi/kmp/${nvr(v2)}/updates/foo.ko` });
    expect(s.links(O)).toEqual({ 'updates/foo.ko': `/usr/lib/kabi/kmp/${nvr(v1)}/updates/foo.ko` });
  });
});
