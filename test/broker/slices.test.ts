/**
 * SUBSCRIBE and UNSUBSCRIBE of many filters run in slices (src/broker/slices.ts): the event loop turns
 * between slices, so other connections are served while one client subscribes a thousand filters.
 * The slice clock is the test's own (one millisecond per look), so every filter past the first of a
 * slice ends it: how many turns passed is then a fact of the code, not of the machine's speed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { Broker, listen, type Listener } from '../../src/broker/index.ts';
import { setSliceClock } from '../../src/broker/slices.ts';

/** Counts event-loop turns (one setImmediate per turn) until stopped. */
function turnCounter(): { readonly turns: number; stop(): void } {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return { get turns() { return turns; }, stop() { running = false; } };
}

/** An engine whose slice clock moves 1 ms per look: every filter past a slice's first ends the slice. */
async function slicedEngine(t: { after(fn: () => unknown): void }): Promise<{ broker: Broker; listener: Listener }> {
  let now = 0;
  setSliceClock(() => (now += 1));
  t.after(() => setSliceClock(undefined));
  const broker = new Broker();
  const listener = await listen(broker, { host: '127.0.0.1', port: 0 });
  t.after(async () => { await broker.close(); await listener.close(); });
  return { broker, listener };
}

test('[MQTT-3.8.4-6] a SUBSCRIBE of 200 filters is handled over many turns, its SUBACK whole and in order; UNSUBSCRIBE too', { timeout: 20_000 }, async (t) => {
  const { broker, listener } = await slicedEngine(t);
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${listener.port}`, { clientId: 'many', protocolVersion: 5, reconnectPeriod: 0 });
  t.after(() => c.end(true));
  const filters = Array.from({ length: 200 }, (_, i) => `s/${i}/#`);
  const counter = turnCounter();
  t.after(() => counter.stop());
  const granted = await c.subscribeAsync(filters, { qos: 1 });
  const turns = counter.turns;
  counter.stop();
  assert.ok(turns >= 150, `handled over ${turns} turns (one filter a slice here)`);
  assert.deepEqual(granted.map((g) => g.topic), filters, 'one code per filter, in order');
  assert.ok(granted.every((g) => g.qos === 1));
  assert.equal(broker.router.subscriptionCount, 200);

  const got = new Promise<string>((resolve) => c.once('message', (topic) => resolve(topic)));
  await c.publishAsync('s/150/x', 'hit', { qos: 1 });
  assert.equal(await got, 's/150/x');

  const again = turnCounter();
  t.after(() => again.stop());
  await c.unsubscribeAsync(filters.slice(0, 120));
  const unsubscribeTurns = again.turns;
  again.stop();
  assert.ok(unsubscribeTurns >= 90, `UNSUBSCRIBE handled over ${unsubscribeTurns} turns`);
  assert.equal(broker.router.subscriptionCount, 80);
});

test('a client gone while its SUBSCRIBE is between slices leaves nothing behind', { timeout: 20_000 }, async (t) => {
  const { broker, listener } = await slicedEngine(t);
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${listener.port}`, { clientId: 'gone', clean: true, reconnectPeriod: 0 });
  c.subscribe(Array.from({ length: 500 }, (_, i) => `g/${i}`), { qos: 0 });
  await new Promise((r) => setTimeout(r, 20)); // part of it handled
  c.end(true);
  for (let i = 0; i < 200 && (broker.router.subscriptionCount > 0 || broker.getSession('gone') !== undefined); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(broker.getSession('gone'), undefined);
  assert.equal(broker.router.subscriptionCount, 0, 'no filter of the ended session stays in the router');
});
