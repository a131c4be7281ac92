/** A payload written in a request body (the downlink, the parsing dry run): its bytes, or GW_ERR_PAYLOAD_INVALID. */
import { GatehouseError } from '../core/errors.ts';

export type PayloadEncoding = 'base64' | 'hex' | 'text';

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Base64 and hex are checked whole (Buffer.from would skip bad characters); hex may hold spaces; text is its UTF-8. */
export function decodePayload(payload: string, encoding: PayloadEncoding): Buffer {
  if (encoding === 'text') return Buffer.from(payload, 'utf8');
  const text = encoding === 'hex' ? payload.replace(/\s+/g, '') : payload;
  const valid = encoding === 'hex' ? HEX.test(text) : BASE64.test(text) && text.length % 4 === 0;
  if (!valid) throw new GatehouseError('GW_ERR_PAYLOAD_INVALID', `payload is not valid ${encoding}`, 'payload');
  return Buffer.from(text, encoding);
}
