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

/** The payload's length in bytes of each view made by messageView, for approximateEventBytes without encoding it. */
const payloadLengths = new WeakMap<MessageView, number>();

/**
 * A message as the API shows it, its base64 payload encoded when first read (then kept): every uplink
 * becomes a view for the stream's replay ring, and most are never read by anyone (no stream open, no
 * webhook), while encoding a 1 MB payload cost a millisecond and a 1.4 MB string for the collector.
 * The payload is an enumerable own property in its usual place, so JSON and schema serializers see it.
 */
export function messageView(r: MessageRecord): MessageView {
  const view = { id: r.id, gatewayId: r.gatewayId, productKey: r.productKey, deviceName: r.deviceName, topic: r.topic, qos: r.qos } as MessageView;
  let base64: string | undefined;
  Object.defineProperty(view, 'payload', { enumerable: true, configurable: true, get: () => (base64 ??= r.payload.toString('base64')) });
  view.parsed = r.parsed;
  view.parseError = r.parseError;
  view.receivedAt = r.receivedAt;
  payloadLengths.set(view, r.payload.length);
  return view;
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
  const bytes = payloadLengths.get(event.data);
  const payload = bytes === undefined ? event.data.payload.length : base64Length(bytes);
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
