/** A request's payload in base64, hex or text. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatehouseError } from '../core/errors.ts';
import { decodePayload } from './payload.ts';

test('base64, hex (spaces allowed) and text; anything else is GW_ERR_PAYLOAD_INVALID on payload', { timeout: 5_000 }, () => {
  assert.deepEqual(decodePayload('b3Blbg==', 'base64'), Buffer.from('open'));
  assert.deepEqual(decodePayload('6f 70 65\n6E', 'hex'), Buffer.from('open'));
  assert.deepEqual(decodePayload('grüße', 'text'), Buffer.from('grüße', 'utf8'));
  assert.deepEqual(decodePayload('', 'hex'), Buffer.alloc(0));
  for (const [payload, encoding] of [['b3Blbg=', 'base64'], ['b3B*bg==', 'base64'], ['6f7', 'hex'], ['zz', 'hex']] as const) {
    assert.throws(() => decodePayload(payload, encoding), (e: unknown) => e instanceof GatehouseError && e.code === 'GW_ERR_PAYLOAD_INVALID' && e.field === 'payload');
  }
});
