/**
 * CONNECT as an ordered list of named steps: the list is the flow. Each step either continues or
 * ends the attempt with a reason code (sent in CONNACK, then the connection is closed [MQTT-3.2.2-7]).
 */
import { forwardedPropertiesOf, type IConnectPacket } from '../../mqtt/codec.ts';
import { RC } from '../../mqtt/reason-codes.ts';
import { isValidTopicName } from '../../mqtt/topics.ts';
import { createMessage } from '../message.ts';
import { logText } from '../../core/log-text.ts';
import type { Connection } from '../connection.ts';
import type { AuthResult, BrokerHooks } from '../hooks.ts';
import type { SessionClaim } from '../cluster-link.ts';

interface ConnectAttempt {
  readonly conn: Connection;
  readonly packet: IConnectPacket;
  clientId: string;
  assignedClientId: boolean;
  /** Keep alive the server imposes, when it differs from the client's [MQTT-3.2.2-21]. */
  serverKeepAlive: number | undefined;
  sessionExpiry: number;
  sessionExpiryLowered: boolean;
  /** Who the authentication hook says the client is (see `AuthResult`). */
  owner?: string;
  /** A cluster node's claim of the session (`claimSession`); undefined without a cluster. */
  claim?: SessionClaim;
  /** The client id's session is connected (here or on another node): its takeover frees the place it takes. */
  takeover: boolean;
}

/** `reasonString` goes to a v5 client; `detail` only to connection events. */
type StepResult = { refuse: number; reasonString?: string; detail?: string } | void;
type Step = (a: ConnectAttempt) => StepResult | Promise<StepResult>;

function checkClientId(a: ConnectAttempt): StepResult {
  const max = a.conn.broker.options.maxClientIdLength;
  // Longer than we keep (sessions are keyed by it, durable state stores it): identifier not valid.
  if (a.clientId.length > max || (a.clientId.length * 3 > max && Buffer.byteLength(a.clientId) > max)) {
    a.conn.broker.stats.clientIdsTooLong++;
    return { refuse: RC.CLIENT_IDENTIFIER_NOT_VALID, detail: `client_id_too_long (over ${max} bytes)` };
  }
  if (a.clientId.length > 0) return;
  // [MQTT-3.1.3-8] a v3.1.1 client with an empty ClientId must ask for a clean session.
  if (a.conn.protocolVersion !== 5 && !a.packet.clean) return { refuse: RC.CLIENT_IDENTIFIER_NOT_VALID, detail: 'empty_client_id_without_clean_session [MQTT-3.1.3-8]' };
  // [MQTT-3.1.3-6] the server assigns a unique ClientId; v5 tells the client [MQTT-3.2.2-16].
  a.clientId = a.conn.broker.assignClientId();
  a.assignedClientId = true;
}

function checkProperties(a: ConnectAttempt): StepResult {
  const props = a.packet.properties;
  // [MQTT-3.1.2-?] Receive Maximum 0 and Maximum Packet Size 0 are protocol errors (§3.1.2.11.3, §3.1.2.11.4).
  if (props?.receiveMaximum === 0) return { refuse: RC.PROTOCOL_ERROR, detail: 'receive_maximum_zero' };
  if (props?.maximumPacketSize === 0) return { refuse: RC.PROTOCOL_ERROR, detail: 'maximum_packet_size_zero' };
}

function checkAuthenticationMethod(a: ConnectAttempt): StepResult {
  // No enhanced authentication is configured: a method we don't support is refused [MQTT-4.12.0-1? §4.12].
  if (a.packet.properties?.authenticationMethod !== undefined) return { refuse: RC.BAD_AUTHENTICATION_METHOD, detail: 'authentication_method_unsupported' };
}

function checkWill(a: ConnectAttempt): StepResult {
  const will = a.packet.will;
  if (will === undefined) return;
  if (!isValidTopicName(will.topic)) return { refuse: RC.TOPIC_NAME_INVALID, detail: 'will_topic_invalid' };
  if (!a.conn.broker.topicWithinLimits(will.topic)) {
    return { refuse: RC.TOPIC_NAME_INVALID, detail: 'will_topic_over_limits' };
  }
  const qos = will.qos ?? 0;
  if (qos > a.conn.broker.options.maximumQoS) return { refuse: RC.QOS_NOT_SUPPORTED, detail: 'will_qos_not_supported' }; // [MQTT-3.2.2-12]
  if (will.retain === true && !a.conn.broker.options.retainAvailable) return { refuse: RC.RETAIN_NOT_SUPPORTED, detail: 'will_retain_not_supported' }; // [MQTT-3.2.2-13]
}

