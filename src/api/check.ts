import { checkModules, type CheckModulesOptions, type CheckResult } from '../compat/check.js';
import { KabiError } from '../errors.js';

/**
 * `kabi check`: judge each module file against every kernel installed under the root (or
 * the `kernels` named), as the kernel's module loader would (`semantics: 'depmod'` for what
 * depmod -e -E, and so weak-modules, decides). The modules are taken as installed together,
 * ahead of same-named modules of each kernel. One verdict per (module, kernel), with every
 * reason. A missing root (ROOT_NOT_FOUND), a root without kernels or an unknown kernel
 * (KERNEL_NOT_FOUND), or a module that cannot be read is a KabiError.
 */
export async function check(modules: readonly string[], opts: CheckModulesOptions = {}): Promise<CheckResult> {
  const result = await checkModules(modules, { semantics: 'loader', ...opts });
  if (result.kernels.length === 0) throw new KabiError('KERNEL_NOT_FOUND', `no kernels installed under ${opts.root ?? '/'}`);
  return result;
}
