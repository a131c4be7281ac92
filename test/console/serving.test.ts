/** How Gatehouse serves the console: built files, index.html for console routes, a build hint when not built. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { registerConsole } from '../../src/api/console.ts';
import { notFound } from '../../src/api/errors.ts';

async function appFor(distDir: string) {
  const app = Fastify();
  app.setNotFoundHandler(registerConsole(app, notFound, { distDir }));
  app.get('/api/v1/gateways', () => ({ items: [] }));
  await app.ready();
  return app;
}

test('a built console: files at their paths, index.html for console routes, API 404s stay JSON', { timeout: 15_000 }, async () => {
  const dist = await mkdtemp(path.join(os.tmpdir(), 'gh-console-'));
  after(() => rm(dist, { recursive: true, force: true }), { timeout: 30_000 });
  await mkdir(path.join(dist, 'assets'));
  await writeFile(path.join(dist, 'index.html'), '<!doctype html><div id="root"></div>');
  await writeFile(path.join(dist, 'assets', 'index-abc.js'), 'console.log(1)');
  const app = await appFor(dist);
  after(() => app.close(), { timeout: 30_000 });

  const root = await app.inject({ method: 'GET', url: '/' });
  assert.equal(root.statusCode, 200);
  assert.match(root.body, /id="root"/);
  for (const url of ['/gateways/new', '/products/abc?x=1']) {
    const page = await app.inject({ method: 'GET', url });
    assert.equal(page.statusCode, 200, url);
    assert.match(page.headers['content-type'] as string, /text\/html/);
    assert.match(page.body, /id="root"/);
  }
  const asset = await app.inject({ method: 'GET', url: '/assets/index-abc.js' });
  assert.equal(asset.statusCode, 200);
  assert.match(asset.headers['cache-control'] as string, /immutable/);

  const missingAsset = await app.inject({ method: 'GET', url: '/assets/gone.js' });
  assert.equal(missingAsset.statusCode, 404);
  assert.equal(missingAsset.json<{ error: { code: string } }>().error.code, 'GW_ERR_NOT_FOUND');
  const api = await app.inject({ method: 'GET', url: '/api/v1/nothing' });
  assert.equal(api.statusCode, 404);
  assert.equal(api.json<{ error: { code: string } }>().error.code, 'GW_ERR_NOT_FOUND');
  const post = await app.inject({ method: 'POST', url: '/gateways/new' });
  assert.equal(post.statusCode, 404);
});

test('no build: / says how to build the console, and nothing crashes', { timeout: 5_000 }, async () => {
  const app = await appFor(path.join(os.tmpdir(), 'gh-console-never-built'));
  after(() => app.close(), { timeout: 30_000 });
  const root = await app.inject({ method: 'GET', url: '/' });
  assert.equal(root.statusCode, 200);
  assert.match(root.body, /npm --prefix console install/);
  const deep = await app.inject({ method: 'GET', url: '/gateways' });
  assert.equal(deep.statusCode, 404);
  assert.match(deep.body, /has not been built/);
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/gateways' })).statusCode, 200);
});
