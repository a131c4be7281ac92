/**
 * Lists the API pages by an opaque cursor: devices answer `{ items, nextCursor, total }`, connection events
 * `{ items, nextCursor }`. A page's `nextCursor` asks for the one after it; null on the last.
 */

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
  /** Everything that matches the query, on lists that count it (devices). */
  total?: number;
}

/**
 * Every item of a paged list, one page at a time: `fetchPage(cursor)` asks for the page after `cursor`
 * (undefined: the first). Stops at the page whose nextCursor is null.
 */
export async function* allItems<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>): AsyncGenerator<T> {
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    yield* page.items;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
}
