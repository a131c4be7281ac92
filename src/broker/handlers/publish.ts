/**
 * Inbound PUBLISH as ordered checks, then authorization (a hook, maybe async), routing and the
 * acknowledgement of its QoS flow.
 */
import { isUtf8 } from 'node:buffer';
import { forwardedPropertiesOf, type IPublishPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import { isValidTopicName } from '../../mqtt/topics.ts';
import type { Qos2Intent } from '../cluster-link.ts';
import { createMessage, type Message } from '../message.ts';
import type { Connection } from '../connection.ts';
import type { Session } from '../session.ts';

/** Bytes counted for a PUBLISH waiting to be handed on, besides its topic and payload. */
const GATED_OVERHEAD = 64;

export function handlePublish(conn: Connection, packet: IPublishPacket): void | Promise<void> {
  const opts = conn.broker.options;
  const session = conn.session!;
  const qos = packet.qos;
  const packetId = packet.messageId ?? 0;

  // [MQTT-3.2.2-11] a QoS above the Maximum QoS we announced.
  if (qos > opts.maximumQoS) return conn.protocolViolation(RC.QOS_NOT_SUPPORTED, 'qos_not_supported');
  // [MQTT-3.2.2-14] retain when we announced Retain Available = 0.
  if (packet.retain && !opts.retainAvailable) return conn.protocolViolation(RC.RETAIN_NOT_SUPPORTED, 'retain_not_supported');

  let topic = packet.topic;
  const alias = conn.isV5 ? packet.properties?.topicAlias : undefined;
  if (alias !== undefined) {
    // [MQTT-3.3.2-8] alias 0 or above our Topic Alias Maximum → DISCONNECT 0x94.
    if (alias === 0 || alias > opts.topicAliasMaximum) return conn.protocolViolation(RC.TOPIC_ALIAS_INVALID, 'topic_alias_invalid');
    if (topic.length > 0) {
      conn.inboundAliases.set(alias, topic); // [MQTT-3.3.2-12] (re)binds the alias
    } else {
      const known = conn.inboundAliases.get(alias);
      // An alias never bound on this connection is a protocol error [§3.3.2.3.4].
      if (known === undefined) return conn.protocolViolation(RC.PROTOCOL_ERROR, 'topic_alias_unknown');
      topic = known;
    }
  }
  // [MQTT-1.5.4-2] U+0000 in a UTF-8 string is a malformed packet.
  if (topic.includes('\u0000')) return conn.protocolViolation(RC.MALFORMED_PACKET, 'topic_contains_null');
  // A zero-length topic without a Topic Alias is a protocol error [MQTT-3.3.2-?, §3.3.2.1].
  if (topic.length === 0) return conn.protocolViolation(RC.PROTOCOL_ERROR, 'topic_empty');
  // [MQTT-3.3.2-2] no wildcards in a topic name.
  if (!isValidTopicName(topic)) return conn.protocolViolation(RC.TOPIC_NAME_INVALID, 'topic_name_invalid');
  // Deeper or longer than the engine accepts (as EMQX's max_topic_levels / max_topic_length): 0x90.
  if (!conn.broker.topicWithinLimits(topic)) {
    return conn.protocolViolation(RC.TOPIC_NAME_INVALID, 'topic_over_limits');
  }
  if (conn.isV5) {
    const p = packet.properties;
    // [MQTT-3.3.2-14] the Response Topic is a topic name: no wildcards.
    if (p?.responseTopic !== undefined && !isValidTopicName(p.responseTopic)) return conn.protocolViolation(RC.PROTOCOL_ERROR, 'response_topic_invalid');
    // [MQTT-3.3.4-6] a client PUBLISH must not carry a Subscription Identifier.
    if (p?.subscriptionIdentifier !== undefined) return conn.protocolViolation(RC.PROTOCOL_ERROR, 'subscription_identifier_from_client');
  }

  // A re-sent QoS 2 PUBLISH we already took: acknowledge again, do not deliver twice [MQTT-4.3.3-10]. On a cluster
  // node whose stream is still storing the first one (the client reconnected meanwhile), the PUBREC waits for that
  // store, as the first one's did: neither earlier, nor a second store of the same message. One whose first store
  // the node that held the session was making when it went is stored again, under the id that store was made under
  // (the stream keeps one copy of the two).
  if (qos === 2 && session.incomingQos2.has(packetId) && !session.qos2Unconfirmed(packetId)) {
    // The first one given up (its store id could not be written): nor is this one answered, its connection goes too.
    const storing = session.qos2Storing(packetId)?.then((ok) => {
      if (ok === undefined) conn.disconnect(RC.USE_ANOTHER_SERVER, 'cluster_session_unwritable');
      return ok;
    });
    acknowledge(conn, 2, packetId, RC.SUCCESS, storing);
    return;
  }
  // [MQTT-3.3.4-9] more unacknowledged QoS 2 PUBLISHes than our Receive Maximum.
  if (qos === 2 && session.incomingQos2.size >= opts.receiveMaximum && !session.incomingQos2.has(packetId)) {
    return conn.protocolViolation(RC.RECEIVE_MAXIMUM_EXCEEDED, 'receive_maximum_exceeded');
  }

  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
  const props = conn.isV5 ? packet.properties : undefined;
  // [MQTT-3.3.2-?] Payload Format Indicator 1 promises UTF-8: check it and refuse with 0x99 if not.
  if (props?.payloadFormatIndicator === true && !isUtf8(payload)) {
    conn.broker.stats.droppedInvalidPayload++;
    acknowledge(conn, qos, packetId, RC.PAYLOAD_FORMAT_INVALID);
    return;
  }
  const expiry = props?.messageExpiryInterval;
  const message = createMessage({
    topic,
    payload,
    qos,
    retain: packet.retain,
    properties: forwardedPropertiesOf(props),
    expiresAt: expiry === undefined ? 0 : conn.broker.now() + expiry * 1000,
    senderId: conn.clientId,
  });

  const authorize = conn.broker.hooks.authorizePublish;
  if (authorize === undefined) return route(conn, message, packetId);
  const verdict = authorize(conn, topic, message);
  if (typeof verdict === 'number') return finish(conn, message, packetId, verdict);
  return verdict.then((rc) => finish(conn, message, packetId, rc));
}

function finish(conn: Connection, message: Message, packetId: number, verdict: number): void {
  if (conn.state === 'closed') return;
  if (verdict !== RC.SUCCESS) {
    conn.broker.stats.droppedUnauthorized++;
    acknowledge(conn, message.qos, packetId, verdict); // v3.1.1 cannot refuse: acked and dropped
    return;
  }
  route(conn, message, packetId);
}

function route(conn: Connection, message: Message, packetId: number): void {
  // A cluster node cut off from the others fails closed (issue 16 item 8): a QoS 1/2 message it cannot
  // pass on is not acknowledged, and its connection goes (v5: 0x9C use another server), so the client
  // sends it again, with DUP, once it is connected to a node that can route it. Nothing is delivered here
  // first: a QoS 2 message delivered now and again after the retry would arrive twice.
  if (message.qos > 0 && !conn.broker.clusterReachable()) {
    conn.broker.stats.publishesRefusedClusterUnreachable++;
    conn.disconnect(RC.USE_ANOTHER_SERVER, 'cluster_unreachable');
    return;
  }
  // A new retained topic beyond the store's limit is refused as a whole (0x97).
  const refusal = message.retain ? conn.broker.retained.refusal(message) : null;
  if (refusal !== null) {
    conn.broker.stats.droppedRetainedQuota++;
    if (refusal === 'bytes') conn.broker.stats.retainedOverBytes++;
    acknowledge(conn, message.qos, packetId, RC.QUOTA_EXCEEDED);
    return;
  }
  // On a cluster node a QoS 1/2 message is acknowledged once the cluster's stream holds it, so it survives this
  // node's death (issue 16 item 2), and a retained message once the cluster's store holds it, so any later
  // subscriber, on any node, gets it (issue 16 item 4).
  // QoS 2 on a cluster node: the session's record names the stream message id before the store is made.
  const intent = message.qos === 2 ? conn.broker.qos2Receiving(conn.session!, packetId) : undefined;
  const gate = conn.publishGate;
  const held = intent?.written === undefined && gate === null
    ? conn.broker.publish(message, conn, intent?.storeId)
    : publishAfter(conn, message, packetId, gate, intent);
  if (message.qos === 2) {
    const session = conn.session!;
    session.takeQos2(packetId, intent === undefined ? held : held?.then((ok) => {
      if (ok) conn.broker.qos2Received(session, packetId);
      return ok;
    }));
  }
  acknowledge(conn, message.qos, packetId, RC.SUCCESS, held);
}

/**
 * Hands the message on once this connection's earlier PUBLISHes are (`gate`) and its store id is in the session's
 * record (`intent.written`), so the stream stores them in the order they came [MQTT-4.6.0-6]; also once the connection
 * closed meanwhile (the client's DISCONNECT after its last PUBLISH). The record not written (NATS away, or the session
 * claimed by another node meanwhile): not stored, not acknowledged, and the connection goes (v5: 0x9C use another
 * server); the client sends it again, with DUP, once connected where its session is [MQTT-4.4.0-1]. The PUBLISHes that
 * waited behind it go the same way, unacknowledged, so none overtakes it. What waits counts against the engine's
 * byte bound on unwritten state, like a store in flight.
 */
function publishAfter(conn: Connection, message: Message, packetId: number, gate: Promise<unknown> | null,
  intent: Qos2Intent | undefined): Promise<boolean | undefined> {
  const broker = conn.broker;
  const session = conn.session!;
  const written = intent?.written;
  // The gate settles null when the PUBLISH before this one was given up.
  const before = gate === null ? written! : Promise.all([gate, written]).then(([ahead, ok]) => ahead !== null && ok !== false);
  // Settles once handed on (or given up), with the store's promise boxed: the next PUBLISH waits for this, not the store.
  const handed = before.then((ok): [Promise<boolean> | undefined] | null => {
    if (ok) return [broker.publish(message, conn, intent?.storeId)];
    broker.stats.publishesRefusedClusterUnwritable++;
    if (message.qos === 2) releaseQos2(conn, session, packetId);
    if (conn.state !== 'closed') conn.disconnect(RC.USE_ANOTHER_SERVER, 'cluster_session_unwritable');
    return null;
  });
  conn.publishGate = handed;
  void handed.then(() => {
    if (conn.publishGate === handed) conn.publishGate = null;
  });
  broker.commits.hold(handed, GATED_OVERHEAD + message.topic.length + message.payload.length);
  // Undefined once given up: nothing is answered (the connection went).
  return handed.then((box) => (box === null ? undefined : (box[0] ?? true)));
}

/**
 * Sends the PUBACK or PUBREC once `after` (if given) resolved, and after the acknowledgements still waiting. `after`
 * resolving false: the cluster's stream refused the message, which no one received: 0x97 in v5 (v3.1.1 cannot
 * refuse: acknowledged and dropped, as any refusal), and a QoS 2 packet id is free again (no PUBREL follows a
 * PUBREC of an error [MQTT-4.3.3-?]).
 */
function acknowledge(conn: Connection, qos: number, packetId: number, reasonCode: number, after?: Promise<boolean | undefined>): void {
  if (qos === 0) return;
  // A refused QoS 2 PUBLISH ends its flow: its packet id is free, here and in a cluster's record (a resend of an id
  // resumed from a record, refused on this node, was taken).
  // The session as of now: a connection's is unset once it closes, and the id stays the session's to free.
  const session = conn.session;
  if (qos === 2 && reasonCode >= 0x80) releaseQos2(conn, session, packetId);
  // [MQTT-4.3.2-2] PUBACK for QoS 1; [MQTT-4.3.3-?] PUBREC for QoS 2. v3.1.1 has no reason codes.
  const send = (rc: number): void => conn.sendAck(qos === 1 ? 'puback' : 'pubrec', packetId, conn.isV5 ? rc : 0);
  const before = conn.acksPending;
  if (after === undefined && before === null) return send(reasonCode);
  // [MQTT-4.6.0-2] in the order the PUBLISHes came: one waiting for a cluster's store holds back the later ones.
  const chained: Promise<void> = Promise.all([before, after]).then(([, held]) => {
    if (held === false) {
      conn.broker.stats.publishesRefusedClusterStream++;
      if (qos === 2) releaseQos2(conn, session, packetId);
    }
    if (conn.state !== 'closed') send(held === false ? RC.QUOTA_EXCEEDED : reasonCode);
    if (conn.acksPending === chained) conn.acksPending = null;
  });
  conn.acksPending = chained;
}

/**
 * An inbound QoS 2 packet id whose flow ended without a PUBREL (refused, or given up): free again. The cluster's record
 * is told only when the session held the id: a PUBLISH refused before its id was taken never reached the record, and
 * telling it anyway wrote the record once per refusal right after a resume (where the record is not yet up to date).
 */
function releaseQos2(conn: Connection, session: Session | null, packetId: number): void {
  if (session === null) return;
  if (session.releaseQos2(packetId)) void conn.broker.qos2Released(session, packetId);
}
