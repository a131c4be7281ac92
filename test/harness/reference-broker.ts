/**
 * Debian's mosquitto as the reference broker for the conformance suites
 * (`GATEHOUSE_TEST_REFERENCE=mosquitto`): the same tests run against it to check that they expect what a
 * mature broker does. Options mosquitto has no setting for are ignored; the tests that depend on them
 * skip themselves when `isReference` is set.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestBroker, TestBrokerOptions } from './broker.ts';

const MOSQUITTO = process.env.GATEHOUSE_MOSQUITTO ?? '/usr/sbin/mosquitto';
const START_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 3_000;

const execFileAsync = promisify(execFile);

/** A port the kernel just handed out; closed again so mosquitto can bind it. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** A throwaway CA and a server certificate for 127.0.0.1 / localhost, made with the openssl CLI. */
async function makeTlsFiles(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.pem');
  const keyFile = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const certFile = path.join(dir, 'server.pem');
  const ext = path.join(dir, 'server.ext');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await execFileAsync('openssl', ['req', '-x509', ...ec, '-keyout', caKey, '-out', caFile, '-days', '2',
    '-subj', '/CN=Gatehouse reference test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await execFileAsync('openssl', ['req', ...ec, '-keyout', keyFile, '-out', csr, '-subj', '/CN=localhost']);
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  await execFileAsync('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial',
    '-out', certFile, '-days', '2', '-extfile', ext]);
  // mosquitto started as root drops to the "mosquitto" user before it reads these files.
  await chmod(dir, 0o755);
  for (const file of [caFile, certFile, keyFile]) await chmod(file, 0o644);
  return { caFile, certFile, keyFile };
}

function mosquittoConfig(options: TestBrokerOptions, port: number, tls?: { port: number; certFile: string; keyFile: string }): string {
  const global: string[] = [
    'persistence false',
    'allow_anonymous true',
    'set_tcp_nodelay true',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
  ];
  // Our 0 means "no limit"; mosquitto's largest (and default) value is 65535 and it refuses values
  // below 10, so smaller ones are raised to 10 (tests that need them skip the reference).
  if (options.maxKeepalive !== undefined) {
    global.push(`max_keepalive ${options.maxKeepalive === 0 ? 65535 : Math.max(10, options.maxKeepalive)}`);
  }
  if (options.maxPacketSize !== undefined) global.push(`max_packet_size ${options.maxPacketSize}`);
  if (options.maxQueued !== undefined) global.push(`max_queued_messages ${options.maxQueued}`);
  // mosquitto has one setting for both directions and advertises it as Receive Maximum; our
  // receiveMaximum maps to it when maxInflight is not given.
  const inflight = options.maxInflight ?? options.receiveMaximum;
  if (inflight !== undefined) global.push(`max_inflight_messages ${inflight}`);
  if (options.retainAvailable !== undefined) global.push(`retain_available ${options.retainAvailable}`);

  const perListener: string[] = [];
  if (options.maximumQoS !== undefined) perListener.push(`max_qos ${options.maximumQoS}`);
  if (options.topicAliasMaximum !== undefined) perListener.push(`max_topic_alias ${options.topicAliasMaximum}`);

  const lines = [...global, `listener ${port} 127.0.0.1`, ...perListener];
  if (tls) lines.push(`listener ${tls.port} 127.0.0.1`, `certfile ${tls.certFile}`, `keyfile ${tls.keyFile}`, ...perListener);
  return `${lines.join('\n')}\n`;
}

async function stop(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  process.kill(child.pid, 'SIGTERM');
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS).unref());
  if ((await Promise.race([exited, timer])) === 'timeout' && child.exitCode === null) {
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }
}

export async function startReferenceBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-mosquitto-'));
  const port = await freePort();
  let tls: { port: number; certFile: string; keyFile: string; caFile: string } | undefined;
  if (options.tls) tls = { port: await freePort(), ...(await makeTlsFiles(dir)) };
  const confFile = path.join(dir, 'mosquitto.conf');
  await writeFile(confFile, mosquittoConfig(options, port, tls));

  const child = spawn(MOSQUITTO, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4_000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve));

  const cleanup = async (): Promise<void> => {
    await stop(child, exited);
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const failure = await Promise.race([spawnFailed, new Promise<undefined>((resolve) => setTimeout(resolve, 20))]);
    if (failure) { await cleanup(); throw failure; }
    if (child.exitCode !== null) {
      await cleanup();
      throw new Error(`mosquitto exited with ${child.exitCode}: ${stderr}`);
    }
    if ((await canConnect(port)) && (!tls || (await canConnect(tls.port)))) break;
    if (Date.now() > deadline) {
      await cleanup();
      throw new Error(`mosquitto did not accept connections within ${START_TIMEOUT_MS} ms: ${stderr}`);
    }
  }

  const broker: TestBroker = {
    host: '127.0.0.1',
    port,
    close: cleanup,
  };
  if (tls) {
    broker.tlsPort = tls.port;
    broker.caPem = await readFile(tls.caFile, 'utf8');
  }
  return broker;
}
