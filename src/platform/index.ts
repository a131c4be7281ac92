/** The platform side of device data: what `app.ts` builds and the API routes call. */
export {
  Platform,
  type DownlinkRequest, type DownlinkResult, type ParsingTestResult, type PlatformDeps, type PlatformRegistry, type PlatformRuntime,
} from './platform.ts';
export { PENDING_LISTED, type DeviceSessionView } from './device-sessions.ts';
export { DEFAULT_PLATFORM_OPTIONS, PARSING_NICENESS, type PlatformOptions, type PlatformOptionsInput } from './options.ts';
export type { EventFilter, MessageView, PlatformEvent } from './events.ts';
export { matches as eventMatches } from './events.ts';
export { signBody, SIGNATURE_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER, type WebhookStats } from './webhooks.ts';
export { registerPlatformMetrics, registerConnectionEventMetrics } from './metrics.ts';
export { UplinkTap, type TappedGateway, type Uplink } from './uplink-tap.ts';
export { GatewayParser, type ParsingLimits, type ParsingStats } from './parser.ts';
export { UplinkJournal, type JournaledUplink, type JournalTicket, type UplinkJournalStore } from './uplink-journal.ts';
export { ConnectionEventRecorder, DEFAULT_CONNECTION_EVENT_OPTIONS, type ConnectionEventOptions } from './connection-events.ts';
export type { PeerAnswer, PeerRequest, PlatformPeers, SharedEvent } from './peers.ts';
