/** Where the CLI finds the API: --url, GATEHOUSE_URL, or the server's own GATEHOUSE_HTTP_HOST / _PORT (issue 14 item 7). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiUrl } from './admin-commands.ts';

test('--url wins, then GATEHOUSE_URL, then GATEHOUSE_HTTP_HOST and GATEHOUSE_HTTP_PORT, then 127.0.0.1:8080', { timeout: 5_000 }, () => {
  const env = { GATEHOUSE_URL: 'http://api.example:9000', GATEHOUSE_HTTP_HOST: '10.0.0.5', GATEHOUSE_HTTP_PORT: '9090' };
  assert.equal(apiUrl('http://flag:1', env), 'http://flag:1');
  assert.equal(apiUrl(undefined, env), 'http://api.example:9000');
  assert.equal(apiUrl(undefined, { GATEHOUSE_HTTP_HOST: '10.0.0.5', GATEHOUSE_HTTP_PORT: '9090' }), 'http://10.0.0.5:9090');
  assert.equal(apiUrl(undefined, { GATEHOUSE_HTTP_PORT: '9090' }), 'http://127.0.0.1:9090');
  assert.equal(apiUrl(undefined, {}), 'http://127.0.0.1:8080');
});

test('a wildcard bind is reached on loopback; an IPv6 address gets brackets', { timeout: 5_000 }, () => {
  assert.equal(apiUrl(undefined, { GATEHOUSE_HTTP_HOST: '0.0.0.0', GATEHOUSE_HTTP_PORT: '8081' }), 'http://127.0.0.1:8081');
  assert.equal(apiUrl(undefined, { GATEHOUSE_HTTP_HOST: '::' }), 'http://[::1]:8080');
  assert.equal(apiUrl(undefined, { GATEHOUSE_HTTP_HOST: '::1', GATEHOUSE_HTTP_PORT: '8082' }), 'http://[::1]:8082');
});
