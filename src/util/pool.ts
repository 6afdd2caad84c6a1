/**
 * Map over items with at most `n` promises in flight, keeping order. Reading thousands of
 * small module files one await at a time leaves the libuv threadpool idle most of the time.
 */
export async function mapPool<T, R>(items: readonly T[], n: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  // After a failure nothing new is started: the call has failed, and a caller reading a
  // whole tree would otherwise read every remaining file before its error reached anyone.
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, n), items.length) }, worker));
  return out;
}