function negotiateLimits(a: ConnectAttempt): StepResult {
  const { conn, packet } = a;
  const opts = conn.broker.options;
  const props = packet.properties;
  let keepalive = packet.keepalive ?? 0;
  if (opts.maxKeepalive > 0 && conn.protocolVersion === 5 && (keepalive === 0 || keepalive > opts.maxKeepalive)) {
    keepalive = opts.maxKeepalive;
    a.serverKeepAlive = keepalive; // [MQTT-3.2.2-21] the client must use the Server Keep Alive
  }
  conn.keepalive = keepalive;
  if (conn.protocolVersion === 5) {
    conn.clientReceiveMaximum = Math.min(props?.receiveMaximum ?? 65535, opts.maxInflight);
    conn.clientMaxPacketSize = props?.maximumPacketSize ?? 0;
    conn.clientTopicAliasMaximum = props?.topicAliasMaximum ?? 0;
  } else {
    conn.clientReceiveMaximum = opts.maxInflight;
  }
}

/**
 * The session expiry granted, after authentication: `maxSessionExpiry` may be lowered live while a CONNECT
 * is being verified, and the session gets the limit in force at CONNACK.
 */
function grantSessionExpiry(a: ConnectAttempt): StepResult {
  const { conn, packet } = a;
  const max = conn.broker.options.maxSessionExpiry;
  if (conn.protocolVersion === 5) {
    const requested = packet.properties?.sessionExpiryInterval ?? 0; // [MQTT-3.1.2-?] absent means 0
    a.sessionExpiry = Math.min(requested, max);
    a.sessionExpiryLowered = a.sessionExpiry !== requested;
    // The CONNACK then carries the interval granted (§3.2.2.3.2).
    if (a.sessionExpiryLowered) conn.broker.stats.sessionExpiryLowered++;
  } else {
    // v3.1.1: Clean Session 0 keeps the session after the connection [MQTT-3.1.2-4].
    a.sessionExpiry = packet.clean === true ? 0 : max;
  }
}

/**
 * `maxConnections` clients are connected: refused before any authentication work (0x97, v3.1.1 3
 * server unavailable). A client id whose connection is live is let through: its takeover frees a place.
 * On a cluster node the limit is the gateway's across the nodes (issue 16): this node's places and the others' as
 * last seen, and a client id connected on another node is let through too (its takeover frees a place there).
 */
function checkConnectionQuota(a: ConnectAttempt): StepResult | Promise<StepResult> {
  const broker = a.conn.broker;
  const max = broker.options.maxConnections;
  if (max === 0 || broker.connectionsHeld < max) return;
  const live = broker.getSession(a.clientId)?.link;
  if (live !== undefined && live !== null) {
    a.takeover = true;
    return;
  }
  if (!broker.clustered) return overConnectionLimit(a, max);
  return fullInCluster(a, max);
}

/**
 * The view a cluster node holds of the other nodes' places may lag their writes (a place given back there a moment
 * ago): the count is read before a refusal, and a client id connected on another node is let through.
 */
async function fullInCluster(a: ConnectAttempt, max: number): Promise<StepResult> {
  const broker = a.conn.broker;
  try {
    if (await broker.connectionsHeldNow() < max) return;
    if (await broker.connectedElsewhere(a.clientId)) {
      a.takeover = true;
      return;
    }
  } catch (err) {
    broker.logger.warn({ err, clientId: logText(a.clientId) }, 'cluster_connection_count_unreadable');
    return { refuse: RC.SERVER_UNAVAILABLE, reasonString: 'cluster unreachable', detail: 'connection_count_unreadable' };
  }
  return overConnectionLimit(a, max);
}

function overConnectionLimit(a: ConnectAttempt, max: number): StepResult {
  a.conn.broker.connectionLimitHit();
  return { refuse: RC.QUOTA_EXCEEDED, reasonString: 'too many connections', detail: `maxConnections (${max})` };
}

/**
 * The same check once authentication is done: CONNECTs verified at the same time all passed the first check, and
 * the limit may have been lowered meanwhile. In a single process from here to CONNACK nothing waits. A cluster node
 * takes a place in the cluster's count (compare-and-swap: two nodes never both take the last one); a takeover
 * found by the first check takes one in any case (the connection it ends gives its own back).
 */
