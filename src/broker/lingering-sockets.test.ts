import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { LingeringSockets } from './lingering-sockets.ts';

/** A connected pair on 127.0.0.1; the client side never ends its half. */
async function pair(): Promise<{ server: net.Server; serverSide: net.Socket; client: net.Socket }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection');
  const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const [serverSide] = (await accepted) as [net.Socket];
  return { server, serverSide, client };
}

test('a socket whose peer never closes is destroyed once its linger time is over, not before', { timeout: 5_000 }, async () => {
  const { server, serverSide, client } = await pair();
  const lingering = new LingeringSockets(150);
  serverSide.end();
  lingering.add(serverSide);
  assert.equal(lingering.size, 1);
  lingering.reap();
  assert.equal(serverSide.destroyed, false, 'destroyed before its deadline');
  await sleep(200);
  lingering.reap();
  assert.equal(serverSide.destroyed, true);
  assert.equal(lingering.size, 0);
  client.destroy();
  server.close();
});

test('destroyAll ends every socket still lingering', { timeout: 5_000 }, async () => {
  const { server, serverSide, client } = await pair();
  const lingering = new LingeringSockets(60_000);
  serverSide.end();
  lingering.add(serverSide);
  lingering.destroyAll();
  assert.equal(serverSide.destroyed, true);
  assert.equal(lingering.size, 0);
  client.destroy();
  server.close();
});
