/**
 * The auth chain's contract: providers asked in order, the first answer other than ignore wins and is
 * counted, a provider that throws is a backend failure (never an allow, never bad credentials), and an
 * empty or all-ignore chain refuses with "not authorized".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthChain } from './chain.ts';
import type { Authenticator, Credential, Decision } from './authenticator.ts';

const credential: Credential = {
  clientId: 'c1', username: 'meter-1', password: Buffer.from('pw'), protocolVersion: 5,
  remoteAddress: '127.0.0.1', userProperties: undefined, socket: undefined,
};

/** A provider with a fixed answer that records who was asked, in order. */
function provider(id: string, answer: Decision | Error, asked: string[]): Authenticator {
  return {
    id,
    authenticate: (c) => {
      asked.push(`${id}:${c.username}`);
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
  };
}

const allow: Decision = { kind: 'allow', deviceName: 'dev-1' };
const deny: Decision = { kind: 'deny', reasonCode: 0x86, reason: 'wrong_password' };
const ignore: Decision = { kind: 'ignore' };
const unavailable: Decision = { kind: 'unavailable', reason: 'backend down' };

test('ignores are skipped in order; the first other answer wins and the rest are not asked', { timeout: 5_000 }, async () => {
  const asked: string[] = [];
  const chain = new AuthChain([provider('a', ignore, asked), provider('b', allow, asked), provider('c', deny, asked)]);
  assert.deepEqual(await chain.authenticate(credential), allow);
  assert.deepEqual(asked, ['a:meter-1', 'b:meter-1']);
  assert.deepEqual(chain.stats, { allowed: 1, denied: 0, unavailable: 0 });
});

test('a deny and an unavailable answer are returned as given and counted apart', { timeout: 5_000 }, async () => {
  const asked: string[] = [];
  const denying = new AuthChain([provider('a', deny, asked), provider('b', allow, asked)]);
  assert.deepEqual(await denying.authenticate(credential), deny);
  assert.deepEqual(denying.stats, { allowed: 0, denied: 1, unavailable: 0 });
  const failing = new AuthChain([provider('a', ignore, asked), provider('b', unavailable, asked), provider('c', allow, asked)]);
  assert.deepEqual(await failing.authenticate(credential), unavailable);
  assert.deepEqual(failing.stats, { allowed: 0, denied: 0, unavailable: 1 });
});

test('a provider that throws is "unavailable" naming it, never an allow, and the next one is not asked', { timeout: 5_000 }, async () => {
  const asked: string[] = [];
  const chain = new AuthChain([provider('imported', new Error('db down'), asked), provider('b', allow, asked)]);
  assert.deepEqual(await chain.authenticate(credential), { kind: 'unavailable', reason: 'imported: db down' });
  assert.deepEqual(asked, ['imported:meter-1']);
  assert.deepEqual(chain.stats, { allowed: 0, denied: 0, unavailable: 1 });
  // A thrown value that is not an Error is named as it is.
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a provider rejecting with a non-Error is the case
  const odd = new AuthChain([{ id: 'odd', authenticate: () => Promise.reject('no answer') }]);
  assert.deepEqual(await odd.authenticate(credential), { kind: 'unavailable', reason: 'odd: no answer' });
});

test('an empty or all-ignore chain refuses with 0x87 and counts a denial', { timeout: 5_000 }, async () => {
  const asked: string[] = [];
  for (const chain of [new AuthChain([]), new AuthChain([provider('a', ignore, asked), provider('b', ignore, asked)])]) {
    assert.deepEqual(await chain.authenticate(credential), { kind: 'deny', reasonCode: 0x87, reason: 'no_authenticator_accepted' });
    assert.deepEqual(chain.stats, { allowed: 0, denied: 1, unavailable: 0 });
  }
  assert.deepEqual(asked, ['a:meter-1', 'b:meter-1']);
});
