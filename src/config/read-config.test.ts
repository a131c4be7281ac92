import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { GatehouseError } from '../core/errors.ts';
import { DEFAULT_SCRYPT_COST } from '../registry/passwords.ts';
import { availableParallelism } from 'node:os';
import { MAX_WORKERS, readConfig, workerNodeId } from './read-config.ts';

function rejects(env: NodeJS.ProcessEnv, key: string, message?: RegExp): void {
  assert.throws(() => readConfig(env, '/srv'), (e: unknown) => {
    assert.ok(e instanceof GatehouseError);
    assert.equal(e.code, 'GW_ERR_CONFIG_INVALID');
    assert.equal(e.field, key);
    assert.ok(e.message.startsWith(key), e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

test('defaults', { timeout: 5_000 }, () => {
  const config = readConfig({}, '/srv');
  assert.deepEqual(config, {
    dataDir: '/srv/data', http: { host: '127.0.0.1', port: 8080 }, mqttHost: '0.0.0.0', publicHost: 'localhost',
    adminToken: undefined, masterKey: undefined, databaseUrl: undefined, natsUrl: undefined, nodeId: undefined, workers: undefined, logLevel: 'info',
    clusterStreamMaxBytes: 1024 ** 3,
    messages: { perDevice: 100, maxAgeHours: 168 },
    deviceProperties: { maxCount: 500, maxBytes: 65536 },
    demo: { enabled: true, port: 8883 },
    passwordScryptN: DEFAULT_SCRYPT_COST.N,
    connectionEvents: { perGateway: 10000, maxAgeHours: 168 },
  });
});

test('every key read', { timeout: 5_000 }, () => {
  const config = readConfig({
    GATEHOUSE_DATA_DIR: '/var/lib/gatehouse', GATEHOUSE_HTTP_PORT: '9090', GATEHOUSE_HTTP_HOST: '::1',
    GATEHOUSE_MQTT_HOST: '10.0.0.5', GATEHOUSE_PUBLIC_HOST: 'gw.example.com', GATEHOUSE_ADMIN_TOKEN: 'a'.repeat(20),
    GATEHOUSE_MASTER_KEY: 'ab'.repeat(32), GATEHOUSE_DATABASE_URL: 'postgres://u:p@db:5432/gatehouse',
    GATEHOUSE_NATS_URL: 'nats://127.0.0.1:4222, tls://nats2:4222', GATEHOUSE_LOG_LEVEL: 'DEBUG',
    GATEHOUSE_MESSAGES_PER_DEVICE: '500', GATEHOUSE_MESSAGES_MAX_AGE_HOURS: '24', GATEHOUSE_PASSWORD_SCRYPT_N: '32768',
  }, '/srv');
  assert.equal(config.passwordScryptN, 32768);
  assert.equal(config.dataDir, '/var/lib/gatehouse');
  assert.deepEqual(config.http, { host: '::1', port: 9090 });
  assert.equal(config.mqttHost, '10.0.0.5');
  assert.equal(config.publicHost, 'gw.example.com');
  assert.equal(config.masterKey?.length, 32);
  assert.equal(config.logLevel, 'debug');
  assert.deepEqual(config.messages, { perDevice: 500, maxAgeHours: 24 });
  assert.equal(readConfig({ GATEHOUSE_MASTER_KEY: Buffer.alloc(32, 3).toString('base64') }).masterKey?.[0], 3);
  assert.equal(readConfig({ GATEHOUSE_PUBLIC_HOST: '[2001:db8::1]' }).publicHost, '2001:db8::1');
});

test('a cluster node (GATEHOUSE_NATS_URL) without PostgreSQL is refused, naming both variables', { timeout: 5_000 }, () => {
  assert.throws(() => readConfig({ GATEHOUSE_NATS_URL: 'nats://127.0.0.1:4222' }, '/srv'), (e: unknown) => {
    assert.ok(e instanceof GatehouseError);
    assert.equal(e.code, 'GW_ERR_CLUSTER_NEEDS_DATABASE');
    assert.equal(e.field, 'GATEHOUSE_DATABASE_URL');
    assert.match(e.message, /GATEHOUSE_NATS_URL.*GATEHOUSE_DATABASE_URL/);
    return true;
  });
  const node = readConfig({ GATEHOUSE_NATS_URL: 'nats://127.0.0.1:4222', GATEHOUSE_DATABASE_URL: 'postgres://db/g', GATEHOUSE_NODE_ID: 'node_a-1' }, '/srv');
  assert.equal(node.natsUrl, 'nats://127.0.0.1:4222');
  assert.equal(node.nodeId, 'node_a-1');
});

test('GATEHOUSE_WORKERS: auto or 1-64, and only for a cluster node, naming the missing variable', { timeout: 5_000 }, () => {
  const cluster = { GATEHOUSE_NATS_URL: 'nats://127.0.0.1:4222', GATEHOUSE_DATABASE_URL: 'postgres://db/g' };
  assert.equal(readConfig(cluster).workers, undefined);
  assert.equal(readConfig({ ...cluster, GATEHOUSE_WORKERS: '2' }).workers, 2);
  assert.equal(readConfig({ ...cluster, GATEHOUSE_WORKERS: '1' }).workers, 1);
  assert.equal(readConfig({ ...cluster, GATEHOUSE_WORKERS: String(MAX_WORKERS) }).workers, MAX_WORKERS);
  assert.equal(readConfig({ ...cluster, GATEHOUSE_WORKERS: 'AUTO' }).workers, Math.min(availableParallelism(), MAX_WORKERS));
  for (const bad of ['0', '-1', '1.5', 'two', String(MAX_WORKERS + 1), '99999999999']) {
    rejects({ ...cluster, GATEHOUSE_WORKERS: bad }, 'GATEHOUSE_WORKERS', /auto or an integer 1-64/);
  }
  const needs = (env: NodeJS.ProcessEnv, field: string, names: RegExp): void => {
    assert.throws(() => readConfig(env, '/srv'), (e: unknown) => {
      assert.ok(e instanceof GatehouseError);
      assert.equal(e.code, 'GW_ERR_WORKERS_NEED_CLUSTER');
      assert.equal(e.field, field);
      assert.match(e.message, names);
      return true;
    });
  };
  needs({ GATEHOUSE_WORKERS: '2' }, 'GATEHOUSE_NATS_URL', /set GATEHOUSE_NATS_URL and GATEHOUSE_DATABASE_URL/);
  needs({ GATEHOUSE_WORKERS: '2', GATEHOUSE_DATABASE_URL: 'postgres://db/g' }, 'GATEHOUSE_NATS_URL', /set GATEHOUSE_NATS_URL,/);
  needs({ GATEHOUSE_WORKERS: 'auto', GATEHOUSE_NATS_URL: 'nats://127.0.0.1:4222' }, 'GATEHOUSE_DATABASE_URL', /set GATEHOUSE_DATABASE_URL,/);
  // A worker's node id (the node's plus -w<index>) must still be a node id: the node's is shorter with workers.
  assert.equal(readConfig({ ...cluster, GATEHOUSE_WORKERS: '2', GATEHOUSE_NODE_ID: 'a'.repeat(60) }).nodeId, 'a'.repeat(60));
  rejects({ ...cluster, GATEHOUSE_WORKERS: '2', GATEHOUSE_NODE_ID: 'a'.repeat(61) }, 'GATEHOUSE_NODE_ID', /at most 60/);
  assert.equal(readConfig({ ...cluster, GATEHOUSE_NODE_ID: 'a'.repeat(64) }).nodeId, 'a'.repeat(64));
  assert.equal(workerNodeId('a'.repeat(60), MAX_WORKERS).length, 64);
});

test('each bad value names its key', { timeout: 5_000 }, () => {
  rejects({ GATEHOUSE_HTTP_PORT: 'http' }, 'GATEHOUSE_HTTP_PORT');
  rejects({ GATEHOUSE_PASSWORD_SCRYPT_N: '10000' }, 'GATEHOUSE_PASSWORD_SCRYPT_N', /power of two/);
  rejects({ GATEHOUSE_PASSWORD_SCRYPT_N: '512' }, 'GATEHOUSE_PASSWORD_SCRYPT_N');
  rejects({ GATEHOUSE_PASSWORD_SCRYPT_N: '2097152' }, 'GATEHOUSE_PASSWORD_SCRYPT_N');
  // The range's ends themselves are accepted: 2^10 and 2^20.
  assert.equal(readConfig({ GATEHOUSE_PASSWORD_SCRYPT_N: '1024' }).passwordScryptN, 1024);
  assert.equal(readConfig({ GATEHOUSE_PASSWORD_SCRYPT_N: '1048576' }).passwordScryptN, 1048576);
  rejects({ GATEHOUSE_MESSAGES_PER_DEVICE: '0' }, 'GATEHOUSE_MESSAGES_PER_DEVICE');
  rejects({ GATEHOUSE_MESSAGES_MAX_AGE_HOURS: '1.5' }, 'GATEHOUSE_MESSAGES_MAX_AGE_HOURS');
  rejects({ GATEHOUSE_HTTP_PORT: '70000' }, 'GATEHOUSE_HTTP_PORT');
  rejects({ GATEHOUSE_HTTP_HOST: 'http://x' }, 'GATEHOUSE_HTTP_HOST');
  rejects({ GATEHOUSE_MQTT_HOST: 'a b' }, 'GATEHOUSE_MQTT_HOST');
  rejects({ GATEHOUSE_PUBLIC_HOST: 'gw.example.com:8883' }, 'GATEHOUSE_PUBLIC_HOST');
  rejects({ GATEHOUSE_ADMIN_TOKEN: 'short' }, 'GATEHOUSE_ADMIN_TOKEN', /16/);
  rejects({ GATEHOUSE_ADMIN_TOKEN: 'has a space in it, long enough' }, 'GATEHOUSE_ADMIN_TOKEN');
  rejects({ GATEHOUSE_MASTER_KEY: 'abcd' }, 'GATEHOUSE_MASTER_KEY', /32 bytes/);
  rejects({ GATEHOUSE_DATABASE_URL: 'mysql://x' }, 'GATEHOUSE_DATABASE_URL');
  rejects({ GATEHOUSE_DATABASE_URL: 'not a url' }, 'GATEHOUSE_DATABASE_URL');
  rejects({ GATEHOUSE_NATS_URL: 'http://nats', GATEHOUSE_DATABASE_URL: 'postgres://db/g' }, 'GATEHOUSE_NATS_URL');
  rejects({ GATEHOUSE_NODE_ID: 'node.1' }, 'GATEHOUSE_NODE_ID');
  rejects({ GATEHOUSE_NODE_ID: 'x'.repeat(65) }, 'GATEHOUSE_NODE_ID');
  rejects({ GATEHOUSE_LOG_LEVEL: 'loud' }, 'GATEHOUSE_LOG_LEVEL');
  rejects({ GATEHOUSE_DEMO: 'no' }, 'GATEHOUSE_DEMO', /on or off/);
  rejects({ GATEHOUSE_DEMO_PORT: '80' }, 'GATEHOUSE_DEMO_PORT', /1024-65535/);
  rejects({ GATEHOUSE_DEMO_PORT: '70000' }, 'GATEHOUSE_DEMO_PORT');
  rejects({ GATEHOUSE_EVENTS_PER_GATEWAY: '5' }, 'GATEHOUSE_EVENTS_PER_GATEWAY');
  rejects({ GATEHOUSE_EVENTS_MAX_AGE_HOURS: '0' }, 'GATEHOUSE_EVENTS_MAX_AGE_HOURS');
  rejects({ GATEHOUSE_CLUSTER_STREAM_MAX_MB: '0' }, 'GATEHOUSE_CLUSTER_STREAM_MAX_MB', /1-1048576/);
  rejects({ GATEHOUSE_CLUSTER_STREAM_MAX_MB: '1048577' }, 'GATEHOUSE_CLUSTER_STREAM_MAX_MB');
  assert.equal(readConfig({ GATEHOUSE_CLUSTER_STREAM_MAX_MB: '64' }).clusterStreamMaxBytes, 64 * 1024 * 1024);
});

test('the demo gateway: off, or on another port, from the environment or the config file', { timeout: 5_000 }, () => {
  assert.deepEqual(readConfig({ GATEHOUSE_DEMO: 'off', GATEHOUSE_DEMO_PORT: '18883' }).demo, { enabled: false, port: 18883 });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-config-'));
  try {
    const file = path.join(dir, 'gatehouse.env');
    writeFileSync(file, 'GATEHOUSE_DEMO=off\nGATEHOUSE_DEMO_PORT=9883\n');
    assert.deepEqual(readConfig({ GATEHOUSE_CONFIG_FILE: file }).demo, { enabled: false, port: 9883 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a config file with the same keys; the environment wins', { timeout: 5_000 }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-config-'));
  try {
    const file = path.join(dir, 'gatehouse.env');
    writeFileSync(file, '# comment\nGATEHOUSE_HTTP_PORT=9000\nexport GATEHOUSE_PUBLIC_HOST="file.example.com"\n\nGATEHOUSE_LOG_LEVEL=warn\n');
    const config = readConfig({ GATEHOUSE_CONFIG_FILE: file, GATEHOUSE_LOG_LEVEL: 'error' });
    assert.equal(config.http.port, 9000);
    assert.equal(config.publicHost, 'file.example.com');
    assert.equal(config.logLevel, 'error');
    writeFileSync(file, 'GATEHOUSE_PORT=1\n');
    rejects({ GATEHOUSE_CONFIG_FILE: file }, 'GATEHOUSE_CONFIG_FILE', /unknown key GATEHOUSE_PORT/);
    rejects({ GATEHOUSE_CONFIG_FILE: path.join(dir, 'missing') }, 'GATEHOUSE_CONFIG_FILE');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
