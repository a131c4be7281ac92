/** The MQTT engine's public surface. */
export { Broker, type BrokerInit, type DirectDelivery } from './broker.ts';
export { DEFAULT_BROKER_OPTIONS, type BrokerOptions } from './options.ts';
export type { BrokerHooks, BrokerEvents, ClientInfo, ConnectRequest, AuthResult } from './hooks.ts';
export type { Message } from './message.ts';
export type { BrokerStats } from './stats.ts';
export { listen, guardTlsServer, type Listener, type ListenOptions } from './listener.ts';
export type { BrokerPersistence, PersistenceBatch, PersistedState, StoredMessage, StoredSession, StoredOutbound, StoredSubscription } from './persistence.ts';
