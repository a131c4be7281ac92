/**
 * Server-sent events (GET /stream) read from a fetch body: EventSource cannot send the Authorization header,
 * so the console and the CLI both read the stream with fetch and share this parser. A stream stays outside
 * the typed request/answer calls: its answer is a body that never ends.
 */

/** One event: its `id:` (empty when it had none), `event:` (default `message`) and `data:` lines joined. */
export interface ServerSentEvent {
  id: string;
  type: string;
  data: string;
}

/** The event in one frame (the lines before a blank line); null for a comment or keep-alive without data. */
export function parseFrame(frame: string): ServerSentEvent | null {
  let id = '';
  let type = 'message';
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (name === 'id') id = value;
    else if (name === 'event') type = value;
    else if (name === 'data') data.push(value);
  }
  return data.length === 0 ? null : { id, type, data: data.join('\n') };
}

/** The events of a text/event-stream body as they arrive; ends with the body (or throws when it is aborted). */
export async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) !== -1) {
      const event = parseFrame(buffered.slice(0, end));
      buffered = buffered.slice(end + 2);
      if (event !== null) yield event;
    }
  }
}
