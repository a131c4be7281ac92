/**
 * Reads a response body up to a byte limit, stopping (and destroying the stream) as soon as it is
 * passed: a service that answers with hundreds of megabytes costs at most `limit` bytes of memory,
 * whatever its Content-Length says or omits.
 */
import type { Readable } from 'node:stream';

/** The body as UTF-8 text, or null when it is longer than `limit` bytes. */
export async function readBounded(body: Readable, limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) {
      body.destroy();
      return null;
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}
