/**
 * src/client/api-types.ts is what `npm run api:generate` makes of the route schemas as they are: a route or
 * schema changed without regenerating fails here (and the console and CLI would be typed against the old API).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { firstDifference, generateApiTypes, TYPES_FILE } from '../../scripts/api-generate.mjs';
import { openApiDocument } from '../../src/api/openapi-document.ts';

test('the committed API types are generated from the current route schemas', { timeout: 120_000 }, async () => {
  const committed = await readFile(TYPES_FILE, 'utf8');
  const difference = firstDifference(await generateApiTypes(), committed);
  assert.equal(difference, null,
    `src/client/api-types.ts is stale at line ${difference?.line}: run npm run api:generate and commit it\n`
    + `  generated: ${difference?.expected}\n  committed: ${difference?.actual}`);
});

test('the document is the served one: every /api/v1 resource and the probes, built without storage or a listener', { timeout: 60_000 }, async () => {
  const document = await openApiDocument() as { paths: Record<string, Record<string, unknown>> };
  const paths = Object.keys(document.paths);
  for (const path of ['/api/v1/gateways/{id}', '/api/v1/products/{productKey}/devices', '/api/v1/events', '/api/v1/stream', '/api/v1/webhooks/{id}',
    '/api/v1/products/{productKey}/devices/{deviceName}/sessions', '/api/v1/functions/{name}/invoke', '/health', '/ready']) {
    assert.ok(paths.includes(path), `${path} is missing from ${paths.join(', ')}`);
  }
  // The stream documents its 200 as text/event-stream (the one answer that is not JSON besides /metrics).
  const stream = document.paths['/api/v1/stream']?.get as { responses: Record<string, { content?: Record<string, unknown> }> };
  assert.deepEqual(Object.keys(stream.responses['200']?.content ?? {}), ['text/event-stream']);
});

test('firstDifference names the first line that differs, and null for equal texts', { timeout: 5_000 }, () => {
  assert.equal(firstDifference('a\nb\n', 'a\nb\n'), null);
  assert.deepEqual(firstDifference('a\nb\nc', 'a\nx\nc'), { line: 2, expected: 'b', actual: 'x' });
  assert.deepEqual(firstDifference('a\nb', 'a'), { line: 2, expected: 'b', actual: '(end of file)' });
});
