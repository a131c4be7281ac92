/** The platform side's tunables, with the defaults a production install runs with. */
import type { ParsingLimits } from './parser.ts';
import type { MessageStoreOptions } from './message-store.ts';
import type { WebhookOptions } from './webhooks.ts';

export interface PlatformOptions {
  parsing: ParsingLimits;
  messages: MessageStoreOptions;
  webhooks: WebhookOptions;
  /** Events kept for Last-Event-ID resume of /stream, and at most this many bytes of them. */
  streamReplay: number;
  streamReplayBytes: number;
  /**
   * A cluster node hears the other nodes' events only while a /stream is open on it, and for this long after its last
   * closed: a stream that resumes within it finds their events in the replay ring.
   */
  streamHearingGraceMs: number;
  /** Events, and bytes, waiting in a /stream client's socket buffer before it is cut off as too slow. */
  streamClientQueue: number;
  streamClientBytes: number;
  /** How long a QoS 1 downlink waits for the device's PUBACK. */
  downlinkAckTimeoutMs: number;
  /** A device's properties: at most this many names and bytes of JSON (a post beyond is refused). */
  deviceProperties: { maxCount: number; maxBytes: number };
}

export interface PlatformOptionsInput {
  parsing?: Partial<ParsingLimits>;
  messages?: Partial<MessageStoreOptions>;
  webhooks?: Partial<WebhookOptions>;
  streamReplay?: number;
  streamReplayBytes?: number;
  streamHearingGraceMs?: number;
  streamClientQueue?: number;
  streamClientBytes?: number;
  downlinkAckTimeoutMs?: number;
  deviceProperties?: Partial<PlatformOptions['deviceProperties']>;
}

/**
 * Scheduling niceness of the parsing sandbox's threads (Linux): 19, the lowest. Parsing takes the CPU the
 * event loop forwarding MQTT leaves; at saturation on one core it parses little and drops the rest
 * (counted), and MQTT throughput holds. `npm run bench -- --scenarios qos0-tls,qos1-tls --brokers
 * gatehouse-tap,gatehouse-parsing --reps 2`, quiet machine: parsing on ÷ off x0.71-0.81 at 10, x0.81-0.93 at
 * 19; at 5,000 msg/s both parse ~98 % of the messages with the same p99 (2.4-2.9 ms).
 */
export const PARSING_NICENESS = 19;

export const DEFAULT_PLATFORM_OPTIONS: PlatformOptions = {
  parsing: { timeoutMs: 100, memoryMb: 32, maxPending: 1000, maxPendingBytes: 16 * 1024 * 1024 },
  messages: { keepPerDevice: 100, maxAgeMs: 7 * 24 * 3600_000, batchSize: 500, flushMs: 200, maxPending: 50_000, maxPendingBytes: 64 * 1024 * 1024 },
  // 1 s, 2 s, 4 s … 5 min: eight attempts cover about four minutes of an endpoint being down.
  webhooks: { maxAttempts: 8, baseDelayMs: 1000, maxDelayMs: 300_000, timeoutMs: 10_000, concurrency: 4, maxQueued: 10_000, maxQueuedBytes: 64 * 1024 * 1024 },
  streamReplay: 1000,
  streamReplayBytes: 16 * 1024 * 1024,
  streamHearingGraceMs: 30_000,
  streamClientQueue: 1000,
  streamClientBytes: 8 * 1024 * 1024,
  downlinkAckTimeoutMs: 10_000,
  deviceProperties: { maxCount: 500, maxBytes: 65_536 },
};

export function resolvePlatformOptions(input: PlatformOptionsInput = {}): PlatformOptions {
  const d = DEFAULT_PLATFORM_OPTIONS;
  return {
    parsing: { ...d.parsing, ...input.parsing },
    messages: { ...d.messages, ...input.messages },
    webhooks: { ...d.webhooks, ...input.webhooks },
    streamReplay: input.streamReplay ?? d.streamReplay,
    streamReplayBytes: input.streamReplayBytes ?? d.streamReplayBytes,
    streamHearingGraceMs: input.streamHearingGraceMs ?? d.streamHearingGraceMs,
    streamClientQueue: input.streamClientQueue ?? d.streamClientQueue,
    streamClientBytes: input.streamClientBytes ?? d.streamClientBytes,
    downlinkAckTimeoutMs: input.downlinkAckTimeoutMs ?? d.downlinkAckTimeoutMs,
    deviceProperties: { ...d.deviceProperties, ...input.deviceProperties },
  };
}
