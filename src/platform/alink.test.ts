import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPropertyPostTopic, propertyPostValues } from './alink.ts';

const AT = 1_700_000_000_000;

test('a property post keeps bare values and {value, time} pairs, stamping bare ones with the arrival time', { timeout: 5_000 }, () => {
  const post = { id: '123', version: '1.0', sys: { ack: 0 }, method: 'thing.event.property.post',
    params: { Power: { value: 'on', time: 1524448722000 }, WF: 23.6, Pos: { lat: 1, lng: 2 } } };
  assert.deepEqual(propertyPostValues(post, AT), {
    Power: { value: 'on', time: 1524448722000 },
    WF: { value: 23.6, time: AT },
    // An object that is not exactly {value, time} is a struct value, kept whole.
    Pos: { value: { lat: 1, lng: 2 }, time: AT },
  });
});

test('anything else is not a property post', { timeout: 5_000 }, () => {
  assert.equal(propertyPostValues({ method: 'thing.event.alarm.post', params: { a: 1 } }, AT), null);
  assert.equal(propertyPostValues({ method: 'thing.event.property.post', params: {} }, AT), null);
  assert.equal(propertyPostValues({ method: 'thing.event.property.post', params: [1] }, AT), null);
  assert.equal(propertyPostValues({ temperature: 1 }, AT), null);
  const tooMany = Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`p${i}`, i]));
  assert.equal(propertyPostValues({ method: 'thing.event.property.post', params: tooMany }, AT), null, 'Alink 6106: over 200');
});

test('the Alink property post topic', { timeout: 5_000 }, () => {
  assert.equal(isPropertyPostTopic('/sys/pk/dn/thing/event/property/post'), true);
  assert.equal(isPropertyPostTopic('/sys/pk/dn/thing/event/property/post_reply'), false);
  assert.equal(isPropertyPostTopic('/pk/dn/user/update'), false);
});
