/** What the platform side publishes about devices: the stream and the webhooks carry these. */
import type { ConnectionEventRecord } from '../registry/connection-events.ts';
import type { MessageRecord } from '../registry/ports.ts';

/** A device message as the API shows it (DESIGN.md "Shapes"). */
export interface MessageView {
  id: string;
  gatewayId: string;
  productKey: string;
  deviceName: string;
  topic: string;
  qos: number;
  /** Base64. */
  payload: string;
  parsed: Record<string, unknown> | null;
  parseError: string | null;
  receivedAt: string;
}

/**
 * A message as the API shows it, its base64 payload encoded when first read (then kept): every uplink
 * becomes a view for the stream's replay ring, and most are never read by anyone (no stream open, no
 * webhook), while encoding a 1 MB payload cost a millisecond and a 1.4 MB string for the collector.
 * A class whose `payload` is a getter (schema serializers read it by name; `toJSON` gives JSON.stringify the
 * same fields in the same order): a per-object `Object.defineProperty` made every view a dictionary-mode
 * object, ~2.5-3.6 µs each against ~0.05 µs, paid for every uplink and, on a cluster node, for every
 * message another node's device sent.
 */
class LazyMessageView implements MessageView {
  readonly id: string;
  readonly gatewayId: string;
  readonly productKey: string;
  readonly deviceName: string;
  readonly topic: string;
  readonly qos: number;
  readonly parsed: Record<string, unknown> | null;
  readonly parseError: string | null;
  readonly receivedAt: string;
  /** The payload's length in bytes, for approximateEventBytes without encoding it. */
  readonly payloadBytes: number;
  readonly #bytes: Buffer;
  #base64: string | undefined;

  constructor(r: MessageRecord) {
    this.id = r.id;
    this.gatewayId = r.gatewayId;
    this.productKey = r.productKey;
    this.deviceName = r.deviceName;
    this.topic = r.topic;
    this.qos = r.qos;
    this.parsed = r.parsed;
    this.parseError = r.parseError;
    this.receivedAt = r.receivedAt;
    this.payloadBytes = r.payload.length;
    this.#bytes = r.payload;
  }

  get payload(): string {
    return (this.#base64 ??= this.#bytes.toString('base64'));
  }

  toJSON(): MessageView {
    return {
      id: this.id, gatewayId: this.gatewayId, productKey: this.productKey, deviceName: this.deviceName, topic: this.topic,
      qos: this.qos, payload: this.payload, parsed: this.parsed, parseError: this.parseError, receivedAt: this.receivedAt,
    };
  }
}

export function messageView(r: MessageRecord): MessageView {
  return new LazyMessageView(r);
}

function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

export type PlatformEvent =
  | { id: string; type: 'message'; gatewayId: string; deviceName: string; data: MessageView }
  /** A CONNECT outcome or a disconnect (issue 14); deviceName is '' for a device without a record. */
  | { id: string; type: 'connection'; gatewayId: string; deviceName: string; data: ConnectionEventRecord }
  | {
    id: string; type: 'online' | 'offline'; gatewayId: string; deviceName: string;
    data: { gatewayId: string; productKey: string; deviceName: string; at: string; clientAddress?: string | null };
  };

/**
 * About what an event costs held in memory: the base64 payload and topic of a message (what grows with
 * what devices send), its parsed result as JSON (a transformPayload may return up to the sandbox's
 * maxResultChars, 1 MiB by default: a fixed allowance let 1,000 of them pass a 16 MiB bound), plus a
 * fixed allowance for the other fields.
 */
export function approximateEventBytes(event: PlatformEvent): number {
  const FIXED = 512;
  // A connection event's device text (client id, username, detail) is bounded but can pass the allowance.
  if (event.type === 'connection') return FIXED + 2 * JSON.stringify(event.data).length;
  if (event.type !== 'message') return FIXED;
  const parsed = event.data.parsed === null ? 0 : JSON.stringify(event.data.parsed).length;
  const payload = event.data instanceof LazyMessageView ? base64Length(event.data.payloadBytes) : event.data.payload.length;
  return FIXED + payload + event.data.topic.length + parsed;
}

export interface EventFilter {
  gatewayId?: string;
  deviceName?: string;
  types?: readonly PlatformEvent['type'][];
}

export function matches(filter: EventFilter, event: PlatformEvent): boolean {
  if (filter.gatewayId !== undefined && filter.gatewayId !== event.gatewayId) return false;
  if (filter.deviceName !== undefined && filter.deviceName !== event.deviceName) return false;
  if (filter.types !== undefined && !filter.types.includes(event.type)) return false;
  return true;
}