function checkConnectionQuotaAgain(a: ConnectAttempt): StepResult | Promise<StepResult> {
  const broker = a.conn.broker;
  const max = broker.options.maxConnections;
  const liveHere = (): boolean => {
    const live = broker.getSession(a.clientId)?.link;
    return live !== undefined && live !== null;
  };
  if (!broker.clustered) {
    if (max === 0 || broker.connectedCount < max || liveHere()) return;
    return overConnectionLimit(a, max);
  }
  const taking = broker.takeConnectionPlace(a.conn, max === 0 || a.takeover || liveHere());
  if (taking === true) return;
  if (taking === false) return overConnectionLimit(a, max);
  return taking.then((granted): StepResult => (granted ? undefined : overConnectionLimit(a, max)), (err: unknown): StepResult => {
    // The cluster's count could not be written (NATS away meanwhile): no place, so no CONNACK.
    a.conn.broker.logger.warn({ err, clientId: logText(a.clientId) }, 'cluster_connection_place_failed');
    return { refuse: RC.SERVER_UNAVAILABLE, reasonString: 'cluster unreachable', detail: 'connection_place_failed' };
  });
}

/**
 * A cluster node that cannot reach the others fails closed (issue 16 item 8): the session may be owned,
 * and messages routed, only through the cluster. Server unavailable (0x88, v3.1.1 3); the client retries,
 * through the load balancer, on a node that can.
 */
function checkClusterReachable(a: ConnectAttempt): StepResult {
  if (a.conn.broker.clusterReachable()) return;
  a.conn.broker.stats.connectsRefusedClusterUnreachable++;
  return { refuse: RC.SERVER_UNAVAILABLE, reasonString: 'cluster unreachable', detail: 'cluster_unreachable' };
}

/** Once more after authentication, which may have waited while the node was cut off; from here to CONNACK nothing waits. */
const checkClusterReachableAgain: Step = checkClusterReachable;

/** Synchronous when no authenticator is configured: a hook-less CONNECT never waits a turn. */
function authenticate(a: ConnectAttempt): StepResult | Promise<StepResult> {
  const hook = a.conn.broker.hooks.authenticate;
  if (hook === undefined) return;
  return authenticateWith(hook, a);
}

async function authenticateWith(hook: NonNullable<BrokerHooks['authenticate']>, a: ConnectAttempt): Promise<StepResult> {
  const { conn, packet } = a;
  let result: AuthResult;
  try {
    result = await hook({
      clientId: a.clientId,
      username: packet.username,
      password: packet.password,
      protocolVersion: conn.protocolVersion,
      cleanStart: packet.clean !== false,
      keepalive: packet.keepalive ?? 0,
      properties: packet.properties,
      remoteAddress: conn.remoteAddress,
      socket: conn.socket,
      receivedAt: conn.lastActivity,
      acceptedAt: conn.createdAt,
    });
  } catch (err) {
    // A failing authenticator is never an accept: the client hears "server unavailable".
    conn.broker.logger.error({ err, clientId: a.clientId }, 'auth_hook_failed');
    return { refuse: RC.SERVER_UNAVAILABLE, detail: 'auth_hook_failed' };
  }
  if (!result.ok) return { refuse: result.reasonCode, reasonString: result.reasonString };
  conn.identity = result.identity;
  a.owner = result.owner;
}

/**
 * A session belongs to the principal that created it: another one presenting the same client id is
 * refused rather than given the session (its queued messages) or the power to end it (a takeover or a
 * Clean Start would discard it) [MQTT-3.1.4-3 applies within one owner]. Refusing beats keying sessions
 * by owner + client id: the client id stays the one name of a session, for downlink and operators alike.
 */
function checkSessionOwner(a: ConnectAttempt): StepResult | Promise<StepResult> {
  const existing = a.conn.broker.getSession(a.clientId);
  if (existing?.owner !== undefined && a.owner !== undefined && existing.owner !== a.owner) {
    return { refuse: RC.CLIENT_IDENTIFIER_NOT_VALID, reasonString: 'client identifier in use by another device', detail: 'client_id_owned_by_another_owner' };
  }
  // One more session for an owner already at its cap (a device cycling client ids to fill memory):
  // refused 0x97 (v3.1.1 3). Its existing sessions, resumed or cleaned, are not "more".
  const broker = a.conn.broker;
  const max = broker.options.maxSessionsPerOwner;
  if (existing !== undefined || a.owner === undefined || max === 0) return;
  if (!broker.clustered) {
    if (broker.sessionsOwnedBy(a.owner) >= max) return overSessionLimit(a, max);
    return;
  }
  return takeSessionPlace(a, a.owner, max);
}

