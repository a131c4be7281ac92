/**
 * GET /stream read with fetch (EventSource cannot send the Authorization header). Reconnects with
 * Last-Event-ID after a drop, so nothing in the server's replay buffer is missed.
 */
import { API, getToken } from './api.ts';

export interface StreamEvent { id: string; type: string; data: unknown }

export interface StreamHandle { close(): void }

export function openStream(query: Record<string, string>, onEvent: (e: StreamEvent) => void, onState: (connected: boolean) => void): StreamHandle {
  const controller = new AbortController();
  let lastId: string | null = null;
  let closed = false;

  const run = async (): Promise<void> => {
    while (!closed) {
      try {
        const params = new URLSearchParams(query);
        const headers: Record<string, string> = { accept: 'text/event-stream', authorization: `Bearer ${getToken() ?? ''}` };
        if (lastId !== null) headers['last-event-id'] = lastId;
        const res = await fetch(`${API}/stream?${params.toString()}`, { headers, signal: controller.signal });
        if (!res.ok || res.body === null) throw new Error(`stream answered ${res.status}`);
        onState(true);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) !== -1) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let id = '';
            let type = 'message';
            const data: string[] = [];
            for (const line of frame.split('\n')) {
              if (line.startsWith(':')) continue;
              const colon = line.indexOf(':');
              const name = colon === -1 ? line : line.slice(0, colon);
              const val = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (name === 'id') id = val;
              else if (name === 'event') type = val;
              else if (name === 'data') data.push(val);
            }
            if (data.length === 0) continue;
            if (id !== '') lastId = id;
            try {
              onEvent({ id, type, data: JSON.parse(data.join('\n')) });
            } catch {
              // A frame that is not JSON is not ours; skip it.
            }
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
