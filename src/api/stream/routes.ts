/**
 * GET /stream: server-sent events of device messages and online/offline events, filtered by gateway
 * and device, resumable with Last-Event-ID (from a bounded replay buffer). A client that cannot keep
 * up is disconnected rather than buffered without bound; it resumes from its last id.
 */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import type { ServerResponse } from 'node:http';
import { Type } from 'typebox';
import { GatehouseError } from '../../core/errors.ts';
import { eventMatches, type EventFilter, type Platform, type PlatformEvent } from '../../platform/index.ts';
import { errorResponses } from '../common-schemas.ts';

export interface StreamRoutesOptions {
  platform: Platform;
}

const HEARTBEAT_MS = 15_000;
const EVENT_TYPES = ['message', 'online', 'offline', 'connection'] as const;
/** Connection events only on request: consumers written before them keep the stream they knew. */
const DEFAULT_TYPES: PlatformEvent['type'][] = ['message', 'online', 'offline'];

const StreamQuery = Type.Object({
  gatewayId: Type.Optional(Type.String()),
  deviceName: Type.Optional(Type.String()),
  types: Type.Optional(Type.String({ description: 'Comma-separated: message, online, offline, connection (CONNECT outcomes and disconnects); default message, online, offline' })),
  lastEventId: Type.Optional(Type.String({ description: 'Same as the Last-Event-ID header' })),
});

function frame(event: PlatformEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

export const streamRoutes: FastifyPluginCallbackTypebox<StreamRoutesOptions> = (app, { platform }, done) => {
  const open = new Set<ServerResponse>();
  // Streams never end by themselves; without this, closing the server would wait for them forever.
  app.addHook('preClose', (hookDone) => {
    for (const res of open) res.end();
    hookDone();
  });

  app.get('/stream', {
    schema: {
      tags: ['messages'], summary: 'Live device messages and online/offline events (text/event-stream)',
      querystring: StreamQuery,
      response: {
        // Documents the stream (the route writes it itself, so nothing is serialized against this).
        200: {
          description: 'Server-sent events: each has an `id` (send it back as Last-Event-ID to resume), an `event` (message, online, '
            + 'offline, connection) and one `data` line of JSON; a `: keep-alive` comment comes every 15 s',
          content: { 'text/event-stream': { schema: Type.String() } },
        },
        ...errorResponses,
      },
    },
  }, (request, reply) => {
    const { gatewayId, deviceName, types, lastEventId } = request.query;
    let typeList: PlatformEvent['type'][] | undefined;
    if (types !== undefined) {
      typeList = types.split(',').map((t) => t.trim()) as PlatformEvent['type'][];
      if (typeList.length === 0 || !typeList.every((t) => (EVENT_TYPES as readonly string[]).includes(t))) {
        throw new GatehouseError('GW_ERR_VALIDATION', `types must be a comma-separated list of ${EVENT_TYPES.join(', ')}`, 'types');
      }
    }
    const filter: EventFilter = { gatewayId, deviceName, types: typeList ?? DEFAULT_TYPES };
    const header = request.headers['last-event-id'];
    const resumeFrom = (typeof header === 'string' ? header : undefined) ?? lastEventId;

    reply.hijack();
    const res = reply.raw;
    open.add(res);
    /** Writes the head and the replay, follows the hub; returns what ends it. */
    const start = (): (() => void) => {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': gatehouse stream\n\n');

      const limit = platform.options.streamClientQueue;
      const byteLimit = platform.options.streamClientBytes;
      let backlog = 0;
      const send = (text: string): void => {
        if (res.writableEnded) return;
        if (res.write(text)) return;
        // The socket is full: count what waits in Node's buffer, in events and in bytes (a thousand 1 MB
        // messages would otherwise wait in memory); a client that never drains is cut off.
        if (++backlog > limit || res.writableLength > byteLimit) {
          request.log.info({ backlog, bufferedBytes: res.writableLength }, 'stream_client_too_slow');
          res.destroy();
        }
      };
      res.on('drain', () => {
        backlog = 0;
      });

      // A resume replays what was kept after its id, on this node and the others (the reconnect may reach another node
      // or worker than the stream ran on): live events meanwhile wait behind the replay, each sent once.
      let waiting: PlatformEvent[] | null = resumeFrom !== undefined && resumeFrom !== '' ? [] : null;
      const unsubscribe = platform.hub.subscribe((event) => {
        if (!eventMatches(filter, event)) return;
        if (waiting !== null) waiting.push(event);
        else send(frame(event));
      });
      if (waiting !== null) {
        void platform.replayAfter(resumeFrom!, filter).then((replay) => {
          const sent = new Set<string>();
          for (const event of replay) {
            sent.add(event.id);
            send(frame(event));
          }
          for (const event of waiting ?? []) if (!sent.has(event.id)) send(frame(event));
          waiting = null;
        });
      }
      const heartbeat = setInterval(() => send(': keep-alive\n\n'), HEARTBEAT_MS);
      heartbeat.unref();
      return () => {
        unsubscribe();
        clearInterval(heartbeat);
      };
    };

    // On a cluster node the other nodes send their devices' events only while a stream is open here: the stream
    // starts once they know, so an event of another node's device published after the response began is in it.
    const others = platform.watchOthers();
    let stop = (): void => undefined;
    res.on('close', () => {
      stop();
      others.close();
      open.delete(res);
    });
    void others.ready.then(() => {
      if (res.destroyed || res.writableEnded) return;
      stop = start();
    });
  });

  done();
};
