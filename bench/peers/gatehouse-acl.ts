/**
 * The Gatehouse engine with topic access control (issue 13): every client gets a device identity and a
 * session ACL compiled at CONNECT from `--rules N` rules (0, 2 or 20), and PUBLISH and SUBSCRIBE pass
 * the same authorizePublish / authorizeSubscribe work a gateway's hooks do (src/gateway/instance.ts).
 * Compared with `gatehouse` (no hooks at all), it shows what access control costs per message.
 *
 * The rules let the bench's traffic through (publishers on bench/<i>, one subscriber on bench/#), placed
 * last so a session first reads every other rule: 2 = ALLOW ALL bench/# then DENY SUBSCRIBE # (the shape
 * of the per-device template), 20 = eighteen per-device rules that never match, then those two.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Broker, listen, type ClientInfo } from '../../src/broker/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import { RC } from '../../src/mqtt/reason-codes.ts';
import { parseSharedFilter } from '../../src/mqtt/topics.ts';
import { compileSessionAcl, type SessionAcl } from '../../src/gateway/acl/index.ts';
import type { AclRule } from '../../src/registry/access-control.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' }, 'tls-port': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' },
    rules: { type: 'string', default: '0' },
  },
});

const count = Number(values.rules);
const LAST: AclRule[] = [{ action: 'ALLOW', access: 'ALL', topic: 'bench/#' }, { action: 'DENY', access: 'SUBSCRIBE', topic: '#' }];
const OTHERS: AclRule[] = Array.from({ length: Math.max(0, count - LAST.length) }, (_, i) => ({
  action: i % 2 === 0 ? 'ALLOW' : 'DENY', access: 'ALL', topic: `fleet/${i}/\${deviceName}/#`,
}));
const rules = count === 0 ? [] : [...OTHERS, ...LAST].slice(-count);
const defaultAction = count === 0 ? 'ALLOW' : 'DENY';

const aclOf = (client: ClientInfo): SessionAcl | undefined => (client.identity as { acl?: SessionAcl } | undefined)?.acl;
const logger = createLogger(process.env.GATEHOUSE_LOG_LEVEL ?? 'warn');
const broker = new Broker({
  logger,
  hooks: {
    authenticate: (req) => ({
      ok: true,
      identity: {
        gatewayId: 'bench', productKey: 'bench', deviceName: req.clientId,
        acl: compileSessionAcl(rules, defaultAction, {
          deviceName: req.clientId, username: req.username, clientId: req.clientId, productKey: 'bench', 'cert.cn': undefined,
        }),
      },
      owner: req.clientId,
    }),
    authorizePublish: (client, topic) => (aclOf(client)?.canPublish(topic) === false ? RC.NOT_AUTHORIZED : RC.SUCCESS),
    authorizeSubscribe: (client, raw, qos) => {
      const shared = parseSharedFilter(raw);
      const filter = shared === null || shared === 'invalid' ? raw : shared.filter;
      return aclOf(client)?.canSubscribe(filter) === false ? RC.NOT_AUTHORIZED : qos;
    },
  },
});

const listeners = [await listen(broker, { host: '127.0.0.1', port: Number(values.port) })];
if (values['tls-port'] !== undefined && values['tls-cert'] !== undefined && values['tls-key'] !== undefined) {
  listeners.push(await listen(broker, {
    host: '127.0.0.1', port: Number(values['tls-port']),
    tls: { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) },
  }));
}

const stop = async (): Promise<void> => {
  logger.warn({ rules: rules.length, refused: broker.stats.droppedUnauthorized }, 'bench_acl_totals');
  await broker.close();
  await Promise.all(listeners.map((l) => l.close()));
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
