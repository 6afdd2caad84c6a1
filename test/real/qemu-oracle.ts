// SPDX-License-Identifier: GPL-2.0-or-later
//
// The kernel itself as the oracle of the loader's verdict: boot a corpus kernel under
// qemu-system-x86_64 with a busybox initramfs that insmods modules and reports, for each, what
// the kernel said (insmod's status, and every kernel message about the module, from dmesg).
//
// One boot per kernel tests many "sets" (modules installed together: the test modules built for
// one kernel, or one DKMS package's build): for every module of a set, its providers from the
// same set are loaded first (what modprobe would do), then the module; modules that need a
// provider from their set are also tried alone. In-tree modules the sets depend on (their
// `depends=`, closed over the booted kernel's own modules) are loaded once at the start. After
// each case everything it loaded is removed again, so the next set starts from the same kernel.
//
// "Loaded" means the loader accepted the module: insmod succeeded, or the module's init function
// ran (the kernel is booted with initcall_debug, which logs "calling <init> [<module>]" before it)
// and failed for want of hardware. Results are cached under <cache>/qemu/, keyed by every input:
// the kernel's packages, busybox, the init script, and the bytes of every module in the image.
//
// KVM is used when /dev/kvm works (it can exist and still not run a guest, as in nested
// virtualisation: a first boot that shows no sign of life within 30 s falls back to TCG, and the
// finding is remembered for a day); KABI_QEMU_ACCEL=tcg|kvm forces one.

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { CorpusKernel } from './corpus.js';
import { normalizeName, type ModuleSet, type SetModule } from './module-sets.js';

/** Bump when the image or the way results are read changes (old cache entries are then ignored). */
const RECIPE = 1;
const BUSYBOX = '/bin/busybox';
const CMDLINE = 'console=ttyS0 loglevel=1 initcall_debug log_buf_len=4M panic=-1 nokaslr';

/** Modules installed together. */
export type OracleSet = Pick<ModuleSet, 'id' | 'modules'>;
type OracleModule = SetModule;

export interface OracleResult {
  readonly set: string;
  readonly module: string;
  /** together: the set's providers of this module loaded first; alone: nothing of the set loaded. */
  readonly mode: 'together' | 'alone';
  readonly providers: readonly { name: string; rc: number }[];
  /** The loader accepted the module (whether or not its init function then succeeded). */
  readonly loaded: boolean;
  readonly rc: number;
  /** What insmod printed. */
  readonly insmod: string;
  /** init's return value when it ran and failed. */
  readonly initReturned?: number;
  /** The kernel's messages about this module, in order, each once. */
  readonly messages: readonly string[];
}

export interface BootResult {
  readonly kernel: string;
  readonly key: string;
  readonly accel: 'kvm' | 'tcg';
  readonly seconds: number;
  readonly fromCache: boolean;
  /** In-tree modules loaded before the cases, in order, with insmod's status. */
  readonly inTree: readonly { name: string; rc: number }[];
  readonly results: readonly OracleResult[];
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The module's bytes, uncompressed (busybox's insmod hands them to init_module as they are). */
export function moduleBytes(file: string): Buffer {
  if (file.endsWith('.ko.xz')) return execFileSync('xz', ['-dc', file], { maxBuffer: 1 << 30 });
  if (file.endsWith('.ko.zst')) return execFileSync('zstd', ['-dcq', file], { maxBuffer: 1 << 30 });
  if (file.endsWith('.ko.gz')) return execFileSync('gzip', ['-dc', file], { maxBuffer: 1 << 30 });
  return readFileSync(file);
}

/** Depends of a module, as kmod's modinfo reads them, normalised. */
const dependsCache = new Map<string, string[]>();
function dependsOf(file: string): string[] {
  let d = dependsCache.get(file);
  if (!d) {
    const out = execFileSync('modinfo', ['-F', 'depends', file], { encoding: 'utf8' }).trim();
    d = out === '' ? [] : out.split(',').map((s) => normalizeName(s.trim())).filter(Boolean);
    dependsCache.set(file, d);
  }
  return d;
}

