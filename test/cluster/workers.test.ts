/**
 * GATEHOUSE_WORKERS (issue 16): `npm start` (dist/main.mjs) with 2 workers on nats-server and PostgreSQL. Devices
 * connecting through the one gateway port land on both workers (each worker records itself as the device's node,
 * `devices.online_node`, under its own node id `<node>-w1` / `<node>-w2`); a message crosses between them both ways;
 * a client id taken over from one worker by the other; a gateway stopped and started through the API stops and
 * listens on both; `kill -9` of a worker: the primary starts it again and devices reconnect; SIGTERM: every worker
 * closes cleanly and the primary exits 0. Then the primary's limits: a worker that cannot start (NATS unreachable)
 * ends the start with exit 1; a worker killed again and again right after each start makes the primary give up.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { runGatehouseExpectingExit, type GatehouseProcess } from '../harness/gatehouse-process.ts';
import { freePort } from '../harness/gatehouse.ts';
import { clusterSkip, TestCluster, waitFor, type GatewayJson } from '../harness/cluster.ts';
import { WebhookReceiver } from '../harness/webhook-receiver.ts';
import { issueDevice } from '../harness/pki.ts';

const HOST = '127.0.0.2';
type Node = GatehouseProcess & { dir: string };
interface ReadyJson { status: string; checks: Record<string, string>; gatewaysNotReady: { id: string; status: string }[] }

/** The pid a worker wrote into its own data directory (`workers/<index>/gatehouse.pid`), once it is there. */
async function workerPid(node: Node, index: number): Promise<number | undefined> {
  const text = await readFile(path.join(node.dir, 'workers', String(index), 'gatehouse.pid'), 'utf8').catch(() => '');
  return /^\d+\n$/.test(text) ? Number(text) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The primary's log (GATEHOUSE_LOG_LEVEL=info): records of one message. */
function primaryLog(node: Node, msg: string): Record<string, unknown>[] {
  return node.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r.role === 'primary' && r.msg === msg);
}

/** A restarted worker: a new pid, alive, that the primary saw become ready. */
function restarted(node: Node, index: number, oldPid: number): Promise<number> {
  return waitFor(`worker ${index} to run again`, async () => {
    const pid = await workerPid(node, index);
    if (pid === undefined || pid === oldPid || !alive(pid)) return undefined;
    return primaryLog(node, 'worker_ready').some((r) => r.worker === index && r.pid === pid) ? pid : undefined;
  }, 90_000);
}

/**
 * A device's first steps on a port: TCP, then a TLS ClientHello. How it ended: 'refused' (no listener), 'closed' (the
 * server closed or reset it, before or after the handshake), or 'held' when nothing ended it within 15 s.
 */
function knock(host: string, port: number): Promise<'refused' | 'closed' | 'held'> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false });
    let refused = false;
    const held = setTimeout(() => {
      socket.destroy();
      resolve('held');
    }, 15_000);
    socket.on('error', (err: NodeJS.ErrnoException) => (refused = err.code === 'ECONNREFUSED'));
    socket.on('close', () => {
      clearTimeout(held);
      resolve(refused ? 'refused' : 'closed');
    });
  });
}

