/**
 * GET /stream read with fetch through the API client (EventSource cannot send the Authorization header), its
 * frames parsed by the client's shared reader. Reconnects with Last-Event-ID after a drop, so nothing in the
 * server's replay buffer is missed.
 */
import { serverSentEvents } from '../../src/client/index.ts';
import { api, ok, type StreamQuery } from './api.ts';

export interface StreamEvent { id: string; type: string; data: unknown }

export interface StreamHandle { close(): void }

export function openStream(query: StreamQuery, onEvent: (e: StreamEvent) => void, onState: (connected: boolean) => void): StreamHandle {
  const controller = new AbortController();
  let lastId: string | null = null;
  let closed = false;

  const run = async (): Promise<void> => {
    while (!closed) {
      try {
        const body = await ok(api.GET('/api/v1/stream', {
          params: { query },
          headers: { accept: 'text/event-stream', ...(lastId === null ? {} : { 'last-event-id': lastId }) },
          parseAs: 'stream',
          signal: controller.signal,
        }));
        if (body === null) throw new Error('the stream answered without a body');
        onState(true);
        for await (const event of serverSentEvents(body)) {
          if (event.id !== '') lastId = event.id;
          try {
            onEvent({ id: event.id, type: event.type, data: JSON.parse(event.data) });
          } catch {
            // A frame that is not JSON is not ours; skip it.
          }
        }
      } catch {
        if (closed) return;
      }
      onState(false);
      if (!closed) await new Promise((r) => setTimeout(r, 2000));
    }
  };
  void run();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}
