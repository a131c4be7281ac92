import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAdmissionRequest, MachineAdmission, type AdmissionPeer } from './address-admission.ts';

/** A worker's end of the channel: what the primary answered it. */
function worker(): AdmissionPeer & { answers: unknown[] } {
  const answers: unknown[] = [];
  return { answers, send: (m) => answers.push(m), isConnected: () => true };
}

const ask = (id: number, gateway: string, address: string, maxConnectionsPerAddress = 2, connectionRatePerAddress = 0) =>
  ({ gatehouse: 'admission_ask', id, gateway, address, maxConnectionsPerAddress, connectionRatePerAddress }) as const;
const release = (gateway: string, address: string) => ({ gatehouse: 'admission_release', gateway, address }) as const;

test('the machine counts every worker\'s sockets from an address as one, per gateway', { timeout: 5_000 }, () => {
  const machine = new MachineAdmission();
  const w1 = worker();
  const w2 = worker();
  machine.handle(w1, ask(1, 'gw-a', '10.0.0.1'));
  machine.handle(w2, ask(1, 'gw-a', '10.0.0.1'));
  machine.handle(w2, ask(2, 'gw-a', '10.0.0.1'));
  machine.handle(w2, ask(3, 'gw-b', '10.0.0.1'));
  assert.deepEqual(w1.answers, [{ gatehouse: 'admission_answer', id: 1, gateway: 'gw-a', address: '10.0.0.1', over: null }]);
  assert.deepEqual(w2.answers.map((a) => (a as { over: unknown }).over), [null, 'maxConnectionsPerAddress', null], 'the third on gw-a is over; gw-b counts apart');
  assert.equal(machine.openFrom('gw-a', '10.0.0.1'), 2);
  machine.handle(w1, release('gw-a', '10.0.0.1'));
  assert.equal(machine.openFrom('gw-a', '10.0.0.1'), 1);
  // A release a worker does not hold (another worker's, or one too many) changes nothing.
  machine.handle(w1, release('gw-a', '10.0.0.1'));
  assert.equal(machine.openFrom('gw-a', '10.0.0.1'), 1);
});

test('a worker that exits: its open sockets leave the machine\'s counts, the others\' stay', { timeout: 5_000 }, () => {
  const machine = new MachineAdmission();
  const w1 = worker();
  const w2 = worker();
  for (const [from, id, gateway, address] of [[w1, 1, 'gw-a', '10.0.0.1'], [w1, 2, 'gw-a', '10.0.0.1'], [w1, 3, 'gw-b', '10.0.0.2'], [w2, 1, 'gw-a', '10.0.0.1']] as const) {
    machine.handle(from, ask(id, gateway, address, 4));
  }
  assert.equal(machine.openFrom('gw-a', '10.0.0.1'), 3);
  machine.forget(w1);
  assert.deepEqual([machine.openFrom('gw-a', '10.0.0.1'), machine.openFrom('gw-b', '10.0.0.2')], [1, 0], 'worker 2\'s socket alone');
  // A later release of the dead worker's (a message still in the channel) takes nothing from the others'.
  machine.handle(w1, release('gw-a', '10.0.0.1'));
  assert.equal(machine.openFrom('gw-a', '10.0.0.1'), 1);
});

test('the limits judged are the ones each ask carries (a gateway edit applies at once)', { timeout: 5_000 }, () => {
  const machine = new MachineAdmission();
  const w1 = worker();
  machine.handle(w1, ask(1, 'gw-a', '10.0.0.1', 1));
  machine.handle(w1, ask(2, 'gw-a', '10.0.0.1', 1));
  machine.handle(w1, ask(3, 'gw-a', '10.0.0.1', 2));
  assert.deepEqual(w1.answers.map((a) => (a as { over: unknown }).over), [null, 'maxConnectionsPerAddress', null]);
});

test('only well-formed asks and releases are taken from a worker', { timeout: 5_000 }, () => {
  assert.ok(isAdmissionRequest(ask(1, 'g', 'a')));
  assert.ok(isAdmissionRequest(release('g', 'a')));
  for (const bad of [null, 'admission_ask', { gatehouse: 'admission_ask' }, { ...ask(1, 'g', 'a'), id: 1.5 }, { ...ask(1, 'g', 'a'), maxConnectionsPerAddress: -1 },
    { ...ask(1, 'g', 'a'), connectionRatePerAddress: Number.NaN }, { ...ask(1, 'g', 'a'), address: 7 }, { ...release('g', 'a'), gateway: '' },
    { gatehouse: 'metrics_request', id: 1 }]) {
    assert.equal(isAdmissionRequest(bad), false, JSON.stringify(bad));
  }
});
