/** The MQTT engine's public surface. */
export { Broker, type BrokerInit, type DirectDelivery, type DirectOutcome } from './broker.ts';
export { DEFAULT_BROKER_OPTIONS, type BrokerOptions, type LiveLimits } from './options.ts';
export type { BrokerHooks, BrokerEvents, ClientInfo, ConnectRequest, AuthResult, AdmissionLimit, EndedConnect, Farewell } from './hooks.ts';
export { createMessage, type Message } from './message.ts';
export type { ClusterConnectionCounts, ClusterLink, ClusterSessionCounts, SessionsHere, ConnectionEnd, LinkEndpoint, MovedFlow, MovedQueued, MovedReceiving, MovedSession, Qos2Intent, RecordedWill, SessionClaim, StoredDelivery } from './cluster-link.ts';
export type { SharedPick } from './router.ts';
export type { PendingMessage, Session } from './session.ts';
export type { BrokerStats } from './stats.ts';
export { listen, guardTlsServer, type Listener, type ListenOptions } from './listener.ts';
// The seam for state outside the engine that must be as durable as the engine's acknowledgements
// (the platform's copy of an uplink): it commits with the engine's journals, before the turn's writes.
export { scheduleCommit, type Committable } from './flush-scheduler.ts';
export { RingQueue } from './ring-queue.ts';
export { CommitGate } from './commit-gate.ts';
export type { BrokerPersistence, PersistenceBatch, PersistedState, StoredMessage, StoredRetained, StoredSession, StoredOutbound, StoredSubscription } from './persistence.ts';
export { AddressTable, type AddressLimits } from './address-table.ts';
export type { SharedAdmission } from './admission.ts';
