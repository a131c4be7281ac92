/** Counters of one engine, read by metrics and tests. Plain fields: incremented on hot paths. */
export interface BrokerStats {
  connectionsAccepted: number;
  connectsRefused: number;
  messagesReceived: number;
  messagesDelivered: number;
  droppedOffline: number;
  droppedSlowConsumer: number;
  droppedQueueFull: number;
  droppedExpired: number;
  droppedTooLarge: number;
  droppedUnauthorized: number;
  droppedInvalidPayload: number;
  droppedRetainedQuota: number;
  /** Retained messages not sent to a subscriber because its session already owed too many. */
  droppedRetainedBacklog: number;
  protocolErrors: number;
  /** SUBSCRIBE filters refused (invalid, over limits, over quota, not authorized). */
  subscriptionsRefused: number;
  /** Sockets refused or closed before CONNECT by admission: per-address caps, handshake deadline. */
  socketsRefused: number;
  /** Handler failures contained to their connection (a bug: designed never to happen). */
  handlerCrashes: number;
  /** CONNECTs refused because `maxConnections` clients were connected. */
  connectsOverConnectionLimit: number;
  /** CONNECTs refused because their owner already held `maxSessionsPerOwner` sessions. */
  connectsOverSessionLimit: number;
  /** Times a connection's reads paused because it sent faster than its message or byte rate. */
  publishesPaced: number;
  /** Times a connection stopped reading because the engine's unwritten state passed `maxUncommittedBytes`. */
  readsPausedForWrites: number;
  /** SUBSCRIBE filters refused because the session held `maxSubscriptionsPerClient` (also in subscriptionsRefused). */
  subscriptionsOverLimit: number;
  /** Packets over `maxPacketSize` (the connection was closed, 0x95). */
  packetsTooLarge: number;
  /** CONNECTs that asked for a longer session expiry than `maxSessionExpiry` and were granted that instead. */
  sessionExpiryLowered: number;
  /** Retained messages refused for `maxRetainedBytes` (also in droppedRetainedQuota, with those over the count). */
  retainedOverBytes: number;
  /** Queued messages dropped for `maxQueuedBytes` while the count had room (also in droppedQueueFull). */
  queueDropsOverBytes: number;
  /** Topic names and filters (PUBLISH, SUBSCRIBE, will) refused for passing `maxTopicLevels`. */
  topicsOverLevels: number;
  /** Topic names and filters refused for passing `maxTopicLength` (bytes). */
  topicsOverLength: number;
  /** CONNECTs refused for a client identifier longer than `maxClientIdLength`. */
  clientIdsTooLong: number;
  /** Packets refused whole for holding more than `maxUserProperties` user properties (0x97). */
  packetsOverUserProperties: number;
  /** SUBSCRIBE/UNSUBSCRIBE packets refused whole for holding more than `maxFiltersPerPacket` filters (0x97). */
  packetsOverFilters: number;
  /** CONNECTs refused (0x88, v3.1.1 3) because this cluster node could not reach the others. */
  connectsRefusedClusterUnreachable: number;
  /** QoS 1/2 PUBLISHes not acknowledged (their connection closed, 0x9C) because this cluster node could not reach the others. */
  publishesRefusedClusterUnreachable: number;
  /** QoS 1/2 PUBLISHes the cluster's stream refused (over NATS max_payload, or a stream error): answered 0x97, delivered nowhere. */
  publishesRefusedClusterStream: number;
  /**
   * Inbound QoS 2 PUBLISHes of a persistent session not stored and not acknowledged (their connection closed, 0x9C)
   * because this cluster node could not write their store id into the session's record (NATS away, or the session
   * claimed by another node meanwhile): the client sends them again.
   */
  publishesRefusedClusterUnwritable: number;
  /** Connections ended (0x9C) because this cluster node was cut off longer than its lease. */
  clusterCutOffDisconnects: number;
  /** Sessions another cluster node claimed (a CONNECT there with the client id): their connection here closed 0x8E, their state dropped. */
  sessionsMovedAway: number;
  /** CONNECTs refused because a later claim of their session on another node won the cluster's record (0x89, v3.1.1 3). */
  connectsLostSessionClaim: number;
  /** Wills of a dead cluster node's clients that this node claimed and published. */
  clusterWillsPublished: number;
  /** QoS 1 messages of a shared group sent to another member here: the member picked first never got them (its session ended, its queue refused them). */
  sharedRepicked: number;
  /** QoS 1 messages of a shared group no member here could take after such a re-pick (dropped). */
  sharedUndeliverable: number;
  /** Persistent sessions resumed here from another node's record (its node died or let it go), their backlog replayed from the cluster's stream. */
  clusterSessionsResumed: number;
}

export function createStats(): BrokerStats {
  return {
    connectionsAccepted: 0,
    connectsRefused: 0,
    messagesReceived: 0,
    messagesDelivered: 0,
    droppedOffline: 0,
    droppedSlowConsumer: 0,
    droppedQueueFull: 0,
    droppedExpired: 0,
    droppedTooLarge: 0,
    droppedUnauthorized: 0,
    droppedInvalidPayload: 0,
    droppedRetainedQuota: 0,
    droppedRetainedBacklog: 0,
    protocolErrors: 0,
    subscriptionsRefused: 0,
    socketsRefused: 0,
    handlerCrashes: 0,
    connectsOverConnectionLimit: 0,
    connectsOverSessionLimit: 0,
    publishesPaced: 0,
    readsPausedForWrites: 0,
    subscriptionsOverLimit: 0,
    packetsTooLarge: 0,
    sessionExpiryLowered: 0,
    retainedOverBytes: 0,
    queueDropsOverBytes: 0,
    topicsOverLevels: 0,
    topicsOverLength: 0,
    clientIdsTooLong: 0,
    packetsOverUserProperties: 0,
    packetsOverFilters: 0,
    connectsRefusedClusterUnreachable: 0,
    publishesRefusedClusterUnreachable: 0,
    publishesRefusedClusterStream: 0,
    publishesRefusedClusterUnwritable: 0,
    clusterCutOffDisconnects: 0,
    sessionsMovedAway: 0,
    connectsLostSessionClaim: 0,
    clusterWillsPublished: 0,
    sharedRepicked: 0,
    sharedUndeliverable: 0,
    clusterSessionsResumed: 0,
  };
}