if (clusterSkip !== undefined) {
  test('GATEHOUSE_WORKERS', { skip: clusterSkip, timeout: 1_000 }, () => {});
} else {
  describe('GATEHOUSE_WORKERS=2: one port, two cluster nodes (issue 16)', { timeout: 400_000 }, () => {
    const cluster = new TestCluster();
    let node: Node;
    let gateway: GatewayJson;
    const w1 = 'workers-w1';
    const w2 = 'workers-w2';

    /** New devices connected one after the other until both workers hold one; their names by worker. */
    async function onBothWorkers(options: mqtt.IClientOptions = {}, through: GatewayJson = gateway): Promise<{ w1: string[]; w2: string[]; clients: Map<string, mqtt.MqttClient> }> {
      const clients = new Map<string, mqtt.MqttClient>();
      for (let i = 0; i < 8; i++) {
        const device = await cluster.addDevice(node, through);
        clients.set(device, await cluster.connect(HOST, through, device, options));
        const held = await waitFor('the devices recorded online', async () => {
          const nodes = await cluster.onlineNodes(through);
          return [...clients.keys()].every((d) => typeof nodes.get(d) === 'string') ? nodes : undefined;
        });
        const on = (worker: string): string[] => [...clients.keys()].filter((d) => held.get(d) === worker);
        if (i >= 1 && on(w1).length > 0 && on(w2).length > 0) return { w1: on(w1), w2: on(w2), clients };
      }
      assert.fail('8 devices connected through one port all landed on one worker');
    }

    before(async () => {
      await cluster.setUp();
      // From source: the primary runs only in this child, and the suite's coverage of src/ counts what it runs.
      node = await cluster.startProcess('workers', HOST, { GATEHOUSE_WORKERS: '2', GATEHOUSE_LOG_LEVEL: 'info' }, { fromSource: true });
      assert.match(node.stdout(), /Gatehouse is running with 2 workers: console and API at http:\/\/127\.0\.0\.2:\d+/);
      gateway = await cluster.createGateway(node, 'workers_gw');
      await cluster.listening(HOST, gateway);
    }, { timeout: 120_000 });

    after(() => cluster.dispose(), { timeout: 90_000 });

    test('each worker is a node of its own: own node id, own data directory and message-path files, logs say which', { timeout: 30_000 }, async () => {
      for (const index of [1, 2]) {
        const dir = path.join(node.dir, 'workers', String(index));
        assert.ok(alive((await workerPid(node, index))!), `worker ${index} runs`);
        for (const file of ['identity.json', 'mqtt-state.db', 'uplink-journal.db']) assert.ok((await stat(path.join(dir, file))).isFile(), `${dir}/${file}`);
        const started = primaryLog(node, 'worker_ready').find((r) => r.worker === index);
        assert.equal(started?.nodeId, `workers-w${index}`);
      }
      // The primary serves nothing itself but holds the node's pid file (`gatehouse restore` refuses meanwhile).
      assert.equal(Number(await readFile(path.join(node.dir, 'gatehouse.pid'), 'utf8')), node.child.pid);
      const workerLines = node.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { worker?: unknown });
      assert.ok(workerLines.some((r) => r.worker === 1) && workerLines.some((r) => r.worker === 2), 'log lines name their worker');
    });

    /** Worker log records of one message (GATEHOUSE_LOG_LEVEL=info), by worker index. */
    function workerLog(msg: string): Record<string, unknown>[] {
      return node.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((r) => typeof r.worker === 'number' && r.msg === msg);
    }

    /** Edits the gateway's limits and waits until both workers' engines run with them. */
    async function setLimitsOnBoth(limits: Record<string, number>): Promise<void> {
      const before = workerLog('gateway_limits_applied').length;
      const r = await node.api('PATCH', `/gateways/${gateway.id}`, { limits });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor('both workers to apply the limits', () => {
        const applied = workerLog('gateway_limits_applied').slice(before).filter((l) => JSON.stringify(l.limits).includes(JSON.stringify(limits).slice(1, -1)));
        return new Set(applied.map((l) => l.worker)).size === 2 ? true : undefined;
      });
    }

    test('maxConnectionsPerAddress counts the machine: 4 devices from one address over both workers, a 5th refused before TLS; one closes, one more gets in (issue 12)', { timeout: 90_000 }, async () => {
      // A source address of its own: no other test's connection counts against it.
      const localAddress = '127.0.0.9';
      await setLimitsOnBoth({ maxConnectionsPerAddress: 4 });
      try {
        const held: mqtt.MqttClient[] = [];
        let refused = 0;
        /** One device connecting from `localAddress`: connected (held), or closed by the gateway before CONNACK. */
        const attempt = async (): Promise<boolean> => {
          const device = await cluster.addDevice(node, gateway);
          const client = await cluster.connect(HOST, gateway, device, { localAddress } as mqtt.IClientOptions).catch(() => null);
          if (client === null) refused++;
          else held.push(client);
          return client !== null;
        };
        // Round-robin alternates the workers: before the machine's count, each admitted 4 (8 in all).
        for (let i = 0; i < 8; i++) await attempt();
        assert.equal(held.length, 4, `connected from one address: ${held.length}, refused ${refused}`);
        assert.equal(refused, 4);
        const nodes = await waitFor('the held devices recorded online', async () => {
          const online = await cluster.onlineNodes(gateway);
          const names = held.map((c) => online.get(c.options.username!));
          return names.every((n) => typeof n === 'string') ? names : undefined;
        });
        assert.ok(nodes.includes(w1) && nodes.includes(w2), `the 4 connections span both workers: ${nodes.join(', ')}`);
        // The use an operator reads is the machine's, wherever the read lands: 4 from the address, not a worker's share.
        for (let i = 0; i < 2; i++) {
          const usage = (await node.api<{ limitsUsage: Record<string, { current: number | null }> }>('GET', `/gateways/${gateway.id}`)).json.limitsUsage;
          assert.equal(usage.maxConnectionsPerAddress!.current, 4, `read ${i}: limitsUsage`);
          const res = await fetch(`${node.url}/api/v1/metrics`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef', connection: 'close' } });
          assert.match(await res.text(), new RegExp(`^gatehouse_gateway_limit_use\\{gateway="${gateway.name}",limit="maxConnectionsPerAddress"\\} 4$`, 'm'), `scrape ${i}`);
        }
        // One closes: the machine's count drops (its worker tells the primary) and one more device gets in, once.
        await held.shift()!.endAsync(true);
        await waitFor('a device from the address admitted again', async () => ((await attempt()) ? true : undefined));
        assert.equal(held.length, 4);
        assert.equal(await attempt(), false, 'the cap holds again');
        for (const client of held) await client.endAsync(true);
      } finally {
        await setLimitsOnBoth({ maxConnectionsPerAddress: 1000 });
      }
    });

    test('/metrics answers for the machine wherever a scrape lands: both workers named, their connections summed, per-worker state labelled', { timeout: 90_000 }, async () => {
      const { w1: on1, w2: on2, clients } = await onBothWorkers();
      // Scrapes on fresh connections: the primary hands each to the next worker, so both workers answer some.
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${node.url}/api/v1/metrics`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef', connection: 'close' } });
        assert.equal(res.status, 200);
        const text = await res.text();
        for (const worker of [w1, w2]) {
          assert.match(text, new RegExp(`^gatehouse_node_info\\{node_id="${worker}"\\} 1$`, 'm'), `scrape ${i} names ${worker}`);
          assert.match(text, new RegExp(`^gatehouse_cluster_connected\\{node_id="${worker}"\\} 1$`, 'm'), `scrape ${i}: ${worker}'s own NATS state`);
          assert.match(text, new RegExp(`^gatehouse_event_loop_saturated\\{node_id="${worker}"\\} [01]$`, 'm'), `scrape ${i}: ${worker}'s own event loop`);
        }
        // Every device connected on either worker, in one series (a worker's own scrape would show its part).
        assert.match(text, new RegExp(`^gatehouse_gateway_connected_clients\\{gateway="${gateway.name}"\\} ${clients.size}$`, 'm'),
          `scrape ${i}: ${on1.length} + ${on2.length} devices`);
      }
      for (const client of clients.values()) await client.endAsync(true);
    });

    test('a gateway\'s parsing counters answer for the machine wherever the read lands: both workers\' failures counted', { timeout: 90_000 }, async () => {
      const token = { authorization: 'Bearer e2e-admin-token-0123456789abcdef', connection: 'close' };
      const patch = (dataParsing: Record<string, unknown>) => node.api('PATCH', `/gateways/${gateway.id}`, { dataParsing });
      assert.equal((await patch({ enabled: true, script: 'function transformPayload() { throw new Error("no frame"); }' })).status, 200);
      const { clients } = await onBothWorkers();
      try {
        // Each device publishes until one of its messages is stored as a parse failure: its worker runs the script.
        let published = 0;
        for (const [device, client] of clients) {
          await waitFor(`a parse failure of ${device} stored`, async () => {
            await client.publishAsync(`parse/${device}`, Buffer.from([1, 2, 3]), { qos: 1 });
            published++;
            const r = await node.api<{ items: unknown[] }>('GET', `/messages?gatewayId=${gateway.id}&deviceName=${device}&parseFailed=true&limit=1`);
            return r.json.items.length > 0 ? true : undefined;
          });
        }
        // Every message stored, so every one was parsed (or found no script yet) and counted: the counts hold still.
        await waitFor('every message stored', async () => {
          const r = await node.api<{ items: { topic: string }[] }>('GET', `/messages?gatewayId=${gateway.id}&limit=500`);
          return r.json.items.filter((m) => m.topic.startsWith('parse/')).length === published ? true : undefined;
        });
        // The machine's count of failures, from /metrics (every worker's summed); each read on a fresh connection
        // (the primary hands each to the next worker) must say the same, not the part of the worker it reached.
        const scrape = await (await fetch(`${node.url}/api/v1/metrics`, { headers: token })).text();
        const failed = Number(new RegExp(`^gatehouse_parsing_messages_total\\{gateway="${gateway.name}",result="failed"\\} (\\d+)$`, 'm').exec(scrape)?.[1]);
        assert.ok(failed >= clients.size, `failures counted: ${failed}`);
        for (let i = 0; i < 4; i++) {
          const res = await fetch(`${node.url}/api/v1/gateways/${gateway.id}/parsing`, { headers: token });
          assert.equal(res.status, 200);
          assert.deepEqual(await res.json(), { enabled: true, parsed: 0, failed, dropped: 0, shed: 0 }, `read ${i}`);
        }
      } finally {
        for (const client of clients.values()) await client.endAsync(true);
        assert.equal((await patch({ enabled: false })).status, 200);
      }
    });

    test('a webhook\'s delivery counters answer for the machine wherever the read lands: both workers\' deliveries counted', { timeout: 90_000 }, async () => {
      const receiver = new WebhookReceiver(cluster.pki);
      const hook = await node.api<{ id: string }>('POST', '/webhooks', {
        url: await receiver.listen(), caCertificate: cluster.pki.root.certPem, gatewayId: gateway.id, eventTypes: ['message'],
      });
      assert.equal(hook.status, 201, JSON.stringify(hook.json));
      const { clients } = await onBothWorkers();
      try {
        // Each device publishes until one of its messages reached the endpoint: its worker has loaded the webhook.
        let published = 0;
        for (const [device, client] of clients) {
          await waitFor(`a delivery of ${device}'s message`, async () => {
            await client.publishAsync(`hook/${device}`, `from ${device}`, { qos: 1 });
            published++;
            return receiver.deliveries.some((d) => d.body.includes(Buffer.from(`from ${device}`).toString('base64'))) ? true : undefined;
          });
        }
        const delivered = await waitFor('every delivery answered and counted', async () => {
          const r = await node.api<{ delivery?: { delivered: number; queued: number; inFlight: number } }>('GET', `/webhooks/${hook.json.id}`);
          const d = r.json.delivery;
          return d !== undefined && d.queued === 0 && d.inFlight === 0 && d.delivered === receiver.deliveries.length ? d.delivered : undefined;
        });
        assert.ok(delivered >= clients.size && delivered <= published, `delivered ${delivered} of ${published}`);
        // Each read on a fresh connection (the primary hands each to the next worker) says the machine's figure.
        for (let i = 0; i < 4; i++) {
          const res = await fetch(`${node.url}/api/v1/webhooks`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef', connection: 'close' } });
          const listed = (await res.json() as { items: { id: string; delivery?: { delivered: number } }[] }).items.find((w) => w.id === hook.json.id);
          assert.equal(listed?.delivery?.delivered, delivered, `read ${i}`);
        }
      } finally {
        for (const client of clients.values()) await client.endAsync(true);
        assert.equal((await node.api('DELETE', `/webhooks/${hook.json.id}`)).status, 204);
        receiver.close();
      }
    });

    test('a gateway\'s certificate checks (ocspStatus) answer for the machine wherever the read lands: both workers\' checks counted', { timeout: 90_000 }, async () => {
      const { pki } = cluster;
      const created = await node.api<GatewayJson>('POST', '/gateways', {
        name: 'workers_ocsp', port: await freePort(), authType: 'ONE_PARTY', x509: { enabled: true }, ocsp: { mode: 'CLIENT' },
        certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem, deviceRootCertificates: pki.caBundlePem },
      });
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const checked = created.json;
      try {
        await cluster.listening(HOST, checked);
        const { clients } = await onBothWorkers({ cert: pki.devices.good.chainPem, key: pki.devices.good.keyPem }, checked);
        for (const client of clients.values()) await client.endAsync(true);
        // One device whose certificate names no responder, refused on the worker it reaches: the warning is the machine's.
        const noResponder = await issueDevice(pki, 'workers-no-aia', { ocspUrl: null });
        const refused = await cluster.connect(HOST, checked, await cluster.addDevice(node, checked), { cert: noResponder.chainPem, key: noResponder.keyPem })
          .then(() => 0, (err: { code?: number }) => err.code);
        assert.equal(refused, 0x88);
        // Each read on a fresh connection (the next worker) counts every connection's check, not its worker's.
        for (let i = 0; i < 4; i++) {
          const res = await fetch(`${node.url}/api/v1/gateways/${checked.id}`, { headers: { authorization: 'Bearer e2e-admin-token-0123456789abcdef', connection: 'close' } });
          const view = await res.json() as { ocspStatus: { client: { checks: { good: number }; cacheSize: number } }; warnings: { code: string }[] };
          assert.equal(view.ocspStatus.client.checks.good, clients.size, `read ${i}`);
          assert.equal(view.ocspStatus.client.cacheSize, 2, `read ${i}: the certificate kept by each worker`);
          assert.ok(view.warnings.some((w) => w.code === 'GW_WARN_OCSP_NO_RESPONDER'), `read ${i}: ${JSON.stringify(view.warnings)}`);
        }
      } finally {
        assert.equal((await node.api('DELETE', `/gateways/${checked.id}`)).status, 204);
      }
    });

    /** GET /ready on a fresh connection (the primary hands each to the next worker); undefined if not answered within `waitMs`. */
    async function probeReady(waitMs = 20_000): Promise<{ status: number; json: ReadyJson } | undefined> {
      try {
        const res = await fetch(`${node.url}/ready`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(waitMs) });
        return { status: res.status, json: await res.json() as ReadyJson };
      } catch (error) {
        if ((error as Error).name === 'TimeoutError') return undefined;
        throw error;
      }
    }
    const machineReady: ReadyJson = { status: 'ready', checks: { storage: 'ok', gateways: 'ok', cluster: 'ok', workers: 'ok' }, gatewaysNotReady: [] };
    const workerMissing: ReadyJson = { status: 'not_ready', checks: { storage: 'ok', gateways: 'ok', cluster: 'ok', workers: 'error' }, gatewaysNotReady: [] };

    test('/ready answers for the machine wherever a probe lands: one worker stopped (SIGSTOP) and every answer is 503, workers error; continued, 200 again', { timeout: 90_000 }, async () => {
      for (let i = 0; i < 4; i++) assert.deepEqual(await probeReady(), { status: 200, json: machineReady }, `probe ${i}`);
      const stopped = (await workerPid(node, 2))!;
      process.kill(stopped, 'SIGSTOP');
      let answers: ({ status: number; json: ReadyJson } | undefined)[];
      try {
        // Four at once on four connections: the stopped worker's share waits (it cannot answer); the other worker's
        // answer once the primary's deadline for worker 2's checks has passed. Well under the 10 s node lease.
        answers = await Promise.all(Array.from({ length: 4 }, () => probeReady(6_000)));
      } finally {
        process.kill(stopped, 'SIGCONT');
      }
      const answered = answers.filter((a) => a !== undefined);
      assert.ok(answered.length > 0, 'the running worker answered');
      for (const answer of answered) assert.deepEqual(answer, { status: 503, json: workerMissing });
      // Continued, it answers the primary again: ready on every probe, both workers answering some.
      await waitFor('/ready 200 again', async () => ((await probeReady())?.status === 200 ? true : undefined), 30_000);
      for (let i = 0; i < 4; i++) assert.deepEqual(await probeReady(), { status: 200, json: machineReady }, `probe ${i} after SIGCONT`);
      assert.equal(node.child.exitCode, null, 'the primary runs on');
    });

    test('devices through one port land on both workers; QoS 0 and 1 cross between them both ways', { timeout: 90_000 }, async () => {
      const { w1: on1, w2: on2, clients } = await onBothWorkers();
      const pairs: [string, string][] = [[on1[0]!, on2[0]!], [on2[0]!, on1[0]!]];
      for (const [from, to] of pairs) {
        const subscriber = clients.get(to)!;
        const got: string[] = [];
        const listener = (topic: string, payload: Buffer): void => void got.push(`${topic} ${payload.toString()}`);
        subscriber.on('message', listener);
        await subscriber.subscribeAsync(`cross/${to}/#`, { qos: 1 });
        await clients.get(from)!.publishAsync(`cross/${to}/q0`, `from ${from}`, { qos: 0 });
        await clients.get(from)!.publishAsync(`cross/${to}/q1`, `from ${from}`, { qos: 1 });
        await waitFor(`${from} → ${to}`, () => (got.length === 2 ? true : undefined));
        assert.deepEqual(got.sort(), [`cross/${to}/q0 from ${from}`, `cross/${to}/q1 from ${from}`]);
        subscriber.off('message', listener);
      }
    });

    test('a client id connected on one worker is taken over by a CONNECT that lands on the other (v5 0x8E) [MQTT-3.1.4-3]', { timeout: 90_000 }, async () => {
      const device = await cluster.addDevice(node, gateway);
      let holder = await cluster.connect(HOST, gateway, device);
      let heldBy = await waitFor('the first connection recorded', async () => (await cluster.onlineNodes(gateway)).get(device) ?? undefined);
      // Round-robin sends the next connection to the other worker unless another came between: try a few times.
      for (let attempt = 0; attempt < 6; attempt++) {
        const reason = new Promise<number | undefined>((resolve) => holder.once('disconnect', (packet) => resolve(packet.reasonCode)));
        const next = await cluster.connect(HOST, gateway, device);
        assert.equal(await reason, 0x8e, 'the connection taken over is told 0x8E');
        const moved = await waitFor('the new connection recorded', async () => {
          const now = (await cluster.onlineNodes(gateway)).get(device);
          return now !== heldBy ? now : undefined;
        }, 3_000).catch(() => undefined);
        holder = next;
        if (moved !== undefined) {
          assert.ok(moved === w1 || moved === w2);
          assert.notEqual(moved, heldBy);
          // The new holder works: it gets what it subscribes to.
          await holder.subscribeAsync(`takeover/${device}`, { qos: 1 });
          const got = new Promise<string>((resolve) => holder.once('message', (_t, p) => resolve(p.toString())));
          const other = await cluster.connect(HOST, gateway, await cluster.addDevice(node, gateway));
          await other.publishAsync(`takeover/${device}`, 'after', { qos: 1 });
          assert.equal(await got, 'after');
          return;
        }
        heldBy = (await cluster.onlineNodes(gateway)).get(device) ?? heldBy;
      }
      assert.fail('no CONNECT of six landed on the other worker');
    });

    test('a gateway stopped through the API stops listening on both workers; started again, both take devices', { timeout: 90_000 }, async () => {
      const stopped = await node.api<{ status: string }>('POST', `/gateways/${gateway.id}/stop`);
      assert.equal(stopped.status, 200, JSON.stringify(stopped.json));
      // The primary keeps a gateway's port open while any worker runs the gateway: refused = stopped on both.
      await waitFor('the port closed on both workers', async () => {
        for (let i = 0; i < 4; i++) {
          const refused = await new Promise<boolean>((resolve) => {
            const socket = net.connect(gateway.port, HOST);
            socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
            socket.once('connect', () => {
              socket.destroy();
              resolve(false);
            });
          });
          if (!refused) return undefined;
        }
        return true;
      });
      const started = await node.api<{ status: string }>('POST', `/gateways/${gateway.id}/start`);
      assert.equal(started.status, 200, JSON.stringify(started.json));
      await cluster.listening(HOST, gateway);
      await onBothWorkers();
    });

    test('devices knocking as a gateway is deleted each get an answer: no socket is held by the primary with nobody to take it', { timeout: 120_000 }, async () => {
      // node:cluster's round-robin queued a socket whose handoff the last worker refused as it closed the port, on the
      // port's handle it had just closed: the device waited forever (6 of 12 connects right after a DELETE).
      const outcomes: string[] = [];
      for (let cycle = 0; cycle < 8; cycle++) {
        const doomed = await cluster.createGateway(node, `doomed_${cycle}_gw`);
        await cluster.listening(HOST, doomed);
        const device = await cluster.connect(HOST, doomed, await cluster.addDevice(node, doomed));
        await device.endAsync();
        assert.equal((await node.api('DELETE', `/gateways/${doomed.id}`)).status, 204);
        const knocks = Array.from({ length: 3 }, (_, i) => sleep(i * 50).then(() => knock(HOST, doomed.port)));
        outcomes.push(...await Promise.all(knocks));
      }
      // 'held': no close within 15 s (the CONNECT deadline is 10 s, and the workers apply a deletion within a second).
      assert.deepEqual(outcomes.filter((o) => o === 'held'), [], `outcomes: ${outcomes.join(', ')}`);
    });

    test('kill -9 of a worker: the primary starts it again, its devices reconnect, messages cross again', { timeout: 180_000 }, async () => {
      const { w1: on1, clients } = await onBothWorkers({ reconnectPeriod: 300, reconnectOnConnackError: true });
      const reconnected = on1.map((d) => new Promise<void>((resolve) => clients.get(d)!.once('close', () => clients.get(d)!.once('connect', () => resolve()))));
      const oldPid = (await workerPid(node, 1))!;
      process.kill(oldPid, 'SIGKILL');
      // Until the primary has started it again and it is ready (a 1 s back-off, then its whole start), the machine is not.
      // Probed once the primary knows it dead, so that the probe's connection is not handed to the dead worker.
      await waitFor('the primary to see the death', () => (primaryLog(node, 'worker_died').some((r) => r.pid === oldPid) ? true : undefined));
      assert.deepEqual(await probeReady(), { status: 503, json: workerMissing }, 'a worker dead or starting: the machine is not ready');
      await Promise.all(reconnected);
      const newPid = await restarted(node, 1, oldPid);
      await waitFor('/ready 200 once the restarted worker is ready', async () => ((await probeReady())?.status === 200 ? true : undefined), 30_000);
      assert.ok(primaryLog(node, 'worker_died').some((r) => r.worker === 1 && r.pid === oldPid && r.signal === 'SIGKILL'));
      assert.ok(primaryLog(node, 'gather_workers_missing').some((r) => r.topic === 'readiness' && JSON.stringify(r.missing) === '[1]'),
        'the primary\'s log says which worker /ready missed');
      assert.equal(node.child.exitCode, null, 'the primary runs on');
      // The restarted worker takes devices again (its node id is the same), and messages cross.
      const again = await onBothWorkers();
      assert.ok(alive(newPid));
      const sub = again.clients.get(again.w1[0]!)!;
      await sub.subscribeAsync('after-kill', { qos: 1 });
      const got = new Promise<string>((resolve) => sub.once('message', (_t, p) => resolve(p.toString())));
      await again.clients.get(again.w2[0]!)!.publishAsync('after-kill', 'crossed', { qos: 1 });
      assert.equal(await got, 'crossed');
    });

    test('SIGTERM: the primary forwards it, every worker closes cleanly, the primary exits 0', { timeout: 90_000 }, async () => {
      const pids = [(await workerPid(node, 1))!, (await workerPid(node, 2))!];
      for (const client of cluster.clients) client.end(true);
      await node.stop();
      assert.equal(await node.exited, 0, node.stderr());
      for (const pid of pids) assert.equal(alive(pid), false, `worker ${pid} ended`);
      // A worker removes its pid file only at the end of a clean close; the primary its own once all are gone.
      for (const index of [1, 2]) {
        await assert.rejects(stat(path.join(node.dir, 'workers', String(index), 'gatehouse.pid')), { code: 'ENOENT' });
      }
      await assert.rejects(stat(path.join(node.dir, 'gatehouse.pid')), { code: 'ENOENT' });
      assert.equal(primaryLog(node, 'worker_exited').filter((r) => r.code === 0).length, 2);
    });
  });

  describe('GATEHOUSE_WORKERS: the primary gives up rather than loop (issue 16)', { timeout: 300_000 }, () => {
    const cluster = new TestCluster();
    before(() => cluster.setUp(), { timeout: 30_000 });
    after(() => cluster.dispose(), { timeout: 90_000 });

    test('a worker that cannot start ends the start: exit 1, its reason on stderr, no restart', { timeout: 90_000 }, async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-node-'));
      const unreachable = `nats://127.0.0.1:${await freePort()}`;
      const run = await runGatehouseExpectingExit(dir, {
        ...cluster.env('noworkers', HOST, unreachable), GATEHOUSE_WORKERS: '2', GATEHOUSE_LOG_LEVEL: 'info',
      }, 80_000);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.match(run.stderr, /GW_ERR_CLUSTER_NATS_UNREACHABLE/);
      assert.match(run.stdout, /"msg":"worker_start_failed"/);
      assert.doesNotMatch(run.stdout, /Gatehouse is running/);
      assert.equal((run.stdout.match(/"msg":"worker_started"/g) ?? []).length, 1, 'worker 2 never started, worker 1 not again');
      await rm(dir, { recursive: true, force: true });
    });

    test('killed again and again within 30 s of each start, a worker is restarted with a back-off, then the primary gives up (exit 1)', { timeout: 240_000 }, async () => {
      const node = await cluster.startProcess('crashloop', HOST, { GATEHOUSE_WORKERS: '1', GATEHOUSE_LOG_LEVEL: 'info' }, { fromSource: true });
      let pid = (await workerPid(node, 1))!;
      for (let death = 1; death <= 4; death++) {
        process.kill(pid, 'SIGKILL');
        if (death === 4) break;
        pid = await restarted(node, 1, pid);
      }
      assert.equal(await node.exited, 1, node.stdout());
      const died = primaryLog(node, 'worker_died');
      assert.deepEqual(died.map((r) => r.restartInMs), [1_000, 2_000, 4_000]);
      const gaveUp = primaryLog(node, 'workers_giving_up');
      assert.equal(gaveUp.length, 1);
      assert.equal(gaveUp[0]!.deathsInARow, 4);
      assert.equal(alive(pid), false);
    });
  });
}
