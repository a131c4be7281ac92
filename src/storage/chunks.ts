/** Splitting many rows into statements that neither pass a row count nor hold the event loop with one huge write. */

/** Consecutive runs of `items`, each at most `maxRows` long and `maxBytes` in size (an item larger alone is a run of its own). */
export function chunksByRowsAndBytes<T>(items: readonly T[], maxRows: number, maxBytes: number, sizeOf: (item: T) => number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (current.length > 0 && (current.length >= maxRows || bytes + size > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
