// The code a user of the package writes, as files the install test puts in an empty project.

/**
 * One script, as an ES module (`import * as kabi`) or as CommonJS (`require('kabi')`): it reads
 * the fixture root given as its argument and prints what it saw as one JSON line.
 */
export function consumerScript(kind: 'esm' | 'cjs'): string {
  const body = `
  const root = process.argv[2];
  const out = {};
  const mod = await kabi.readModuleFile(root + '/opt/m.ko');
  const json = JSON.parse(JSON.stringify(mod));
  out.versions = json.versions;
  out.exportCrc = json.exports[0].crc;
  out.compressions = [];
  for (const f of ['m.ko.xz', 'm.ko.zst']) out.compressions.push((await kabi.readModuleFile(root + '/opt/' + f)).compression);
  const result = await kabi.checkModules([root + '/opt/m.ko', root + '/opt/bad.ko'], { root });
  out.verdicts = JSON.parse(JSON.stringify(result)).verdicts.map((v) => [v.name, v.kernel, v.compatible, v.reasons.filter((r) => r.severity === 'error').map((r) => r.message)]);
  try {
    kabi.readModule(new Uint8Array(16), { file: 'junk.ko' });
  } catch (e) {
    out.junk = [e instanceof kabi.KabiError, e.code, e.file];
  }
  try {
    await kabi.checkModules([root + '/opt/m.ko'], { root: root + '/missing' });
  } catch (e) {
    out.missingRoot = [kabi.isKabiError(e), e.code];
  }
  out.exportNames = Object.keys(kabi).sort();
`;
  if (kind === 'esm') {
    return `import * as kabi from 'kabi';
import { createRequire } from 'node:module';
${body}
out.sameModuleForRequire = createRequire(import.meta.url)('kabi').KabiError === kabi.KabiError;
console.log(JSON.stringify(out));
`;
  }
  return `'use strict';
const kabi = require('kabi');
(async () => {
${body}
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
`;
}

/**
 * TypeScript against the public types: options, results, their JSON form, errors. Compiled
 * with noEmit only; a type the package does not export, or a declaration file that does not
 * check, fails it.
 */
export function typedConsumer(kind: 'esm' | 'cjs'): string {
  if (kind === 'cjs') {
    return `import kabi = require('kabi');
export async function firstVerdict(path: string): Promise<kabi.Verdict | undefined> {
  const opts: kabi.CheckModulesOptions = { root: '/', semantics: 'depmod' };
  return (await kabi.checkModules([path], opts)).verdicts[0];
}
export const crc: string = kabi.formatCrc(0x1234n);
`;
  }
  return `import {
  checkModules,
  discoverKernels,
  formatCrc,
  isKabiError,
  KabiError,
  nodeFs,
  parseSymvers,
  planAddModules,
  readModuleFile,
  toJsonValue,
  type ApplyOptions,
  type CheckModulesOptions,
  type CheckResult,
  type DiscoverOptions,
  type InstalledKernel,
  type JsonOf,
  type KabiErrorCode,
  type KernelModule,
  type ModVersion,
  type Plan,
  type PlanOptions,
  type DepmodStepOptions,
  type ReadModuleFileOptions,
  type SymversTable,
  type Verdict,
} from 'kabi';

const discover: DiscoverOptions = { root: '/mnt/image', fs: nodeFs };
const kernels: InstalledKernel[] = await discoverKernels(discover);
const readOpts: ReadModuleFileOptions = { fs: nodeFs };
const mod: KernelModule = await readModuleFile('/tmp/m.ko', readOpts);
const first: ModVersion | undefined = mod.versions?.[0];
const crcInMemory: bigint | undefined = first?.crc;
const asJson: JsonOf<KernelModule> = JSON.parse(JSON.stringify(mod)) as JsonOf<KernelModule>;
const crcInJson: string | undefined = asJson.versions?.[0]?.crc;
// @ts-expect-error: in memory a CRC is a bigint, not the string of the JSON form
const wrong: string | undefined = first?.crc;

const checkOpts: CheckModulesOptions = { root: '/mnt/image', kernels: kernels.map((k) => k.release), semantics: 'loader', missingCrcPolicy: 'warn' };
const result: CheckResult = await checkModules(['/tmp/m.ko'], checkOpts);
const verdicts: readonly Verdict[] = result.verdicts;
const notes: JsonOf<CheckResult>['notes'] = (toJsonValue(result) as JsonOf<CheckResult>).notes;

const table: SymversTable = parseSymvers('0x00000001\\tprintk\\tvmlinux\\tEXPORT_SYMBOL\\t\\n');
const planOpts: PlanOptions = { root: '/mnt/image', semantics: 'loader', policy: { forwardOnly: true } };
const plan: Plan = await planAddModules(['/tmp/m.ko'], planOpts);
const apply: ApplyOptions = { lockTimeoutMs: 1000 };
const post: Partial<DepmodStepOptions> = { depmodMode: 'native', requireInstalled: false };

try {
  await checkModules([], { root: '/nonexistent' });
} catch (e) {
  if (isKabiError(e)) {
    const code: KabiErrorCode = e.code;
    const where: string | undefined = e.file;
    console.log(code, where, e instanceof KabiError);
  }
}
console.log(crcInMemory, crcInJson, wrong, verdicts.length, notes, table.size, plan.kernels.length, apply, post, formatCrc(1n));
`;
}
