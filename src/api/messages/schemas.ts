/** Device message schemas (DESIGN.md "Shapes": a message). */
import { Type } from 'typebox';
import { Nullable } from '../common-schemas.ts';

export const MessageView = Type.Object({
  id: Type.String({ description: 'Sorts by arrival; also the stream event id' }),
  gatewayId: Type.String(),
  productKey: Type.String(),
  deviceName: Type.String(),
  topic: Type.String(),
  qos: Type.Integer(),
  payload: Type.String({ description: 'Raw bytes, base64' }),
  parsed: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'What transformPayload returned' })),
  parseError: Nullable(Type.String({ description: 'Why parsing failed (threw, timeout, memory, bad-result, dropped …)' })),
  receivedAt: Type.String(),
});

export const MessageList = Type.Object({ items: Type.Array(MessageView, { description: 'Newest first' }) });

export const MessageQuery = Type.Object({
  gatewayId: Type.Optional(Type.String()),
  productKey: Type.Optional(Type.String()),
  deviceName: Type.Optional(Type.String()),
  since: Type.Optional(Type.String({ description: 'ISO 8601: received at or after' })),
  parseFailed: Type.Optional(Type.Boolean({ description: 'Only messages whose parsing failed' })),
  limit: Type.Optional(Type.Integer({ description: '1-1000, default 100' })),
});

export const DownlinkParams = Type.Object({ productKey: Type.String(), deviceName: Type.String() });

export const DownlinkBody = Type.Object({
  topic: Type.String({ description: 'An MQTT topic name the device subscribes to' }),
  payload: Type.String({ description: 'Base64, or as encoding says' }),
  encoding: Type.Optional(Type.Enum(['base64', 'hex', 'text'], { description: 'How payload is written: base64 (default), hex, or text (sent as its UTF-8 bytes)' })),
  qos: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1)], { description: 'Default 0' })),
}, { additionalProperties: false });

export const DownlinkView = Type.Object({
  online: Type.Boolean({ description: 'The device was connected' }),
  result: Type.Enum(['OFFLINE', 'NOT_SUBSCRIBED', 'SENT', 'ACKED', 'REFUSED', 'TIMEOUT', 'DROPPED'], {
    description: 'REFUSED: the device answered with a PUBACK reason code of 0x80 or above (MQTT 5), in reasonCode. '
      + 'DROPPED: connected and subscribed, but not sent (larger than the device\'s Maximum Packet Size, its socket congested at QoS 0, or its queue full)',
  }),
  acknowledged: Nullable(Type.Boolean({ description: 'QoS 1: the device sent PUBACK in time (REFUSED included); null when nothing went out at QoS 1' })),
  reasonCode: Type.Optional(Type.Integer({ minimum: 0x80, maximum: 0xff, description: 'REFUSED only: the reason code of the device\'s PUBACK (e.g. 135 = 0x87 not authorized, 151 = 0x97 quota exceeded)' })),
});
