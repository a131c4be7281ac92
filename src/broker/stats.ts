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
  };
}
