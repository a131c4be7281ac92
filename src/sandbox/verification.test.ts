import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, test } from 'node:test';
import { QuickJsRunner } from './index.ts';
import { errorOf, valueOf } from './test-support.ts';

// Verification functions as issue 5 runs them: handler({userName, password, clientId,
// certificateCommonName}) → {result, deviceName?, message?}.

const runner = new QuickJsRunner();
after(() => runner.dispose(), { timeout: 30_000 });

const HANDLER = { kind: 'module-function', entry: 'handler' } as const;
const event = { userName: 'sensor-01', password: 'secret', clientId: 'client-1', certificateCommonName: null };

test('a handler that accepts answers with its object', { timeout: 45_000 }, async () => {
  const script = await runner.compile(
    'function handler(event) { return { result: "true", deviceName: event.userName }; }', HANDLER);
  const result = await script.invoke([event]);
  assert.deepEqual(valueOf(result), { result: 'true', deviceName: 'sensor-01' });
  assert.equal(typeof result.durationMs, 'number');
  assert.deepEqual(script.stats().failures.threw, 0);
  assert.equal(script.stats().succeeded, 1);
});

test('a handler that rejects answers with its reason (booleans pass through as they are)', { timeout: 30_000 }, async () => {
  const script = await runner.compile(`
    function handler({ userName, password }) {
      if (userName === 'sensor-01' && password === 'secret') return { result: true, deviceName: userName };
      return { result: false, message: 'unknown device ' + userName };
    }`, HANDLER);
  assert.deepEqual(valueOf(await script.invoke([event])), { result: true, deviceName: 'sensor-01' });
  assert.deepEqual(valueOf(await script.invoke([{ ...event, password: 'guess' }])),
    { result: false, message: 'unknown device sensor-01' });
});

test('an async handler is awaited within the same limits', { timeout: 5_000 }, async () => {
  const script = await runner.compile(`
    async function handler(event) {
      await null;
      const ok = await Promise.resolve(event.password === 'secret');
      return ok ? { result: 'true', deviceName: event.userName } : { result: 'false' };
    }`, HANDLER);
  assert.deepEqual(valueOf(await script.invoke([event])), { result: 'true', deviceName: 'sensor-01' });
  assert.deepEqual(valueOf(await script.invoke([{ ...event, password: 'x' }])), { result: 'false' });
});

test('an async handler that rejects reports threw with the message and line', { timeout: 5_000 }, async () => {
  const script = await runner.compile([
    'async function handler(event) {',
    '  await null;',
    '  throw new Error("directory said no to " + event.userName);',
    '}',
  ].join('\n'), { ...HANDLER, filename: 'fn-reject.js' });
  assert.deepEqual(errorOf(await script.invoke([event])),
    { kind: 'threw', message: 'Error: directory said no to sensor-01 (line 3)', line: 3 });
});

test('an HMAC-signed password is verified with the host library, matching node:crypto', { timeout: 5_000 }, async () => {
  // The scheme of Aliyun-style device signing: password = "<timestamp>:<hex hmac-sha256>" over
  // clientId + deviceName + timestamp, keyed with the device secret.
  const script = await runner.compile(`
    const SECRETS = { 'sensor-01': 'd3v1ce-s3cret' };
    function handler({ userName, password, clientId }) {
      const secret = SECRETS[userName];
      if (!secret) return { result: 'false', message: 'unknown device' };
      const [timestamp, signature] = String(password).split(':');
      const expected = gatehouse.crypto.hmac('sha256', secret,
        'clientId' + clientId + 'deviceName' + userName + 'timestamp' + timestamp);
      if (!gatehouse.crypto.timingSafeEqual(expected, signature || '')) {
        return { result: 'false', message: 'bad signature' };
      }
      return { result: 'true', deviceName: userName };
    }`, HANDLER);
  const timestamp = '1767225600000';
  const signature = createHmac('sha256', 'd3v1ce-s3cret')
    .update(`clientIdclient-1deviceNamesensor-01timestamp${timestamp}`).digest('hex');

  assert.deepEqual(valueOf(await script.invoke([{ ...event, password: `${timestamp}:${signature}` }])),
    { result: 'true', deviceName: 'sensor-01' });
  const tampered = `${timestamp}:${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`;
  assert.deepEqual(valueOf(await script.invoke([{ ...event, password: tampered }])),
    { result: 'false', message: 'bad signature' });
  assert.deepEqual(valueOf(await script.invoke([{ ...event, userName: 'nobody' }])),
    { result: 'false', message: 'unknown device' });
});

test('a handler can be a const arrow function or module.exports.handler', { timeout: 5_000 }, async () => {
  const arrow = await runner.compile('const handler = (e) => ({ result: "true", deviceName: e.clientId });', HANDLER);
  assert.deepEqual(valueOf(await arrow.invoke([event])), { result: 'true', deviceName: 'client-1' });
  const commonJs = await runner.compile('exports.handler = async (e) => ({ result: "false", message: e.userName });', HANDLER);
  assert.deepEqual(valueOf(await commonJs.invoke([event])), { result: 'false', message: 'sensor-01' });
});

test('state at the top level persists between calls of the same compiled script', { timeout: 5_000 }, async () => {
  const script = await runner.compile('let seen = 0; function handler() { seen++; return { result: "true", seen }; }', HANDLER);
  await script.invoke([event]);
  assert.deepEqual(valueOf(await script.invoke([event])), { result: 'true', seen: 2 });
});
