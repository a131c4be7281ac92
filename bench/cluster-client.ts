/**
 * A lean MQTT 3.1.1 client over TLS for `npm run bench:cluster`: thousands of them run in the driver on
 * the same two cores as the nodes, so each is a socket and a FrameScanner (bench/frame-scanner.ts), not an
 * MQTT.js client. It logs in with a device's username and password (the gateway's one-party auth), keeps
 * a session (clean = false) when told, acknowledges QoS 1 deliveries (PUBACK) and QoS 2 ones (PUBREC, then
 * PUBCOMP at the PUBREL) in one write per received chunk, answers a PUBREC of its own QoS 2 PUBLISH with
 * PUBREL, and reports PUBACKs, PUBRECs and PUBCOMPs by packet identifier. Loopback only.
 */
import tls from 'node:tls';
import { generate } from 'mqtt-packet';
import { FrameScanner, PacketType } from './frame-scanner.ts';

/** The first byte (type and flags) of the acknowledgements this client sends. */
const PUBACK = 0x40;
const PUBREC = 0x50;
const PUBREL = 0x62;
const PUBCOMP = 0x70;

export interface ClientOptions {
  host: string;
  port: number;
  ca: string;
  clientId: string;
  username: string;
  password: string;
  clean: boolean;
  /** Source address (127.x.y.z): spreads a storm over addresses as a fleet is spread over networks. */
  localAddress?: string;
  keepalive?: number;
  timeoutMs?: number;
  /**
   * Deliveries from the first byte on: a resumed session's queued messages may come in the CONNACK's own
   * read, before whoever awaits `open` could set `client.onMessage`.
   */
  onMessage?: (payload: Buffer, at: number) => void;
}

export interface Connected {
  client: Client;
  sessionPresent: boolean;
  /** ms from the CONNECT written (TLS already up) to its CONNACK. */
  connectMs: number;
}

const now = (): number => performance.now();

export class Client {
  readonly sock: tls.TLSSocket;
  readonly #scanner: FrameScanner;
  /** Acknowledgements to send with the next flush, each `header << 16 | packet id`. */
  #acks: number[] = [];
  #nextId = 0;
  #subscribed: (() => void) | undefined;
  closed = false;
  /** performance.now() when the socket closed. */
  closedAt = Number.NaN;
  /** A delivered PUBLISH: its payload (a view into the received buffer) and its receipt time (performance.now()). */
  onMessage: (payload: Buffer, at: number) => void = () => undefined;
  onPuback: (packetId: number, at: number) => void = () => undefined;
  /** A PUBREC of this client's QoS 2 PUBLISH (its PUBREL is sent): the server holds the message. */
  onPubrec: (packetId: number, at: number) => void = () => undefined;
  onPubcomp: (packetId: number, at: number) => void = () => undefined;
  onClose: () => void = () => undefined;

  private constructor(sock: tls.TLSSocket, onConnack: (sessionPresent: boolean, rc: number) => void) {
    this.sock = sock;
    this.#scanner = new FrameScanner((header, buf, start, end) => {
      const type = header >> 4;
      if (type === PacketType.PUBLISH) {
        const qos = (header >> 1) & 3;
        const topicEnd = start + 2 + buf.readUInt16BE(start);
        if (qos > 0) this.#acks.push(((qos === 1 ? PUBACK : PUBREC) << 16) | buf.readUInt16BE(topicEnd));
        this.onMessage(buf.subarray(topicEnd + (qos > 0 ? 2 : 0), end), this.#at);
      } else if (type === PacketType.PUBACK) {
        this.onPuback(buf.readUInt16BE(start), this.#at);
      } else if (type === PacketType.PUBREC) {
        const id = buf.readUInt16BE(start);
        this.#acks.push((PUBREL << 16) | id);
        this.onPubrec(id, this.#at);
      } else if (type === PacketType.PUBREL) {
        this.#acks.push((PUBCOMP << 16) | buf.readUInt16BE(start));
      } else if (type === PacketType.PUBCOMP) {
        this.onPubcomp(buf.readUInt16BE(start), this.#at);
      } else if (type === PacketType.SUBACK) {
        const granted = buf[start + 2];
        const done = this.#subscribed;
        this.#subscribed = undefined;
        if (granted !== 0x80) done?.();
      } else if (type === PacketType.CONNACK) {
        onConnack((buf[start]! & 1) === 1, buf[start + 1]!);
      }
    });
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => {
      this.#at = now();
      try {
        this.#scanner.push(chunk);
      } catch {
        sock.destroy();
        return;
      }
      this.#flushAcks();
    });
    sock.on('error', () => undefined); // 'close' follows
    sock.on('close', () => {
      this.closed = true;
      this.closedAt = now();
      this.onClose();
    });
  }

  #at = 0;

  #flushAcks(): void {
    if (this.#acks.length === 0 || this.closed) return;
    // Each is 4 bytes: its first byte, remaining length 2, the packet identifier.
    const out = Buffer.allocUnsafe(this.#acks.length * 4);
    this.#acks.forEach((ack, k) => {
      out[k * 4] = ack >>> 16;
      out[k * 4 + 1] = 2;
      out.writeUInt16BE(ack & 0xffff, k * 4 + 2);
    });
    this.#acks = [];
    this.sock.write(out);
  }