/**
 * A cluster node counts the owner's sessions on every node (issue 16): a new one takes a place by compare-and-swap, so
 * two nodes never both open the last one. A session of this owner recorded on another node is not a new one: taking
 * it over moves it here (that node gives its place back).
 */
async function takeSessionPlace(a: ConnectAttempt, owner: string, max: number): Promise<StepResult> {
  const broker = a.conn.broker;
  try {
    if (await broker.takeSessionPlace(a.conn, owner)) return;
    if (await broker.sessionRecorded(a.clientId, owner)) return;
  } catch (err) {
    broker.logger.warn({ err, clientId: logText(a.clientId) }, 'cluster_session_place_failed');
    return { refuse: RC.SERVER_UNAVAILABLE, reasonString: 'cluster unreachable', detail: 'session_place_failed' };
  }
  return overSessionLimit(a, max);
}

function overSessionLimit(a: ConnectAttempt, max: number): StepResult {
  a.conn.broker.stats.connectsOverSessionLimit++;
  return { refuse: RC.QUOTA_EXCEEDED, reasonString: 'too many sessions for this device', detail: `maxSessionsPerOwner (${max})` };
}

function storeWill(a: ConnectAttempt): StepResult {
  const will = a.packet.will;
  if (will === undefined) return;
  const props = will.properties;
  const expiry = props?.messageExpiryInterval;
  a.conn.will = createMessage({
    topic: will.topic,
    payload: Buffer.isBuffer(will.payload) ? will.payload : Buffer.from(will.payload),
    qos: will.qos ?? 0,
    retain: will.retain === true,
    properties: forwardedPropertiesOf(props),
    expiresAt: 0,
    senderId: a.clientId,
  });
  // The expiry clock of a will starts when it is published; keep the interval until then.
  a.conn.willExpiry = expiry ?? 0;
  a.conn.willDelay = props?.willDelayInterval ?? 0;
}

/**
 * One owner per session across a cluster (issue 16 item 3): the session is claimed in the cluster's record by
 * compare-and-swap; the node that held it closes its connection (0x8E) before this resolves. The last step: its
 * answer is the last wait before CONNACK, so nothing here changes between the claim and the session opening.
 * Another principal's session is refused as `checkSessionOwner` refuses it here; a claim that a later one on
 * another node beat is refused server busy (0x89, v3.1.1 3): that later connection owns the session now.
 */
function claimSession(a: ConnectAttempt): StepResult | Promise<StepResult> {
  const claiming = a.conn.broker.claimSession(a.conn, a.clientId, a.owner, a.sessionExpiry, a.packet.clean !== false);
  if (claiming === undefined) return;
  return claiming.then((claim): StepResult => {
    if (claim === 'owned') return { refuse: RC.CLIENT_IDENTIFIER_NOT_VALID, reasonString: 'client identifier in use by another device', detail: 'client_id_owned_by_another_owner' };
    if (claim === 'lost') {
      a.conn.broker.stats.connectsLostSessionClaim++;
      return { refuse: RC.SERVER_BUSY, reasonString: 'session taken over by a later connection', detail: 'session_claim_lost' };
    }
    a.claim = claim;
  }, (err: unknown): StepResult => {
    // The record could not be written (NATS away meanwhile): the session cannot be owned, so no CONNACK.
    a.conn.broker.logger.warn({ err, clientId: logText(a.clientId) }, 'cluster_session_claim_failed');
    return { refuse: RC.SERVER_UNAVAILABLE, reasonString: 'cluster unreachable', detail: 'session_claim_failed' };
  });
}

/** Named by string, not by Function.name: the bundle may rename functions, and the name is reported. */
const CONNECT_STEPS: readonly (readonly [name: string, step: Step])[] = [
  ['checkProperties', checkProperties],
  ['checkClientId', checkClientId],
  ['checkAuthenticationMethod', checkAuthenticationMethod],
  ['checkWill', checkWill],
  ['negotiateLimits', negotiateLimits],
  ['checkConnectionQuota', checkConnectionQuota],
  ['checkClusterReachable', checkClusterReachable],
  ['authenticate', authenticate],
  ['checkConnectionQuotaAgain', checkConnectionQuotaAgain],
  ['checkClusterReachableAgain', checkClusterReachableAgain],
  ['checkSessionOwner', checkSessionOwner],
  ['grantSessionExpiry', grantSessionExpiry],
  ['storeWill', storeWill],
  ['claimSession', claimSession],
];