/** The kernel's own modules by name (modules.order), and its built-in ones (modules.builtin). */
function inTreeIndex(k: CorpusKernel): { files: Map<string, string>; builtin: Set<string> } {
  const ext = k.compression === 'xz' ? '.xz' : '';
  const files = new Map<string, string>();
  for (const l of readFileSync(join(k.moduleDir, 'modules.order'), 'utf8').split('\n')) {
    const rel = l.trim();
    if (rel === '') continue;
    const file = join(k.moduleDir, `${rel}${ext}`);
    if (existsSync(file)) files.set(normalizeName(basename(rel).replace(/\.ko$/, '')), file);
  }
  const builtin = new Set<string>();
  for (const l of readFileSync(join(k.moduleDir, 'modules.builtin'), 'utf8').split('\n')) {
    if (l.trim()) builtin.add(normalizeName(basename(l.trim()).replace(/\.ko$/, '')));
  }
  return { files, builtin };
}

function isStaticElf(file: string): boolean {
  const b = readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return false;
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) return false; // PT_INTERP
  return true;
}

interface Case {
  id: number;
  set: string;
  module: OracleModule;
  mode: 'together' | 'alone';
  providers: OracleModule[];
}

/** The set's modules `m` needs, deepest first (modprobe's order). */
function setProviders(m: OracleModule, set: OracleSet): OracleModule[] {
  const byName = new Map(set.modules.map((x) => [x.name, x]));
  const out: OracleModule[] = [];
  const seen = new Set<string>([m.name]);
  const visit = (x: OracleModule) => {
    for (const d of dependsOf(x.file)) {
      const p = byName.get(d);
      if (!p || seen.has(d)) continue;
      seen.add(d);
      visit(p);
      out.push(p);
    }
  };
  visit(m);
  return out;
}

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const INIT_PRELUDE = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
export PATH=/bin
echo "@@BOOTED $(uname -r)"
dmesg -n 1
# c ID NAME FILE [PROVIDER-NAME PROVIDER-FILE]...
c() {
  id=$1 name=$2 file=$3
  shift 3
  echo "@@CASE $id"
  dmesg -c >/dev/null
  loaded=
  while [ $# -gt 0 ]; do
    insmod "$2" >/tmp/e 2>&1
    r=$?
    echo "@@PROV $id $1 $r"
    [ $r = 0 ] && loaded="$1 $loaded"
    shift 2
  done
  dmesg -c >/dev/null
  insmod "$file" >/tmp/e 2>&1
  echo "@@RC $id $?"
  sed 's/^/@@ERR /' /tmp/e
  dmesg -c | sed 's/^/@@K /'
  if grep -q "^$name " /proc/modules; then rmmod "$name" || echo "@@STUCK $id $name"; fi
  for p in $loaded; do rmmod "$p" || echo "@@STUCK $id $p"; done
  echo "@@END $id"
}
`;

/** The image's files (path inside → bytes) and the init script. */
function composeImage(k: CorpusKernel, sets: readonly OracleSet[]): { files: Map<string, Buffer>; init: string; cases: Case[]; inTree: string[] } {
  const files = new Map<string, Buffer>();
  const index = inTreeIndex(k);
  const setNames = new Set<string>();
  for (const s of sets) for (const m of s.modules) setNames.add(m.name);

  // In-tree dependencies of every module of every set, deepest first.
  const inTree: string[] = [];
  const seen = new Set<string>();
  const visitInTree = (name: string) => {
    if (seen.has(name) || index.builtin.has(name)) return;
    seen.add(name);
    const file = index.files.get(name);
    if (!file) return; // not on this kernel: the loader will say which symbols are missing
    for (const d of dependsOf(file)) visitInTree(d);
    inTree.push(name);
  };
  for (const s of sets) {
    const mine = new Set(s.modules.map((m) => m.name));
    for (const m of s.modules) for (const d of dependsOf(m.file)) if (!mine.has(d)) visitInTree(d);
  }
  const lines = [INIT_PRELUDE];
  inTree.forEach((name, i) => {
    const at = `/d/${String(i).padStart(3, '0')}_${name}.ko`;
    files.set(at, moduleBytes(index.files.get(name)!));
    lines.push(`insmod ${at} >/tmp/e 2>&1; echo "@@DEP ${name} $?"; sed 's/^/@@ERR /' /tmp/e`);
  });
  lines.push('dmesg -c >/dev/null');

  const cases: Case[] = [];
  const where = new Map<OracleModule, string>();
  sets.forEach((s, si) => {
    for (const m of s.modules) {
      const at = `/m/${si}/${m.name}.ko`;
      files.set(at, moduleBytes(m.file));
      where.set(m, at);
    }
  });
  for (const s of sets) {
    for (const m of s.modules) {
      const providers = setProviders(m, s);
      cases.push({ id: cases.length, set: s.id, module: m, mode: 'together', providers });
      if (providers.length > 0) cases.push({ id: cases.length, set: s.id, module: m, mode: 'alone', providers: [] });
    }
  }
  for (const c of cases) {
    lines.push(['c', String(c.id), c.module.name, where.get(c.module)!, ...c.providers.flatMap((p) => [p.name, where.get(p)!])].map(sh).join(' '));
  }
  // The serial line lags behind the guest (poweroff -f would cut it off): the host stops the
  // guest once it has read @@DONE.
  lines.push('echo @@DONE', 'sleep 600', 'poweroff -f', '');
  return { files, init: lines.join('\n'), cases, inTree };
}

function writeCpio(files: Map<string, Buffer>, init: string, out: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'kabi-initramfs-'));
  try {
    for (const [p, bytes] of files) {
      mkdirSync(join(dir, p, '..'), { recursive: true });
      writeFileSync(join(dir, p), bytes);
    }
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin', 'busybox'), readFileSync(BUSYBOX), { mode: 0o755 });
    writeFileSync(join(dir, 'init'), init, { mode: 0o755 });
    execFileSync('sh', ['-c', 'find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible > "$0"', out], { cwd: dir });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface QemuRun {
  output: string;
  booted: boolean;
  done: boolean;
  timedOut: boolean;
  status: number | null;
}

function runQemu(k: CorpusKernel, initrd: string, accel: 'kvm' | 'tcg', timeoutMs: number, bootTimeoutMs: number): Promise<QemuRun> {
  const args = [
    '-accel', accel,
    ...(accel === 'kvm' ? ['-cpu', 'host'] : ['-cpu', 'max']),
    '-m', '1024', '-smp', '1', '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot',
    '-kernel', k.vmlinuz!, '-initrd', initrd, '-append', CMDLINE,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let booted = false;
    let timedOut = false;
    let done = false;
    child.stdout.setEncoding('latin1').on('data', (d: string) => {
      output += d;
      if (!booted && output.includes('@@BOOTED')) booted = true;
      if (!done && /^@@DONE\r?$/m.test(output)) {
        done = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('latin1').on('data', (d: string) => (output += d));
    const kill = () => {
      timedOut = true;
      child.kill('SIGKILL');
    };
    const total = setTimeout(kill, timeoutMs);
    const boot = setTimeout(() => !booted && kill(), bootTimeoutMs);
    child.on('error', (e) => {
      clearTimeout(total);
      clearTimeout(boot);
      reject(new Error(`cannot run qemu-system-x86_64: ${e.message} (package qemu-system-x86)`));
    });
    child.on('close', (status) => {
      clearTimeout(total);
      clearTimeout(boot);
      resolve({ output: output.replace(/\r/g, ''), booted, done, timedOut: timedOut && !done, status });
    });
  });
}

/** Whether KVM can run a guest here: forced by KABI_QEMU_ACCEL, else remembered, else to be tried. */
function kvmDecision(cacheDir: string): { accel: 'kvm' | 'tcg'; probe?: { file: string; host: string } } {
  const forced = process.env.KABI_QEMU_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg' };
  }
  const file = join(cacheDir, 'accel.json');
  const host = `${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()} ${execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0]}`;
  try {
    const seen = JSON.parse(readFileSync(file, 'utf8')) as { host: string; kvm: boolean; at: number };
    if (seen.host === host && Date.now() - seen.at < 24 * 3600_000) return { accel: seen.kvm ? 'kvm' : 'tcg' };
  } catch {
    /* not tried yet */
  }
  return { accel: 'kvm', probe: { file, host } };
}

/** The accelerator of this process's boots, once known (the first boot may have to find out). */
let accelDecided: Promise<'kvm' | 'tcg'> | undefined;

function parse(out: string, cases: readonly Case[], inTreeNames: readonly string[]): { inTree: BootResult['inTree']; results: OracleResult[]; stuck: string[] } {
  const inTree: { name: string; rc: number }[] = [];
  const byId = new Map<number, { providers: { name: string; rc: number }[]; rc?: number; err: string[]; kernel: string[]; ended: boolean }>();
  const stuck: string[] = [];
  let current: number | undefined;
  for (const line of out.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^@@DEP (\S+) (\d+)$/.exec(line))) inTree.push({ name: m[1]!, rc: Number(m[2]) });
    else if ((m = /^@@CASE (\d+)$/.exec(line))) {
      current = Number(m[1]);
      byId.set(current, { providers: [], err: [], kernel: [], ended: false });
    } else if ((m = /^@@PROV (\d+) (\S+) (\d+)$/.exec(line))) byId.get(Number(m[1]))?.providers.push({ name: m[2]!, rc: Number(m[3]) });
    else if ((m = /^@@RC (\d+) (\d+)$/.exec(line))) byId.get(Number(m[1]))!.rc = Number(m[2]);
    else if ((m = /^@@ERR (.*)$/.exec(line)) && current !== undefined) byId.get(current)!.err.push(m[1]!);
    else if ((m = /^@@K (?:\[[ \d.]+\] )?(.*)$/.exec(line)) && current !== undefined) byId.get(current)!.kernel.push(m[1]!);
    else if ((m = /^@@STUCK (\d+) (\S+)$/.exec(line))) stuck.push(`case ${m[1]}: ${m[2]} could not be removed`);
    else if ((m = /^@@END (\d+)$/.exec(line))) {
      byId.get(Number(m[1]))!.ended = true;
      current = undefined;
    }
  }
  if (inTree.length !== inTreeNames.length) throw new Error(`the guest reported ${inTree.length} of ${inTreeNames.length} in-tree modules`);
  const results = cases.map((c): OracleResult => {
    const r = byId.get(c.id);
    if (!r || !r.ended || r.rc === undefined) throw new Error(`the guest did not finish case ${c.id} (${c.set} ${c.module.name} ${c.mode})`);
    const name = c.module.name;
    // "calling  v4l2loopback_init+0x0/0x1000 [v4l2loopback] @ 85": init ran, so the loader accepted it.
    const calling = r.kernel.find((l) => l.startsWith('calling ') && l.includes(`[${name}]`));
    const returned = r.kernel.find((l) => l.startsWith('initcall ') && l.includes(`[${name}]`));
    const initReturned = returned ? Number(/ returned (-?\d+)/.exec(returned)?.[1]) : undefined;
    const messages = [...new Set(r.kernel.filter((l) => !/^(calling|initcall) /.test(l) && (l.startsWith(`${name}: `) || l.includes(` ${name}:`) || l.includes(`module ${name}`) || l.includes(`[${name}]`))))];
    return {
      set: c.set,
      module: name,
      mode: c.mode,
      providers: r.providers,
      loaded: r.rc === 0 || calling !== undefined,
      rc: r.rc,
      insmod: r.err.join('\n'),
      ...(r.rc !== 0 && initReturned !== undefined ? { initReturned } : {}),
      messages,
    };
  });
  return { inTree, results, stuck };
}

/**
 * Boot `k` (amd64, with a vmlinuz) and insmod every module of every set; cached by the exact
 * inputs in <cacheDir>/qemu/<krel>.json.
 */
export async function bootAndInsmod(k: CorpusKernel, sets: readonly OracleSet[], cacheRoot: string): Promise<BootResult> {
  if (!k.vmlinuz) throw new Error(`${k.krel} has no vmlinuz to boot`);
  if (!existsSync(BUSYBOX) || !isStaticElf(BUSYBOX)) throw new Error(`${BUSYBOX} must be a static busybox (package busybox-static)`);
  const cacheDir = join(cacheRoot, 'qemu');
  mkdirSync(cacheDir, { recursive: true });
  const { files, init, cases, inTree } = composeImage(k, sets);
  const key = sha256(
    JSON.stringify({
      RECIPE,
      CMDLINE,
      packages: k.packages,
      busybox: sha256(readFileSync(BUSYBOX)),
      init,
      files: [...files].map(([p, b]) => [p, sha256(b)]).sort(),
    }),
  );
  const cacheFile = join(cacheDir, `${k.krel}.json`);
  if (existsSync(cacheFile)) {
    const old = JSON.parse(readFileSync(cacheFile, 'utf8')) as BootResult;
    if (old.key === key) return { ...old, fromCache: true };
  }

  const work = mkdtempSync(join(tmpdir(), `kabi-qemu-${k.krel}-`));
  try {
    const initrd = join(work, 'initrd.cpio');
    writeCpio(files, init, initrd);
    const started = Date.now();
    let run: QemuRun | undefined;
    if (accelDecided === undefined) {
      const d = kvmDecision(cacheDir);
      if (d.probe) {
        // This boot finds out; concurrent ones wait for its answer.
        const probe = d.probe;
        let answer!: (a: 'kvm' | 'tcg') => void;
        accelDecided = new Promise((resolve) => (answer = resolve));
        run = await runQemu(k, initrd, 'kvm', 600_000, 30_000).catch((e: unknown) => {
          answer('tcg');
          throw e;
        });
        writeFileSync(probe.file, `${JSON.stringify({ host: probe.host, kvm: run.booted, at: Date.now() })}\n`);
        if (!run.booted) {
          console.warn(`qemu: /dev/kvm is there but a KVM guest showed no sign of life in 30 s; using TCG (remembered in ${probe.file})`);
          run = undefined;
        }
        answer(run ? 'kvm' : 'tcg');
      } else accelDecided = Promise.resolve(d.accel);
    }
    const accel = await accelDecided;
    run ??= await runQemu(k, initrd, accel, accel === 'kvm' ? 300_000 : 1_200_000, accel === 'kvm' ? 60_000 : 180_000);
    const tail = run.output.split('\n').slice(-40).join('\n');
    if (!run.done) throw new Error(`booting ${k.krel} under qemu (${accel}) did not finish${run.timedOut ? ' in time' : ` (exit ${run.status})`}:\n${tail}`);
    const parsed = parse(run.output, cases, inTree);
    if (parsed.stuck.length > 0) throw new Error(`${k.krel}: modules stayed loaded and would falsify later cases: ${parsed.stuck.join('; ')}`);
    const result: BootResult = { kernel: k.krel, key, accel, seconds: (Date.now() - started) / 1000, fromCache: false, inTree: parsed.inTree, results: parsed.results };
    writeFileSync(`${cacheFile}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
    execFileSync('mv', ['-f', `${cacheFile}.tmp`, cacheFile]);
    writeFileSync(join(cacheDir, `${k.krel}.console.log`), run.output);
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