  /** TLS, then CONNECT → CONNACK (return code 0), or a rejection naming why. */
  static open(o: ClientOptions): Promise<Connected> {
    return new Promise((resolve, reject) => {
      // tls.connect hands socket.connect() options on, localAddress included (its types do not list it).
      const options: tls.ConnectionOptions & { localAddress?: string } = { host: o.host, port: o.port, ca: o.ca, servername: 'localhost', localAddress: o.localAddress, minVersion: 'TLSv1.3' };
      const sock = tls.connect(options);
      let settled = false;
      let sentAt = 0;
      const fail = (why: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        reject(new Error(why));
      };
      const timer = setTimeout(() => fail('no CONNACK in time'), o.timeoutMs ?? 15_000);
      const client = new Client(sock, (sessionPresent, rc) => {
        if (settled) return;
        if (rc !== 0) return fail(`CONNACK return code ${rc}`);
        settled = true;
        clearTimeout(timer);
        client.onClose = () => undefined;
        resolve({ client, sessionPresent, connectMs: now() - sentAt });
      });
      client.onClose = () => fail('closed before CONNACK');
      if (o.onMessage !== undefined) client.onMessage = o.onMessage;
      sock.once('secureConnect', () => {
        sentAt = now();
        sock.write(generate({
          cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: o.clean, clientId: o.clientId,
          keepalive: o.keepalive ?? 1200, username: o.username, password: Buffer.from(o.password),
        }));
      });
    });
  }

  nextPacketId(): number {
    this.#nextId = this.#nextId === 65_535 ? 1 : this.#nextId + 1;
    return this.#nextId;
  }

  subscribe(filter: string, qos: 0 | 1 | 2, timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no SUBACK for ${filter}`)), timeoutMs);
      this.#subscribed = () => {
        clearTimeout(timer);
        resolve();
      };
      this.sock.write(generate({ cmd: 'subscribe', messageId: this.nextPacketId(), subscriptions: [{ topic: filter, qos }] }));
    });
  }

  write(buf: Buffer): boolean {
    return this.closed ? false : this.sock.write(buf);
  }

  /** Set by `destroy`: a close the bench asked for, not the server's. */
  destroyedByUs = false;

  destroy(): void {
    this.destroyedByUs = true;
    this.sock.destroy();
  }
}

/**
 * A PUBLISH of a bench message: 100 bytes of payload whose first 16 carry the publisher's index (u32), its
 * sequence number (u32) and the send time (performance.now() as a float64), so every delivery is put back
 * in the ledger and timed.
 */
export class PublishFrame {
  readonly frame: Buffer;
  readonly #idOffset: number;
  readonly #payloadOffset: number;

  constructor(topic: string, qos: 0 | 1 | 2, payloadBytes = 100) {
    this.frame = generate({ cmd: 'publish', topic, payload: Buffer.alloc(payloadBytes, 0x61), qos, dup: false, retain: false, messageId: qos > 0 ? 1 : undefined });
    this.#payloadOffset = this.frame.length - payloadBytes;
    this.#idOffset = qos > 0 ? this.#payloadOffset - 2 : -1;
  }

  /** A copy of the frame for (publisher, seq), sent now, with `packetId` when QoS 1 or 2. */
  build(publisher: number, seq: number, packetId: number): Buffer {
    const out = Buffer.from(this.frame);
    if (this.#idOffset >= 0) out.writeUInt16BE(packetId, this.#idOffset);
    out.writeUInt32BE(publisher, this.#payloadOffset);
    out.writeUInt32BE(seq, this.#payloadOffset + 4);
    out.writeDoubleBE(now(), this.#payloadOffset + 8);
    return out;
  }
}

/** What a delivered bench payload carries. */
export function readStamp(payload: Buffer): { publisher: number; seq: number; sentAt: number } | undefined {
  if (payload.length < 16) return undefined;
  return { publisher: payload.readUInt32BE(0), seq: payload.readUInt32BE(4), sentAt: payload.readDoubleBE(8) };
}
