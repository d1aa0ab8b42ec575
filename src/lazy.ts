/**
 * `make()`'s value, made at the first call and kept. For what a start need not set up before its
 * first hooks: an LRU allocates its slots when made, tens of ms for the publisher table's 200,000.
 */
export function lazy<T extends object> (make: () => T): () => T {
  let value: T | undefined
  return () => (value ??= make())
}
