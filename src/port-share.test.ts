import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { isPortRequest, PrimaryPorts, type PortPeer } from './port-share.ts';
import { freePort } from '../test/harness/gatehouse.ts';

const HOST = '127.0.0.1';

/**
 * A worker's end of the channel: the primary's answers, and the sockets handed to it (kept open, as a worker's TLS
 * server would, until the test closes them). `acks` false: the channel never confirms a send (a worker not reading).
 */
function worker(acks = true): PortPeer & { answers: unknown[]; sockets: net.Socket[]; connected: boolean } {
  const answers: unknown[] = [];
  const sockets: net.Socket[] = [];
  const peer = {
    answers, sockets, connected: true,
    send: (message: unknown, socket?: net.Socket, _options?: unknown, callback?: (err: Error | null) => void) => {
      if (socket === undefined) answers.push(message);
      else {
        sockets.push(socket);
        if (acks) setImmediate(() => callback?.(null));
      }
      return true;
    },
    isConnected: () => peer.connected,
  };
  return peer;
}

const listen = (id: number, gateway: string, port: number) => ({ gatehouse: 'port_listen', id, gateway, host: HOST, port }) as const;
const close = (gateway: string, port: number) => ({ gatehouse: 'port_close', gateway, host: HOST, port }) as const;

/** A connect to the port: 'refused' when nothing listens, 'open' once the TCP connection stands. */
function dial(port: number): Promise<{ outcome: 'refused' | 'open' | 'closed'; socket: net.Socket }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    socket.once('connect', () => resolve({ outcome: 'open', socket }));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ outcome: err.code === 'ECONNREFUSED' ? 'refused' : 'closed', socket }));
  });
}

async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = probe();
    if (value !== undefined) return value;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a port is bound once for a gateway; each worker running it is answered and takes its sockets in turn', { timeout: 10_000 }, async () => {
  const ports = new PrimaryPorts();
  const port = await freePort();
  const w1 = worker();
  const w2 = worker();
  ports.handle(w1, listen(1, 'gw-a', port));
  ports.handle(w2, listen(7, 'gw-a', port));
  await until('both answered', () => (w1.answers.length + w2.answers.length === 2 ? true : undefined));
  assert.deepEqual(w1.answers, [{ gatehouse: 'port_answer', id: 1, error: null }]);
  assert.deepEqual(w2.answers, [{ gatehouse: 'port_answer', id: 7, error: null }]);
  assert.deepEqual(ports.boundPorts(), [{ port, workers: 2 }]);
  const clients = await Promise.all([1, 2, 3, 4].map(() => dial(port)));
  await until('four handed off', () => (w1.sockets.length + w2.sockets.length === 4 ? true : undefined));
  assert.deepEqual([w1.sockets.length, w2.sockets.length], [2, 2], 'round robin');
  for (const s of [...w1.sockets, ...w2.sockets, ...clients.map((c) => c.socket)]) s.destroy();
  ports.handle(w1, close('gw-a', port));
  ports.handle(w2, close('gw-a', port));
  assert.deepEqual(ports.boundPorts(), []);
  assert.equal((await dial(port)).outcome, 'refused', 'the last worker out closes the port');
});

test('a second gateway on a bound port, or one worker twice, is refused EADDRINUSE; a bind error reaches the worker', { timeout: 10_000 }, async () => {
  const ports = new PrimaryPorts();
  const port = await freePort();
  const w1 = worker();
  const w2 = worker();
  ports.handle(w1, listen(1, 'gw-a', port));
  await until('bound', () => (w1.answers.length === 1 ? true : undefined));
  ports.handle(w2, listen(2, 'gw-b', port));
  ports.handle(w1, listen(3, 'gw-a', port));
  assert.equal((w2.answers[0] as { error: { code: string } }).error.code, 'EADDRINUSE');
  assert.equal((w1.answers[1] as { error: { code: string } }).error.code, 'EADDRINUSE');
  // Another process holds the port: the OS's own error, to every worker that asked.
  const taken = net.createServer();
  const other = await freePort();
  await new Promise<void>((resolve) => taken.listen(other, HOST, resolve));
  ports.handle(w2, listen(4, 'gw-c', other));
  const answer = await until('the bind error', () => w2.answers[1] as { id: number; error: { code: string } } | undefined);
  assert.deepEqual([answer.id, answer.error.code], [4, 'EADDRINUSE']);
  assert.deepEqual(ports.boundPorts(), [{ port, workers: 1 }]);
  taken.close();
  ports.handle(w1, close('gw-a', port));
});

test('a socket nobody can take is closed in the primary: a worker gone, or every worker too far behind', { timeout: 10_000 }, async () => {
  const refusals: string[] = [];
  const IN_FLIGHT = 16;
  const ports = new PrimaryPorts((event, reason) => refusals.push(`${event}: ${reason}`), IN_FLIGHT);
  const port = await freePort();
  const slow = worker(false);
  ports.handle(slow, listen(1, 'gw-a', port));
  await until('bound', () => (slow.answers.length === 1 ? true : undefined));
  const clients = [];
  for (let i = 0; i < IN_FLIGHT; i++) clients.push(await dial(port));
  await until('every socket handed off', () => (slow.sockets.length === IN_FLIGHT ? true : undefined));
  // One more than the worker's channel may hold unconfirmed: closed by the primary, not queued.
  const extra = await dial(port);
  await until('the extra one closed', () => (extra.socket.destroyed || extra.socket.readableEnded ? true : undefined));
  assert.equal(slow.sockets.length, IN_FLIGHT);
  assert.deepEqual(refusals, ['gateway_socket_refused: every worker of the gateway is behind on its sockets']);
  // The worker's channel is gone: nothing is handed to it.
  slow.connected = false;
  const late = await dial(port);
  await until('the late one closed', () => (late.socket.destroyed || late.socket.readableEnded ? true : undefined));
  assert.equal(slow.sockets.length, IN_FLIGHT);
  for (const s of [...slow.sockets, ...clients.map((c) => c.socket), extra.socket, late.socket]) s.destroy();
  ports.forget(slow);
  assert.deepEqual(ports.boundPorts(), [], 'a worker that exits leaves the port; nobody else runs it, so it closes');
});

test('the workers leave while the port is being bound: it closes once bound', { timeout: 10_000 }, async () => {
  const ports = new PrimaryPorts();
  const port = await freePort();
  const w1 = worker();
  ports.handle(w1, listen(1, 'gw-a', port));
  ports.handle(w1, close('gw-a', port)); // before the bind settles
  await sleep(50);
  assert.deepEqual(w1.answers, [], 'a worker that left is not answered');
  assert.deepEqual(ports.boundPorts(), []);
  assert.equal((await dial(port)).outcome, 'refused');
});

test('the primary checks a worker\'s message field by field', { timeout: 5_000 }, () => {
  assert.ok(isPortRequest(listen(1, 'gw', 1883)));
  assert.ok(isPortRequest(close('gw', 1883)));
  for (const bad of [null, 'x', { ...listen(1, 'gw', 1883), id: 'one' }, { ...listen(1, 'gw', 1883), port: 70_000 }, { ...close('gw', 1883), gateway: '' },
    { ...close('gw', 1883), host: 'h'.repeat(300) }, { ...listen(1, 'gw', 1883), gatehouse: 'port_socket' }]) {
    assert.equal(isPortRequest(bad), false, JSON.stringify(bad));
  }
});
