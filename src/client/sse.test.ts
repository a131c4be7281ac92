/** The server-sent events reader the console and the CLI share: frames split anywhere across chunks, comments, defaults. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFrame, serverSentEvents, type ServerSentEvent } from './sse.ts';

/** A body that delivers `text` in the chunks given by cutting it at `cuts`. */
function body(text: string, cuts: number[]): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  const bounds = [0, ...cuts, bytes.length];
  return new ReadableStream({
    start(controller) {
      for (let i = 0; i + 1 < bounds.length; i++) controller.enqueue(bytes.slice(bounds[i], bounds[i + 1]));
      controller.close();
    },
  });
}

async function read(stream: ReadableStream<Uint8Array>): Promise<ServerSentEvent[]> {
  const events: ServerSentEvent[] = [];
  for await (const event of serverSentEvents(stream)) events.push(event);
  return events;
}

const TEXT = ': gatehouse stream\n\n'
  + 'id: 1\nevent: connection\ndata: {"reason":"BAD_CREDENTIALS","detail":"Ünïcode"}\n\n'
  + ': keep-alive\n\n'
  + 'id: 2\ndata: first line\ndata: second line\n\n'
  + 'event: online\ndata:{"deviceName":"d1"}\n\n';

const EXPECTED: ServerSentEvent[] = [
  { id: '1', type: 'connection', data: '{"reason":"BAD_CREDENTIALS","detail":"Ünïcode"}' },
  { id: '2', type: 'message', data: 'first line\nsecond line' },
  { id: '', type: 'online', data: '{"deviceName":"d1"}' },
];

test('events come whole however the body is cut, inside a UTF-8 character or between the two newlines', { timeout: 5_000 }, async () => {
  assert.deepEqual(await read(body(TEXT, [])), EXPECTED);
  const bytes = new TextEncoder().encode(TEXT).length;
  for (let cut = 1; cut < bytes; cut++) assert.deepEqual(await read(body(TEXT, [cut])), EXPECTED, `cut at byte ${cut}`);
  assert.deepEqual(await read(body(TEXT, Array.from({ length: bytes - 1 }, (_, i) => i + 1))), EXPECTED, 'one byte at a time');
});

test('a frame without data (a comment, a bare id) is no event; an unfinished last frame is not delivered', { timeout: 5_000 }, async () => {
  assert.equal(parseFrame(': keep-alive'), null);
  assert.equal(parseFrame('id: 7'), null);
  assert.deepEqual(await read(body('data: done\n\ndata: cut off', [])), [{ id: '', type: 'message', data: 'done' }]);
});
