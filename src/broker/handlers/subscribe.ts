/** SUBSCRIBE: validate, authorize and store each filter, answer SUBACK, then send retained messages. */
import type { ISubscribePacket, ISubscription, QoS } from '../../mqtt/codec.ts';
import { RC, V3_SUBACK_FAILURE } from '../../mqtt/reason-codes.ts';
import { isValidTopicFilter, parseSharedFilter } from '../../mqtt/topics.ts';
import type { Subscription, SubscriptionOptions } from '../session.ts';
import type { Connection } from '../connection.ts';
import { nextTurn, pastDeadline, sliceDeadline } from '../slices.ts';

interface Outcome {
  code: number;
  /** Set when retained messages are due for this filter (after the SUBACK). */
  retainedFor?: Subscription;
}

export function handleSubscribe(conn: Connection, packet: ISubscribePacket): void | Promise<void> {
  // [MQTT-3.8.3-2] at least one Topic Filter.
  if (packet.subscriptions.length === 0) return conn.protocolViolation(RC.PROTOCOL_ERROR, 'subscribe_without_filters');
  const subId = conn.isV5 ? packet.properties?.subscriptionIdentifier : undefined;
  // [MQTT-3.8.3-?] Subscription Identifier 0 is a protocol error.
  if (subId === 0) return conn.protocolViolation(RC.PROTOCOL_ERROR, 'subscription_identifier_zero');
  for (const s of packet.subscriptions) {
    // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
    if (s.nl === true && s.topic.startsWith('$share/')) return conn.protocolViolation(RC.PROTOCOL_ERROR, 'no_local_on_shared');
  }
  const outcomes: Outcome[] = [];
  const run = (from: number): void | Promise<void> => {
    const deadline = sliceDeadline();
    for (let i = from; i < packet.subscriptions.length; i++) {
      // Taken over or closed while this packet waited for its next slice: nothing more to do.
      if (conn.state === 'closed') return;
      if (i > from && pastDeadline(deadline)) return nextTurn().then(() => run(i));
      const r = subscribeOne(conn, packet.subscriptions[i]!, subId);
      if (r instanceof Promise) {
        const at = i;
        return r.then((o) => {
          outcomes.push(o);
          return run(at + 1);
        });
      }
      outcomes.push(r);
    }
    // In a cluster, the SUBACK waits until the other nodes route to this one: a message published
    // anywhere after the SUBACK reaches the new subscription; and, when retained messages are due, until
    // this node holds every retained message the cluster held, so none acknowledged anywhere is missed.
    const settled = conn.broker.clusterSettled(outcomes.some((o) => o.retainedFor !== undefined));
    if (settled !== undefined) return settled.then(() => answer(conn, packet.messageId ?? 0, outcomes));
    answer(conn, packet.messageId ?? 0, outcomes);
  };
  return run(0);
}

function failure(conn: Connection, v5Code: number): Outcome {
  conn.broker.stats.subscriptionsRefused++;
  return { code: conn.isV5 ? v5Code : V3_SUBACK_FAILURE };
}

function subscribeOne(conn: Connection, s: ISubscription, subId: number | undefined): Outcome | Promise<Outcome> {
  const raw = s.topic;
  const shared = parseSharedFilter(raw);
  if (shared === 'invalid') return failure(conn, RC.TOPIC_FILTER_INVALID);
  const filter = shared === null ? raw : shared.filter;
  if (!isValidTopicFilter(filter)) return failure(conn, RC.TOPIC_FILTER_INVALID); // [MQTT-4.7.1-1, MQTT-4.7.1-2]
  // Deeper or longer than the engine accepts: refused like an invalid filter (EMQX answers 0x8F too).
  if (!conn.broker.topicWithinLimits(raw)) {
    return failure(conn, RC.TOPIC_FILTER_INVALID);
  }
  const session = conn.session!;
  if (!session.subscriptions.has(raw) && session.subscriptions.size >= conn.broker.options.maxSubscriptionsPerClient) {
    conn.broker.stats.subscriptionsOverLimit++;
    return failure(conn, RC.QUOTA_EXCEEDED); // v3.1.1 0x80
  }
  // [MQTT-3.8.4-?] the granted QoS is at most the server's maximum.
  const requested = Math.min(s.qos, conn.broker.options.maximumQoS) as QoS;
  const authorize = conn.broker.hooks.authorizeSubscribe;
  if (authorize === undefined) return store(conn, s, raw, filter, shared === null ? undefined : shared.group, requested, subId);
  const verdict = authorize(conn, raw, requested);
  const decide = (granted: number): Outcome => {
    if (granted >= 0x80) return failure(conn, granted);
    return store(conn, s, raw, filter, shared === null ? undefined : shared.group, Math.min(granted, requested) as QoS, subId);
  };
  return typeof verdict === 'number' ? decide(verdict) : verdict.then(decide);
}

function store(conn: Connection, s: ISubscription, raw: string, filter: string, group: string | undefined, qos: QoS,
  subId: number | undefined): Outcome {
  const session = conn.session!;
  const options: SubscriptionOptions = { qos, noLocal: s.nl === true, retainAsPublished: s.rap === true, retainHandling: s.rh ?? 0, subscriptionId: subId };
  const existing = session.subscriptions.get(raw);
  let sub: Subscription;
  if (existing !== undefined && group === undefined) {
    // [MQTT-3.8.4-3] the same filter again replaces the subscription without interrupting its flow of publications: a
    // non-shared one keeps its place in the router and takes the new options (devices re-subscribe at every reconnect).
    conn.broker.resubscribe((sub = existing), options);
  } else {
    if (existing !== undefined) conn.broker.unsubscribe(existing); // a shared one leaves its group and joins it again
    conn.broker.subscribe((sub = { session, raw, filter, group, ...options }));
  }
  // Retain Handling: 0 send, 1 send only for a new subscription, 2 never [MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11];
  // never for shared subscriptions [§4.8.2].
  const sendRetained = group === undefined && (sub.retainHandling === 0 || (sub.retainHandling === 1 && existing === undefined));
  return { code: qos, retainedFor: sendRetained ? sub : undefined };
}

function answer(conn: Connection, packetId: number, outcomes: Outcome[]): void {
  if (conn.state === 'closed') return;
  // [MQTT-3.8.4-1] SUBACK with the same Packet Identifier; one code per filter [MQTT-3.8.4-6].
  conn.send({ cmd: 'suback', messageId: packetId, granted: outcomes.map((o) => o.code) });
  const now = conn.broker.now();
  for (const o of outcomes) {
    const sub = o.retainedFor;
    if (sub === undefined) continue;
    let matched = conn.broker.retained.match(sub.filter, now);
    if (sub.noLocal) matched = matched.filter((m) => m.senderId !== conn.clientId);
    // Sent with RETAIN set, at most the granted QoS, paced by the client (never dropped for its pace).
    const store = conn.broker.retained;
    sub.session.sendRetained(sub.raw, matched, sub.qos, sub.subscriptionId === undefined ? undefined : [sub.subscriptionId], store);
  }
}
