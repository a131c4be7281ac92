/**
 * The seed corpus: for MQTT 3.1.1 and 5, a connection's worth of frames for every packet type a client
 * may send (CONNECT with and without will and credentials, PUBLISH at each QoS with and without
 * properties, the QoS 2 flow, SUBSCRIBE with wildcards, shared and v5 options, UNSUBSCRIBE, the acks,
 * PINGREQ, DISCONNECT, AUTH), and a few frames that break the rules on purpose. Written to
 * `test/fuzz/corpus/` by `npm run fuzz -- --write-seeds`; the files are committed so a run starts from
 * the same place everywhere.
 */
import { generate, type Packet } from 'mqtt-packet';

type Version = 4 | 5;

function frames(version: Version, ...packets: Packet[]): Buffer {
  return Buffer.concat(packets.map((p) => generate(p, { protocolVersion: version })));
}

function connect(version: Version, extra: Record<string, unknown> = {}): Packet {
  return {
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId: `seed${version}`, keepalive: 30,
    ...extra,
  };
}

export function seedCorpus(): Map<string, Buffer> {
  const seeds = new Map<string, Buffer>();
  for (const v of [4, 5] as const) {
    const v5 = v === 5;
    const tag = v5 ? 'v5' : 'v311';
    const props = (p: Record<string, unknown>): Record<string, unknown> => (v5 ? { properties: p } : {});
    seeds.set(`${tag}-connect`, frames(v, connect(v)));
    seeds.set(`${tag}-connect-will-credentials`, frames(v, connect(v, {
      username: 'user', password: Buffer.from('secret'), clean: false,
      will: { topic: 'seed/will', payload: Buffer.from('gone'), qos: 1, retain: true,
        ...props({ willDelayInterval: 2, payloadFormatIndicator: true, messageExpiryInterval: 60, contentType: 'text/plain',
          responseTopic: 'seed/r', correlationData: Buffer.from([1, 2]), userProperties: { k: 'v' } }) },
      ...props({ sessionExpiryInterval: 30, receiveMaximum: 5, maximumPacketSize: 4_096, topicAliasMaximum: 3,
        requestResponseInformation: true, requestProblemInformation: false, userProperties: { a: 'b' } }),
    })));
    seeds.set(`${tag}-publish-qos0`, frames(v, connect(v), { cmd: 'publish', topic: 'seed/t', payload: Buffer.from('hello'), qos: 0, dup: false, retain: false }));
    seeds.set(`${tag}-publish-qos1-props`, frames(v, connect(v), {
      cmd: 'publish', topic: 'seed/q1', payload: Buffer.from('{"a":1}'), qos: 1, dup: false, retain: false, messageId: 7,
      ...props({ payloadFormatIndicator: true, messageExpiryInterval: 10, topicAlias: 1, responseTopic: 'seed/resp',
        correlationData: Buffer.from('c'), userProperties: { u: ['1', '2'] }, contentType: 'application/json' }),
    }));
    seeds.set(`${tag}-publish-qos2-flow`, frames(v, connect(v),
      { cmd: 'publish', topic: 'seed/q2', payload: Buffer.from('x'), qos: 2, dup: false, retain: false, messageId: 9 },
      { cmd: 'publish', topic: 'seed/q2', payload: Buffer.from('x'), qos: 2, dup: true, retain: false, messageId: 9 },
      { cmd: 'pubrel', messageId: 9 }));
    seeds.set(`${tag}-retain-then-subscribe`, frames(v, connect(v),
      { cmd: 'publish', topic: 'seed/r/1', payload: Buffer.from('kept'), qos: 1, dup: false, retain: true, messageId: 3 },
      { cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 'seed/r/+', qos: 1, ...(v5 ? { rh: 0, rap: true, nl: false } : {}) }] },
      { cmd: 'publish', topic: 'seed/r/1', payload: Buffer.alloc(0), qos: 0, dup: false, retain: true }));
    seeds.set(`${tag}-subscribe-unsubscribe`, frames(v, connect(v),
      { cmd: 'subscribe', messageId: 1, subscriptions: [
        { topic: 'seed/#', qos: 2, ...(v5 ? { nl: true, rap: true, rh: 2 } : {}) },
        { topic: '+/x/+', qos: 0 },
        { topic: '$share/g/seed/s', qos: 1 },
      ], ...props({ subscriptionIdentifier: 42, userProperties: { s: 't' } }) },
      { cmd: 'publish', topic: 'seed/x', payload: Buffer.from('loop'), qos: 1, dup: false, retain: false, messageId: 2 },
      { cmd: 'puback', messageId: 1, ...(v5 ? { reasonCode: 0 } : {}) },
      { cmd: 'unsubscribe', messageId: 5, unsubscriptions: ['seed/#', 'nothing/here'] }));
    seeds.set(`${tag}-acks-unknown-ids`, frames(v, connect(v),
      { cmd: 'puback', messageId: 11 }, { cmd: 'pubrec', messageId: 12 },
      { cmd: 'pubcomp', messageId: 13 }, { cmd: 'pubrel', messageId: 14 }));
    seeds.set(`${tag}-ping-disconnect`, frames(v, connect(v), { cmd: 'pingreq' },
      { cmd: 'disconnect', ...(v5 ? { reasonCode: 0x04, properties: { sessionExpiryInterval: 0, reasonString: 'bye' } } : {}) }));
    seeds.set(`${tag}-publish-before-connect`, frames(v, { cmd: 'publish', topic: 'seed/t', payload: Buffer.from('early'), qos: 0, dup: false, retain: false }));
  }
  seeds.set('v5-auth', frames(5, connect(5, { properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from('d') } }),
    { cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from('e') } }));
  seeds.set('v5-topic-alias-reuse', frames(5, connect(5, { properties: { topicAliasMaximum: 2 } }),
    { cmd: 'publish', topic: 'seed/alias', payload: Buffer.from('1'), qos: 0, dup: false, retain: false, properties: { topicAlias: 1 } },
    { cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 0, dup: false, retain: false, properties: { topicAlias: 1 } }));
  seeds.set('v31-mqisdp', frames(4, { ...connect(4), protocolId: 'MQIsdp', protocolVersion: 3 } as Packet));
  seeds.set('v311-second-connect', frames(4, connect(4), connect(4)));
  return seeds;
}
