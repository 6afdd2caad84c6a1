/** The CONFIG_ switches that change what the module loader accepts (kernel-module-abi.md §2.2). */
export interface LoaderConfig {
  /** undefined = unknown (no config file): the vermagic's `modversions` word decides instead. */
  readonly modversions: boolean | undefined;
  readonly forceLoad: boolean | undefined;
  readonly moduleSig: boolean | undefined;
  readonly moduleSigForce: boolean | undefined;
  readonly allowMissingNamespaceImports: boolean | undefined;
  readonly moduleDecompress: boolean | undefined;
  /** MODULE_COMPRESS_{GZIP,XZ,ZSTD} as 'gzip' | 'xz' | 'zstd'. */
  readonly moduleCompression: string | undefined;
  readonly livepatch: boolean | undefined;
  /** CONFIG_CC_VERSION_TEXT, which tells whose compiler (and so whose kernel) this is. */
  readonly compilerText: string | undefined;
}

/** Parse a kernel .config (`CONFIG_X=y`, `# CONFIG_X is not set`). */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    // Most lines are comments or blank; only two shapes matter.
    const c = line.charCodeAt(0);
    if (c !== 67 /* C */ && c !== 35 /* # */) continue;
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) {
      let v = m[2]!;
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
      out.set(m[1]!, v);
      continue;
    }
    const n = /^# (CONFIG_[A-Za-z0-9_]+) is not set/.exec(line);
    if (n) out.set(n[1]!, 'n');
  }
  return out;
}

export function loaderConfigFrom(config: Map<string, string> | undefined): LoaderConfig {
  const flag = (k: string) => (config === undefined ? undefined : config.get(k) === 'y');
  let compression: string | undefined;
  if (config) {
    if (config.get('CONFIG_MODULE_COMPRESS_XZ') === 'y') compression = 'xz';
    else if (config.get('CONFIG_MODULE_COMPRESS_ZSTD') === 'y') compression = 'zstd';
    else if (config.get('CONFIG_MODULE_COMPRESS_GZIP') === 'y') compression = 'gzip';
  }
  return {
    modversions: flag('CONFIG_MODVERSIONS'),
    forceLoad: flag('CONFIG_MODULE_FORCE_LOAD'),
    moduleSig: flag('CONFIG_MODULE_SIG'),
    moduleSigForce: flag('CONFIG_MODULE_SIG_FORCE'),
    allowMissingNamespaceImports: flag('CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS'),
    moduleDecompress: flag('CONFIG_MODULE_DECOMPRESS'),
    moduleCompression: compression,
    livepatch: flag('CONFIG_LIVEPATCH'),
    compilerText: config?.get('CONFIG_CC_VERSION_TEXT'),
  };
}
