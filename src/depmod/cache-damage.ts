/**
 * Thrown where the depmod cache turns out not to be what kabi wrote (a chunk failing its
 * CRC, a string table or number out of place), in the middle of a run that already builds
 * on it: runDepmod then starts over without the cache. Deliberately not a KabiError: the
 * module parsers take a KabiError for a broken module file and carry on without its data,
 * which would turn damage in the cache into wrong outputs.
 */
export class CacheDamaged extends Error {
  constructor(
    readonly file: string | undefined,
    detail: string,
  ) {
    super(file === undefined ? detail : `${file}: ${detail}`);
    this.name = 'CacheDamaged';
  }
}
