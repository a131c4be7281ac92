import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressTable, PRUNE_ABOVE } from './address-table.ts';

const capped = { maxConnectionsPerAddress: 3, connectionRatePerAddress: 0 };

test('the open cap: the fourth socket from an address is over it, another address is not; a release makes room', { timeout: 5_000 }, () => {
  const table = new AddressTable();
  for (let i = 0; i < 3; i++) assert.equal(table.take('10.0.0.1', capped, 0), null);
  assert.equal(table.take('10.0.0.1', capped, 0), 'maxConnectionsPerAddress');
  assert.equal(table.openFrom('10.0.0.1'), 3, 'a refused socket is not counted');
  assert.equal(table.take('10.0.0.2', capped, 0), null);
  table.release('10.0.0.1');
  assert.equal(table.take('10.0.0.1', capped, 0), null);
  assert.equal(table.mostOpen, 3);
});

test('the rate: a burst of twice the rate, then one token per 1/rate s; limits are the caller\'s, as they are now', { timeout: 5_000 }, () => {
  const table = new AddressTable();
  const rate = { maxConnectionsPerAddress: 0, connectionRatePerAddress: 2 };
  for (let i = 0; i < 4; i++) assert.equal(table.take('10.0.0.1', rate, 0), null);
  assert.equal(table.take('10.0.0.1', rate, 0), 'connectionRatePerAddress');
  assert.equal(table.take('10.0.0.1', rate, 500), null, 'half a second at 2/s: one token');
  assert.equal(table.take('10.0.0.1', rate, 500), 'connectionRatePerAddress');
  // Raised live: the next take refills at the new rate.
  assert.equal(table.take('10.0.0.1', { maxConnectionsPerAddress: 0, connectionRatePerAddress: 100 }, 600), null);
  // The cap is judged before the rate: over both, the cap is named.
  assert.equal(table.take('10.0.0.1', { maxConnectionsPerAddress: 1, connectionRatePerAddress: 2 }, 600), 'maxConnectionsPerAddress');
});

test('the table stays bounded: idle addresses whose bucket has refilled are pruned, open ones and ones still refilling kept', { timeout: 5_000 }, () => {
  const table = new AddressTable();
  const rate = { maxConnectionsPerAddress: 0, connectionRatePerAddress: 1 };
  assert.equal(table.take('open', rate, 0), null); // stays open
  assert.equal(table.take('throttled', rate, 0), null);
  table.release('throttled'); // closed, but its bucket is not full again yet
  for (let i = 0; table.size < PRUNE_ABOVE; i++) {
    assert.equal(table.take(`idle-${i}`, rate, 0), null);
    table.release(`idle-${i}`);
  }
  // Within the refill time nothing idle is full yet; two seconds later at 1/s every idle bucket is.
  assert.equal(table.take('new-1', rate, 0), null);
  assert.equal(table.size, PRUNE_ABOVE + 1);
  assert.equal(table.take('new-2', rate, 2_000), null);
  assert.equal(table.size, 3, 'the open address, new-1 (open) and new-2 remain');
  assert.equal(table.openFrom('open'), 1);
});

test('a socket counted elsewhere (add) counts against the cap here; releases never go below zero', { timeout: 5_000 }, () => {
  const table = new AddressTable();
  for (let i = 0; i < 3; i++) table.add('10.0.0.1', 0);
  assert.equal(table.take('10.0.0.1', capped, 0), 'maxConnectionsPerAddress');
  table.release('10.0.0.1', 5);
  assert.equal(table.openFrom('10.0.0.1'), 0);
  assert.equal(table.take('10.0.0.1', { maxConnectionsPerAddress: 0, connectionRatePerAddress: 1 }, 0), null, 'an added address starts with a full bucket');
});
