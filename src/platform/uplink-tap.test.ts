import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Broker, type ClientInfo, type Message } from '../broker/index.ts';
import { silentLogger } from '../core/logger.ts';
import { QuickJsRunner } from '../sandbox/index.ts';
import { GatewayParser } from './parser.ts';
import { UplinkTap, type Uplink } from './uplink-tap.ts';
import type { DevicePresence } from '../gateway/ports.ts';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';

const runner = new QuickJsRunner({ workers: 1, niceness: 10 });
after(() => runner.dispose(), { timeout: 30_000 });

const DEVICE: ClientInfo = {
  clientId: 'd1', username: 'd1', protocolVersion: 4, remoteAddress: '127.0.0.1',
  identity: { gatewayId: 'g1', productKey: 'p1', deviceName: 'd1' },
};

/** A PUBLISH whose payload is a view of a 64 KiB socket read, as the engine's framer hands it on. */
function publishFromRead(topic: string, bytes: string): Message {
  const read = Buffer.alloc(64 * 1024);
  const at = read.write(bytes, 1000);
  return { topic, payload: read.subarray(1000, 1000 + at), qos: 0, retain: false, properties: undefined, expiresAt: 0, senderId: 'd1' };
}

test('an uplink that waits for the parsing sandbox holds a copy of its payload, not the socket read it is a view of; one not parsed keeps the view', { timeout: 30_000 }, async () => {
  for (const enabled of [true, false]) {
    const broker = new Broker({ logger: silentLogger });
    const parser = new GatewayParser(runner, { timeoutMs: 1000, memoryMb: 8, maxPending: 10 }, silentLogger);
    const seen: Uplink[] = [];
    let resolveSeen = (): void => {};
    const whenSeen = new Promise<void>((resolve) => { resolveSeen = resolve; });
    const tap = new UplinkTap({ broker, config: { dataParsing: { enabled, script: 'function transformPayload(topic, bytes) { return { n: bytes.length }; }' } } }, parser, {
      uplink: (u) => {
        seen.push(u);
        resolveSeen();
      },
    });
    try {
      const message = publishFromRead('t/1', 'hello');
      broker.emit('message_published', message, DEVICE);
      await whenSeen;
      const [uplink] = seen;
      assert.equal(uplink!.payload.toString(), 'hello');
      if (enabled) {
        assert.deepEqual(uplink!.outcome, { ok: true, value: { n: 5 } });
        // Its own memory (Node's pool for small copies, whose slab size differs between versions), not the read's.
        assert.notEqual(uplink!.payload.buffer, message.payload.buffer, 'a copy, not a view of the socket read');
      } else {
        assert.equal(uplink!.outcome, null);
        assert.equal(uplink!.payload.buffer, message.payload.buffer, 'no wait, no copy');
      }
    } finally {
      tap.close();
      await broker.close();
    }
  }
});

test('presence is handed on in the engine\'s order with the device\'s uplinks, once recorded; an offline the registry did not record is not told', { timeout: 30_000 }, async () => {
  const broker = new Broker({ logger: silentLogger });
  const parser = new GatewayParser(runner, { timeoutMs: 1000, memoryMb: 8, maxPending: 10 }, silentLogger);
  let tell: (presence: DevicePresence) => void = () => undefined;
  const out: string[] = [];
  const tap = new UplinkTap({
    broker, config: { dataParsing: { enabled: false, script: null } },
    observePresence: (listener) => {
      tell = listener;
      return () => { tell = () => undefined; };
    },
  }, parser, {
    uplink: (u) => out.push(`${u.deviceName} ${u.topic}`),
    presence: (p) => out.push(`${p.identity.deviceName} ${p.type}`),
  });
  try {
    const identity = DEVICE.identity as DevicePresence['identity'];
    let recordOnline = (_recorded: boolean): void => undefined;
    const online: Promise<boolean> = new Promise((resolve) => { recordOnline = resolve; });
    tell({ type: 'online', identity, at: new Date(), clientAddress: '127.0.0.1', recorded: online });
    broker.emit('message_published', publishFromRead('t/1', 'a'), DEVICE);
    // The engine's event and the disconnect in one turn: the uplink is not drained yet when the offline comes.
    broker.emit('message_published', publishFromRead('t/2', 'b'), DEVICE);
    tell({ type: 'offline', identity, at: new Date(), clientAddress: null, recorded: Promise.resolve(false) });
    tell({ type: 'online', identity, at: new Date(), clientAddress: '127.0.0.1', recorded: Promise.resolve(true) });
    await setImmediatePromise();
    assert.deepEqual(out, [], 'everything waits for the first online\'s record');
    recordOnline(true);
    await setImmediatePromise();
    assert.deepEqual(out, ['d1 online', 'd1 t/1', 'd1 t/2', 'd1 online'], 'the unrecorded offline is left out, the order kept');
  } finally {
    tap.close();
    await broker.close();
  }
});
