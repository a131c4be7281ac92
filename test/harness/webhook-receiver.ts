/** A webhook endpoint for tests: real HTTPS on 127.0.0.1 with the test PKI's server certificate. */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SharedPki } from './pki.ts';

/** An HTTPS webhook endpoint that records every request and answers 200, or holds its answers while `held`. */
export class WebhookReceiver {
  readonly deliveries: { eventId: string; type: string; body: string }[] = [];
  #held: (() => void)[] | null = null;
  readonly #server: https.Server;

  constructor(pki: SharedPki) {
    this.#server = https.createServer({ cert: pki.server.chainPem, key: pki.server.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.deliveries.push({ eventId: String(req.headers['x-gatehouse-event-id']), type: String(req.headers['x-gatehouse-event-type']), body: Buffer.concat(chunks).toString() });
        const answer = (): void => void res.writeHead(200).end();
        if (this.#held === null) answer();
        else this.#held.push(answer);
      });
    });
  }

  hold(): void {
    this.#held ??= [];
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = null;
    for (const answer of held) answer();
  }

  /** How many times each event id was delivered. */
  counts(type?: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const d of this.deliveries) if (type === undefined || d.type === type) out.set(d.eventId, (out.get(d.eventId) ?? 0) + 1);
    return out;
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `https://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook`;
  }

  close(): void {
    this.release();
    this.#server.closeAllConnections();
    this.#server.close();
  }
}
