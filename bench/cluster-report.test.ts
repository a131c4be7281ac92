/** The cluster benchmark's report math (bench/cluster-report.ts): what it counts as lost and duplicated, and its ratios. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuPer, latencySummary, Ledger, percentile, ratio, renderTable } from './cluster-report.ts';

test('the ledger counts lost (acknowledged, never delivered), missing, duplicates and unknown deliveries apart', { timeout: 5_000 }, () => {
  const ledger = new Ledger();
  for (let seq = 0; seq < 5; seq++) ledger.sent(0, seq);
  ledger.sent(1, 3000); // a publisher's sequence past the first block: the ledger grows
  for (const seq of [0, 1, 2]) ledger.acked(0, seq);
  ledger.acked(1, 3000);
  assert.equal(ledger.delivered(0, 0), true);
  assert.equal(ledger.delivered(0, 0), false, 'a second delivery is a duplicate');
  assert.equal(ledger.delivered(0, 3), true, 'sent, not acknowledged, delivered');
  assert.equal(ledger.delivered(1, 3000), true);
  assert.equal(ledger.delivered(0, 99), false, 'never sent');
  assert.equal(ledger.delivered(7, 0), false, 'no such publisher');
  assert.deepEqual(ledger.counts(), { sent: 6, acked: 4, delivered: 3, duplicates: 1, lostAcked: 2, missing: 3, unknown: 2 });
  assert.equal(ledger.allAckedDelivered(), false);
  ledger.delivered(0, 1);
  ledger.delivered(0, 2);
  assert.equal(ledger.allAckedDelivered(), true, 'seq 4 was never acknowledged: missing, not lost');
  assert.equal(ledger.counts().missing, 1);
});

test('a message sent again (a resend after a reconnect) counts once', { timeout: 5_000 }, () => {
  const ledger = new Ledger();
  ledger.sent(0, 7);
  ledger.sent(0, 7);
  ledger.acked(0, 7);
  assert.deepEqual(ledger.counts(), { sent: 1, acked: 1, delivered: 0, duplicates: 0, lostAcked: 1, missing: 1, unknown: 0 });
});

test('percentiles are nearest-rank over sorted samples; empty gives NaN', { timeout: 5_000 }, () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(sorted, 0.5), 50);
  assert.equal(percentile(sorted, 0.99), 99);
  assert.equal(percentile(sorted, 1), 100);
  assert.ok(Number.isNaN(percentile([], 0.5)));
  assert.deepEqual(latencySummary([3, 1, 2]), { p50: 2, p99: 3, max: 3, n: 3 });
});

test('CPU per unit of work, and NaN without work rather than a division by zero', { timeout: 5_000 }, () => {
  assert.equal(cpuPer(0.5, 10_000, 1e6), 50);
  assert.equal(cpuPer(2, 1000, 1e3), 2);
  assert.ok(Number.isNaN(cpuPer(1, 0, 1e6)));
});

test('the table gives topology ÷ reference on perf rows only, and marks figures it could not measure', { timeout: 5_000 }, () => {
  assert.equal(ratio(200, 100), 2);
  assert.equal(ratio(Number.NaN, 100), undefined);
  assert.equal(ratio(1, 0), undefined);
  const table = renderTable({
    single: { qos0_msgs_per_s: 10_000, qos0_missing: 0, failover_lost: 0, lat1_p50_ms: 2 },
    nodes2: { qos0_msgs_per_s: 5_000, qos0_missing: 3, failover_lost: 12, lat1_p50_ms: Number.NaN },
  }, ['single', 'nodes2'], 'single');
  const rows = table.split('\n');
  assert.match(rows[0]!, /\| figure +\| single +\| nodes2 +\| nodes2 ÷ single \|/);
  assert.match(rows.find((r) => r.includes('QoS 0 delivered msg/s'))!, /10,000 +\| 5,000 +\| ×0\.50 /);
  assert.match(rows.find((r) => r.includes('failover: lost'))!, /\| 0 +\| 12 +\| +\|$/, 'a fault row has no ratio');
  assert.match(rows.find((r) => r.includes('QoS 1 at 5,000/s: p50'))!, /2\.00 +\| n\/a +\| +\|$/);
  assert.ok(!table.includes('storm'), 'figures no topology measured are left out');
});
