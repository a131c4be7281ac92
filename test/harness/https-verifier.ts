/**
 * A customer's HTTPS verification service for third-party tests: a real HTTPS server on 127.0.0.1
 * with the test PKI's `localhost` certificate (trust `pki.root` as the gateway's `caCertificate`).
 * The username a device sends picks the answer, so one server covers every case:
 *
 * | username        | answer                                                     |
 * |-----------------|------------------------------------------------------------|
 * | `ok:<name>`     | 200 `{"deviceName": "<name>"}`                             |
 * | `deny`          | 401                                                        |
 * | `forbid`        | 403                                                        |
 * | `boom`          | 500                                                        |
 * | `boom:<x>`      | 500                                                        |
 * | `bad:<x>`       | 400 (a username the service finds malformed)               |
 * | `acl:<name>`    | 200 `{"deviceName": "<name>", "acl": [ALLOW ALL svc/${deviceName}/#]}` |
 * | `badacl:<name>` | 200 with an `acl` whose rule has an unknown placeholder   |
 * | `slow`          | 200 with a valid deviceName, after `slowMs` (default 2 s)  |
 * | `hold:<name>`   | 200 `{"deviceName": "<name>"}`, once the test calls `releaseHeld()` |
 * | `badjson`       | 200 with a body that is not JSON                           |
 * | `nodevice`      | 200 `{"result": "ok"}` (no deviceName)                     |
 * | `badname`       | 200 `{"deviceName": "x"}` (outside the device name rules)  |
 * | `huge`          | 200, chunked, no Content-Length: up to 300 MB until the client stops reading |
 * | anything else   | 401                                                        |
 *
 * Every request is recorded (parsed body and headers) for assertions on templates, signing and caching.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { Pki } from './pki.ts';

export interface VerifierRequest {
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body text. */
  raw: string;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: Record<string, unknown> | undefined;
}

export interface HttpsVerifier {
  /** `https://127.0.0.1:<port>/verify`. */
  url: string;
  requests: VerifierRequest[];
  /** Requests whose body has this username. */
  requestsFor(username: string): VerifierRequest[];
  slowMs: number;
  /** `slow` answers actually sent (a gateway that answered its device first saw none of them yet). */
  slowAnswered: number;
  /** Bytes the `huge` answers managed to write before their client hung up. */
  hugeBytesWritten: number;
  /** Resolves when the next `hold:` request arrives (its answer is held). */
  whenHeld(): Promise<void>;
  /** Sends the answers of every `hold:` request held so far. */
  releaseHeld(): void;
  close(): Promise<void>;
}

const HUGE_CHUNK = Buffer.alloc(64 * 1024, 0x20);
const HUGE_TOTAL = 300 * 1024 * 1024;

/** Writes chunks while the client reads, up to HUGE_TOTAL; stops when the client hangs up. */
function sendHuge(res: import('node:http').ServerResponse, verifier: HttpsVerifier): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{"deviceName": "huge-device", "padding": "');
  let sent = 0;
  const pump = (): void => {
    while (sent < HUGE_TOTAL && !res.destroyed) {
      sent += HUGE_CHUNK.length;
      verifier.hugeBytesWritten += HUGE_CHUNK.length;
      if (!res.write(HUGE_CHUNK)) {
        res.once('drain', pump);
        return;
      }
    }
    if (!res.destroyed) res.end('"}');
  };
  pump();
}

function answer(username: string): { status: number; body?: string } {
  if (username.startsWith('hold:')) return { status: 200, body: JSON.stringify({ deviceName: username.slice(5) }) };
  if (username.startsWith('ok:')) return { status: 200, body: JSON.stringify({ deviceName: username.slice(3) }) };
  if (username.startsWith('boom:')) return { status: 500, body: '{"error":"crashed on this input"}' };
  if (username.startsWith('bad:')) return { status: 400, body: '{"error":"malformed username"}' };
  if (username.startsWith('acl:')) {
    return { status: 200, body: JSON.stringify({ deviceName: username.slice(4), acl: [{ action: 'ALLOW', access: 'ALL', topic: 'svc/${deviceName}/#' }] }) };
  }
  if (username.startsWith('badacl:')) {
    return { status: 200, body: JSON.stringify({ deviceName: username.slice(7), acl: [{ action: 'ALLOW', access: 'ALL', topic: 'svc/${password}/#' }] }) };
  }
  switch (username) {
    case 'forbid': return { status: 403 };
    case 'boom': return { status: 500, body: '{"error":"database down"}' };
    case 'slow': return { status: 200, body: JSON.stringify({ deviceName: 'slow-device' }) };
    case 'badjson': return { status: 200, body: '{"deviceName": "half' };
    case 'nodevice': return { status: 200, body: JSON.stringify({ result: 'ok' }) };
    case 'badname': return { status: 200, body: JSON.stringify({ deviceName: 'x' }) };
    default: return { status: 401 };
  }
}

export async function startHttpsVerifier(pki: Pick<Pki, 'server'>): Promise<HttpsVerifier> {
  const requests: VerifierRequest[] = [];
  const held: (() => void)[] = [];
  const holdWaiters: (() => void)[] = [];
  const verifier: HttpsVerifier = {
    url: '',
    requests,
    requestsFor: (username) => requests.filter((r) => r.body?.username === username),
    slowMs: 2000,
    slowAnswered: 0,
    hugeBytesWritten: 0,
    whenHeld: () => new Promise<void>((resolve) => holdWaiters.push(resolve)),
    releaseHeld: () => {
      for (const send of held.splice(0)) send();
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server = https.createServer({ cert: pki.server.chainPem, key: pki.server.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> | undefined;
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        body = undefined;
      }
      requests.push({ path: req.url ?? '', headers: req.headers, raw, body });
      const username = typeof body?.username === 'string' ? body.username : '';
      const { status, body: out } = answer(username);
      const send = (): void => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(out);
      };
      if (username === 'huge') sendHuge(res, verifier);
      else if (username.startsWith('hold:')) {
        held.push(send);
        for (const arrived of holdWaiters.splice(0)) arrived();
      }
      else if (username === 'slow') {
        setTimeout(() => {
          verifier.slowAnswered++;
          send();
        }, verifier.slowMs).unref();
      }
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  verifier.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/verify`;
  return verifier;
}
