/**
 * Inbound PUBLISH as ordered checks, then authorization (a hook, maybe async), routing and the
 * acknowledgement of its QoS flow.
 */
import { isUtf8 } from 'node:buffer';
import { forwardedPropertiesOf, type IPublishPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import { isValidTopicName } from '../../mqtt/topics.ts';
import { createMessage, type Message } from '../message.ts';
import type { Connection } from '../connection.ts';

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

  if (qos === 2 && session.incomingQos2.has(packetId)) {
    // A re-sent QoS 2 PUBLISH we already took: acknowledge again, do not deliver twice [MQTT-4.3.3-10]. On a
    // cluster node whose stream is still storing the first one (the client reconnected meanwhile), the PUBREC
    // waits for that store, as the first one's did: neither earlier, nor a second store of the same message.
    acknowledge(conn, 2, packetId, RC.SUCCESS, session.qos2Storing(packetId));
    return;
  }
  // [MQTT-3.3.4-9] more unacknowledged QoS 2 PUBLISHes than our Receive Maximum.
  if (qos === 2 && session.incomingQos2.size >= opts.receiveMaximum) {
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
  const stored = conn.broker.publish(message, conn);
  // QoS 2: on a cluster node the session's record also learns the packet id before the PUBREC leaves.
  const held = message.qos === 2 ? conn.broker.qos2Taken(conn.session!, packetId, stored) : stored;
  if (message.qos === 2) conn.session!.takeQos2(packetId, held);
  acknowledge(conn, message.qos, packetId, RC.SUCCESS, held);
}

/**
 * Sends the PUBACK or PUBREC once `after` (if given) resolved, and after the acknowledgements still waiting. `after`
 * resolving false: the cluster's stream refused the message, which no one received: 0x97 in v5 (v3.1.1 cannot
 * refuse: acknowledged and dropped, as any refusal), and a QoS 2 packet id is free again (no PUBREL follows a
 * PUBREC of an error [MQTT-4.3.3-?]).
 */
function acknowledge(conn: Connection, qos: number, packetId: number, reasonCode: number, after?: Promise<boolean>): void {
  if (qos === 0) return;
  // [MQTT-4.3.2-2] PUBACK for QoS 1; [MQTT-4.3.3-?] PUBREC for QoS 2. v3.1.1 has no reason codes.
  const send = (rc: number): void => conn.sendAck(qos === 1 ? 'puback' : 'pubrec', packetId, conn.isV5 ? rc : 0);
  const before = conn.acksPending;
  if (after === undefined && before === null) return send(reasonCode);
  // [MQTT-4.6.0-2] in the order the PUBLISHes came: one waiting for a cluster's store holds back the later ones.
  const chained: Promise<void> = Promise.all([before, after]).then(([, held]) => {
    if (held === false) {
      conn.broker.stats.publishesRefusedClusterStream++;
      if (qos === 2) conn.session?.releaseQos2(packetId);
    }
    if (conn.state !== 'closed') send(held === false ? RC.QUOTA_EXCEEDED : reasonCode);
    if (conn.acksPending === chained) conn.acksPending = null;
  });
  conn.acksPending = chained;
}
