import { formatCrc } from './module/modversions.js';

/**
 * The JSON form of a kabi result, as `JSON.parse(JSON.stringify(result))` returns it: CRCs
 * (bigints in memory, kept at full width) become the `0x…` strings the CLI prints, Maps become
 * objects keyed by their keys, Sets become arrays, and methods are left out.
 */
export type JsonOf<T> = T extends bigint
  ? string
  : T extends { toJSON(): infer J }
    ? J
    : T extends ReadonlyMap<infer K, infer V>
      ? Record<K & string, JsonOf<V>>
      : T extends ReadonlySet<infer V>
        ? JsonOf<V>[]
        : T extends readonly (infer E)[]
          ? JsonOf<E>[]
          : T extends object
            ? { [K in keyof T as T[K] extends (...args: never[]) => unknown ? never : K]: JsonOf<T[K]> }
            : T;

/**
 * `value` made JSON-safe the way results' toJSON does it (see JsonOf). A value with a toJSON of
 * its own is returned as it is: JSON.stringify calls it.
 */
export function toJsonValue(value: unknown): unknown {
  if (typeof value === 'bigint') return formatCrc(value);
  if (value === null || typeof value !== 'object') return value;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value;
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) out[String(k)] = toJsonValue(v);
    return out;
  }
  if (value instanceof Set) return [...value].map(toJsonValue);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = toJsonValue(v);
  return out;
}

function resultToJSON(this: object): unknown {
  return toJsonValue({ ...this }); // the spread leaves out this (non-enumerable) toJSON
}

/**
 * Gives a result object a toJSON, so `JSON.stringify(result)` works although it holds bigint
 * CRCs or Maps. Non-enumerable: structured cloning (worker replies) and spreads skip it, and
 * it is not part of the result's data.
 */
export function withJsonForm<T extends object>(value: T): T {
  Object.defineProperty(value, 'toJSON', { value: resultToJSON, enumerable: false, writable: true, configurable: true });
  return value;
}
