import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkProperties, subscribeHasZeroSubscriptionId } from './properties.ts';
import { RC } from './reason-codes.ts';

test('[§2.2.2.2] a property that may appear once appearing twice is a protocol error', { timeout: 5_000 }, () => {
  assert.equal(checkProperties({ contentType: ['a', 'b'] }), RC.PROTOCOL_ERROR);
  assert.equal(checkProperties({ subscriptionIdentifier: [1, 2] }), RC.SUCCESS);
  assert.equal(checkProperties({ userProperties: { a: ['1', '2'] } }), RC.SUCCESS);
});

test('an unreadable property value is a malformed packet', { timeout: 5_000 }, () => {
  assert.equal(checkProperties({ contentType: null }), RC.MALFORMED_PACKET);
  assert.equal(checkProperties({ userProperties: { a: null } }), RC.MALFORMED_PACKET);
  assert.equal(checkProperties(undefined), RC.SUCCESS);
});

test('[§3.8.2.1.2] a SUBSCRIBE with Subscription Identifier 0 is found on the raw frame', { timeout: 5_000 }, () => {
  // SUBSCRIBE id 1, properties: user property ("k","v"), subscription identifier 0; filter "a" QoS 0
  assert.equal(subscribeHasZeroSubscriptionId(Buffer.from('8210' + '0001' + '09' + '2600016b000176' + '0b00' + '0001' + '61' + '00', 'hex')), true);
  assert.equal(subscribeHasZeroSubscriptionId(Buffer.from('820800010' + '20b05' + '0001' + '6100', 'hex')), false);
});
