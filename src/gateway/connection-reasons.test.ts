import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RC } from '../mqtt/reason-codes.ts';
import { endedConnectReason } from './connection-reasons.ts';

const refused = (step: string, reasonCode: number, detail: string) => endedConnectReason('connect_refused', { sent: reasonCode, reasonCode, step, detail });

test('another device\'s client id is CLIENT_ID_IN_USE whether this node holds the session or the cluster\'s record says another does', { timeout: 5_000 }, () => {
  const inUse = { reason: 'CLIENT_ID_IN_USE', detail: 'the client id names a session of another device' };
  assert.deepEqual(refused('checkSessionOwner', RC.CLIENT_IDENTIFIER_NOT_VALID, 'client_id_owned_by_another_owner'), inUse);
  // Under GATEHOUSE_WORKERS or on a cluster the session is often held elsewhere: claimSession refuses it (was PROTOCOL_ERROR).
  assert.deepEqual(refused('claimSession', RC.CLIENT_IDENTIFIER_NOT_VALID, 'client_id_owned_by_another_owner'), inUse);
  assert.equal(refused('claimSession', RC.SERVER_UNAVAILABLE, 'session_claim_failed')?.reason, 'CLUSTER_UNAVAILABLE');
  assert.equal(refused('checkSessionOwner', RC.QUOTA_EXCEEDED, 'maxSessionsPerOwner (2)')?.reason, 'QUOTA_EXCEEDED');
});