export function handleConnect(conn: Connection, packet: IConnectPacket): void | Promise<void> {
  conn.state = 'connecting';
  const attempt: ConnectAttempt = {
    conn,
    packet,
    clientId: packet.clientId,
    assignedClientId: false,
    serverKeepAlive: undefined,
    sessionExpiry: 0,
    sessionExpiryLowered: false,
    takeover: false,
  };
  conn.username = packet.username;
  conn.presented = { clientId: packet.clientId, username: packet.username };
  return runSteps(attempt, 0);
}

/** Runs steps synchronously until one returns a promise, so a hook-less CONNECT never waits. */
function runSteps(a: ConnectAttempt, from: number): void | Promise<void> {
  for (let i = from; i < CONNECT_STEPS.length; i++) {
    if (a.conn.state === 'closed') return;
    const [name, step] = CONNECT_STEPS[i]!;
    const r = step(a);
    if (r instanceof Promise) {
      return r.then((res) => {
        if (res !== undefined) return refuse(a, name, res);
        return runSteps(a, i + 1);
      });
    }
    if (r !== undefined) return refuse(a, name, r);
  }
  // Gone while the last step waited (a cluster node's session claim): no session opens for a connection that is
  // not there (it would count as connected, and hold the session, for ever).
  if (a.conn.state === 'closed') {
    if (a.claim !== undefined) a.conn.broker.claimAbandoned(a.conn, a.clientId, a.claim, a.sessionExpiry === 0);
    return;
  }
  accept(a);
}

function refuse(a: ConnectAttempt, step: string, { refuse: reasonCode, reasonString, detail }: { refuse: number; reasonString?: string; detail?: string }): void {
  const { conn } = a;
  if (conn.state === 'closed') return;
  conn.broker.stats.connectsRefused++;
  conn.broker.logger.info({ clientId: logText(a.clientId), username: logText(a.packet.username), remoteAddress: conn.remoteAddress, reasonCode }, 'connect_refused');
  conn.refuseConnect(reasonCode, { step, reasonString, detail });
}

function accept(a: ConnectAttempt): void {
  const { conn } = a;
  const opts = conn.broker.options;
  conn.clientId = a.clientId;
  // The packet size this CONNACK announces is the one enforced (it may have changed since the socket opened).
  conn.setMaxPacketSize(opts.maxPacketSize);
  conn.shareLargeFrames();
  conn.presented = null;
  // A session claimed from another node starts here from the state its record holds (issue 16 item 2: Session
  // Present 1, its backlog replayed from the cluster's stream), or clean when the record holds none.
  const cleanStart = a.packet.clean !== false || (a.claim !== undefined && !a.claim.local);
  // Applied by openSession only to a session this engine does not hold (the claim read it for that case).
  const moved = a.packet.clean === false ? a.claim?.moved : undefined;
  const { session, present } = conn.broker.openSession(conn, cleanStart, a.owner, moved);
  session.identity = conn.identity;
  session.expiryInterval = a.sessionExpiry;
  conn.broker.clusterSessionOpened(session);
  session.disconnectedAt = null;
  session.changed();
  if (conn.isV5) {
    conn.send({
      cmd: 'connack',
      sessionPresent: present, // [MQTT-3.2.2-2, MQTT-3.2.2-3]
      reasonCode: RC.SUCCESS,
      properties: {
        ...(a.sessionExpiryLowered ? { sessionExpiryInterval: a.sessionExpiry } : {}),
        receiveMaximum: opts.receiveMaximum,
        ...(opts.maximumQoS < 2 ? { maximumQoS: opts.maximumQoS } : {}),
        ...(opts.retainAvailable ? {} : { retainAvailable: false }),
        maximumPacketSize: opts.maxPacketSize,
        ...(a.assignedClientId ? { assignedClientIdentifier: a.clientId } : {}),
        topicAliasMaximum: opts.topicAliasMaximum,
        wildcardSubscriptionAvailable: true,
        subscriptionIdentifiersAvailable: true,
        sharedSubscriptionAvailable: true,
        ...(a.serverKeepAlive !== undefined ? { serverKeepAlive: a.serverKeepAlive } : {}),
      },
    });
  } else {
    conn.send({ cmd: 'connack', sessionPresent: present, returnCode: 0 });
  }
  conn.state = 'connected';
  conn.broker.connectionReady(conn);
  // Unacknowledged and queued messages of a resumed session follow the CONNACK [MQTT-4.4.0-1].
  session.resume(conn);
  // The connection this claim ended on another node had a will without delay: it goes now, once (the claim won the record).
  if (a.claim?.displacedWill != null) conn.broker.publishDisplacedWill(conn, a.claim.displacedWill);
}
