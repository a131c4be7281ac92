/**
 * `gatehouse events tail --gateway <name>` and `events list` against a whole Gatehouse (issue 14): the
 * CLI finds the API from GATEHOUSE_HTTP_HOST / GATEHOUSE_HTTP_PORT as the server reads them, names the
 * gateway by name, prints the stored events, then shows a refusal of a real MQTT.js client live.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import mqtt from 'mqtt';
import { registerEventCommands } from '../../src/cli/event-commands.ts';
import { freePort, removeDataDir, startTestGatehouse, TEST_ADMIN_TOKEN, type TestGatehouse } from '../harness/gatehouse.ts';
import { getPki, type SharedPki } from '../harness/pki.ts';

interface GatewayJson { id: string; name: string; port: number; productKey: string; status: string }

let pki: SharedPki;
let gh: TestGatehouse;
let gateway: GatewayJson;

before(async () => {
  pki = await getPki();
  gh = await startTestGatehouse();
  gateway = (await gh.api<GatewayJson>('POST', '/gateways', {
    name: 'cli_events', port: await freePort(), certificates: { serverCertificateChain: pki.server.chainPem, serverPrivateKey: pki.server.keyPem },
  })).json;
  assert.equal(gateway.status, 'RUNNING');
}, { timeout: 60_000 });

after(async () => {
  await gh.stop();
  await removeDataDir(gh.dataDir);
}, { timeout: 30_000 });

/** Runs `gatehouse <args>` in-process with the environment an operator's shell would have on the server. */
async function gatehouse(args: string[], onOut: (line: string) => void = () => {}): Promise<{ out: string[]; err: string[]; code: number }> {
  const url = new URL(gh.gatehouse.url);
  const out: string[] = [];
  const err: string[] = [];
  let code = 0;
  const program = new Command('gatehouse').exitOverride();
  registerEventCommands(program, {
    out: (text) => {
      out.push(text);
      onOut(text);
    },
    err: (text) => err.push(text),
    env: { GATEHOUSE_HTTP_HOST: url.hostname, GATEHOUSE_HTTP_PORT: url.port, GATEHOUSE_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
    setExitCode: (c) => {
      code = c;
    },
  });
  await program.parseAsync(['node', 'gatehouse', ...args]);
  return { out, err, code };
}

/** A CONNECT with a username no device has: refused 0x86. */
function strangerAttempt(clientId: string, username = 'cli-stranger'): Promise<void> {
  const client = mqtt.connect({
    host: '127.0.0.1', port: gateway.port, protocol: 'mqtts', ca: pki.root.certPem, servername: 'localhost', reconnectPeriod: 0,
    protocolVersion: 5, clientId, username, password: 'pw-secret-cli',
  });
  return new Promise<void>((resolve) => {
    client.once('error', () => resolve());
    client.once('connect', () => resolve());
    client.once('close', () => resolve());
  }).then(() => {
    client.end(true);
  });
}

test('events tail --gateway <name> prints the stored events, then a refusal live; events list filters by reason', { timeout: 60_000 }, async () => {
  await strangerAttempt('c-cli-stored');
  // Stored before the tail starts: it is in the backlog (the API answers after writing what is pending).
  const listed = await gatehouse(['events', 'list', '--gateway', 'cli_events', '--reason', 'UNKNOWN_DEVICE', '--json']);
  assert.equal(listed.code, 0, listed.err.join('\n'));
  const page = JSON.parse(listed.out.join('\n')) as { items: { clientId: string; reason: string; gatewayId: string }[] };
  assert.deepEqual(page.items.map((e) => [e.clientId, e.reason, e.gatewayId]), [['c-cli-stored', 'UNKNOWN_DEVICE', gateway.id]], listed.out.join('\n'));

  let headerSeen!: () => void;
  const header = new Promise<void>((resolve) => {
    headerSeen = resolve;
  });
  const tail = gatehouse(['events', 'tail', '--gateway', 'cli_events', '--lines', '5', '--exit-after', '1'], (line) => {
    if (line.startsWith('AT')) headerSeen();
  });
  await header; // the stream is open once the header is printed
  let done = false;
  void tail.then(() => {
    done = true;
  });
  // Each attempt a new client id: repeats of one key are folded into a stored row, not sent again live.
  for (let i = 0; !done && i < 40; i++) {
    await strangerAttempt(`c-cli-live-${i}`);
    await Promise.race([tail, new Promise((r) => setTimeout(r, 250))]);
  }
  const { out, err, code } = await tail;
  // What the tail printed goes with each failure: a flaky run on a loaded CI machine must say what it saw.
  const printed = `\n--- printed:\n${out.join('\n')}\n--- errors:\n${err.join('\n')}`;
  assert.equal(code, 0, printed);
  assert.match(out[0] ?? '', /^AT\s+TYPE\s+REASON\s+SENT\s+CLIENT ID\s+USERNAME/, printed);
  assert.match(out[1] ?? '', /CONNECT_REFUSED\s+UNKNOWN_DEVICE\s+0x86\s+c-cli-stored\s+cli-stranger/, `the stored event first${printed}`);
  assert.match(out[out.length - 1] ?? '', /CONNECT_REFUSED\s+UNKNOWN_DEVICE\s+0x86\s+c-cli-live-\d+\s+cli-stranger/, `then the live one${printed}`);
  assert.ok(!out.join('\n').includes('pw-secret-cli'));
});

test('events tail --json prints one event per line; an unknown gateway name is an error naming it', { timeout: 60_000 }, async () => {
  // Filtered by username (which /stream cannot filter on): the CLI drops the others.
  const tail = gatehouse(['events', 'tail', '--gateway', gateway.id, '--lines', '0', '--exit-after', '1', '--json', '--username', 'cli-json-user']);
  let done = false;
  void tail.then(() => {
    done = true;
  });
  for (let i = 0; !done && i < 40; i++) {
    await strangerAttempt(`c-cli-other-${i}`); // filtered out: another username
    await strangerAttempt(`c-cli-json-${i}`, 'cli-json-user');
    await Promise.race([tail, new Promise((r) => setTimeout(r, 250))]);
  }
  const { out, code } = await tail;
  assert.equal(code, 0);
  assert.equal(out.length, 1);
  const event = JSON.parse(out[0]!) as { clientId: string; username: string; reason: string; mqttReasonCode: number };
  assert.deepEqual([event.username, event.reason, event.mqttReasonCode], ['cli-json-user', 'UNKNOWN_DEVICE', 0x86]);
  assert.match(event.clientId, /^c-cli-json-\d+$/);

  const unknown = await gatehouse(['events', 'tail', '--gateway', 'no_such_gateway']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err.join('\n'), /GW_ERR_GATEWAY_NOT_FOUND: no gateway with the id or name no_such_gateway \(gateway\)/);
});

test('events tail prints an event once when reading the backlog wrote it and it also arrives live', { timeout: 60_000 }, async () => {
  // Refused just before the tail starts: the recorder still holds the row (it writes every 200 ms), the tail's
  // backlog read writes it, and the write sends it out live on the stream the tail opened first.
  await strangerAttempt('c-cli-pending');
  const tail = gatehouse(['events', 'tail', '--gateway', 'cli_events', '--lines', '5', '--exit-after', '1']);
  let done = false;
  void tail.then(() => {
    done = true;
  });
  for (let i = 0; !done && i < 40; i++) {
    await Promise.race([tail, new Promise((r) => setTimeout(r, 250))]);
    if (!done) await strangerAttempt(`c-cli-after-${i}`);
  }
  const { out, code, err } = await tail;
  assert.equal(code, 0, err.join('\n'));
  assert.equal(out.filter((line) => line.includes('c-cli-pending')).length, 1, out.join('\n'));
  assert.match(out[out.length - 1] ?? '', /c-cli-after-\d+/, 'the live event that ended the tail is a new one');
});
