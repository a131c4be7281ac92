/**
 * The platform side of the device data (issue 6): taps every running gateway, parses with the
 * gateway's script, keeps the device's latest properties, stores messages, streams events, sends
 * downlinks and feeds webhooks. Built once by `app.ts` over the registry, the runtime and the
 * shared sandbox.
 */
import type { Logger } from '../core/logger.ts';
import type { DirectDelivery, DirectOutcome } from '../broker/index.ts';
import type { GatewayInstance } from '../gateway/instance.ts';
import type { InstanceChange } from '../gateway/runtime.ts';
import type { DeviceIdentity, DevicePresence } from '../gateway/ports.ts';
import type {
  GatewayRuntimeConfig, MessageQuery, MessageRecord, MessageRepository, PropertyMergeResult, RegistryEventSource,
} from '../registry/index.ts';
import { GatehouseError } from '../core/errors.ts';
import { LoopPressure } from '../core/loop-pressure.ts';
import { ScriptCompileError, type LogLine, type ScriptRunner } from '../sandbox/index.ts';
import { isPropertyPostTopic, propertyPostValues, type PropertyValue } from './alink.ts';
import { deviceSessions, mergeSessionViews, type DeviceSessionView } from './device-sessions.ts';
import { EventHub } from './event-hub.ts';
import { messageView, type EventFilter, type MessageView, type PlatformEvent } from './events.ts';
import { newEventId } from './ids.ts';
import type { ConnectionEventRecord } from '../registry/connection-events.ts';
import { MessageStore, type MessageStoreStats } from './message-store.ts';
import { resolvePlatformOptions, type PlatformOptions, type PlatformOptionsInput } from './options.ts';
import { GatewayParser, TRANSFORM_FILENAME, type ParsingCounters, type ParsingStats } from './parser.ts';
import { UplinkJournal, type JournaledUplink, type JournalTicket, type UplinkJournalStore } from './uplink-journal.ts';
import { UplinkTap, type Uplink } from './uplink-tap.ts';
import type { PeerAnswer, PeerRequest, PlatformPeers, SharedEvent } from './peers.ts';
import { WebhookDispatcher, type WebhookSource, type WebhookStats } from './webhooks.ts';

/** The registry as the platform uses it. */
export interface PlatformRegistry {
  readonly events: RegistryEventSource;
  getGatewayRuntimeConfig(id: string): Promise<GatewayRuntimeConfig>;
  readonly devices: {
    mergeProperties(productKey: string, deviceName: string, values: Record<string, unknown>, at: Date,
      limits: { maxCount: number; maxBytes: number }): Promise<PropertyMergeResult>;
  };
  readonly webhooks: WebhookSource;
}

/** The runtime as the platform uses it. */
export interface PlatformRuntime {
  observeInstances(observer: (change: InstanceChange, instance: GatewayInstance) => void): () => void;
  instances(): IterableIterator<GatewayInstance>;
}

export interface PlatformDeps {
  registry: PlatformRegistry;
  runtime: PlatformRuntime;
  messages: MessageRepository;
  /** The process's sandbox (shared with verification functions): parsing dry runs, which someone waits on. */
  runner: ScriptRunner;
  /** The sandbox the gateways' parsing runs in, in the background (default: `runner`). */
  parsingRunner?: ScriptRunner;
  logger: Logger;
  options?: PlatformOptionsInput;
  /** Where acknowledged uplinks are journaled before their acks leave; without it a crash may lose them. */
  journal?: UplinkJournalStore;
  /** This node's id (webhook outbox rows are claimed under it). */
  nodeId?: string;
  /** The other nodes of a cluster (issue 16 item 7); absent for a single process. */
  peers?: PlatformPeers;
  /** This node's connection events held for their next batch, written now (another node's read asks for it). */
  flushConnectionEvents?: () => Promise<void>;
}

export interface DownlinkRequest {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
}

export interface DownlinkResult {
  online: boolean;
  /**
   * OFFLINE, NOT_SUBSCRIBED (online but no subscription matches the topic), SENT (QoS 0), ACKED, REFUSED (the
   * device's PUBACK carried a failure reason code, ≥ 0x80), TIMEOUT, DROPPED (online and subscribed, but not sent:
   * larger than the device accepts, its socket congested, its queue full).
   */
  result: 'OFFLINE' | 'NOT_SUBSCRIBED' | 'SENT' | 'ACKED' | 'REFUSED' | 'TIMEOUT' | 'DROPPED';
  /** QoS 1: whether the device's PUBACK arrived; null when nothing was sent at QoS 1 (QoS 0 asked or granted, offline …). */
  acknowledged: boolean | null;
  /** REFUSED: the reason code of the device's PUBACK (for example 0x87 not authorized, 0x97 quota exceeded). */
  reasonCode?: number;
}

export interface ParsingTestResult {
  /** The JSON object the script returned; null when it failed. */
  output: Record<string, unknown> | null;
  error: { kind: string; message: string; line?: number } | null;
  /** The output is an Alink property post (it would update the device's properties). */
  propertyPost: boolean;
  logs: LogLine[];
  durationMs: number;
}

/** The best of several connections' outcomes wins: a device's refusal is an answer, better than none. */
const OUTCOME_RANK: readonly DirectOutcome[] = ['acked', 'sent', 'refused', 'timeout', 'dropped', 'not_subscribed', 'offline'];

function best(deliveries: readonly DirectDelivery[]): DirectDelivery {
  for (const outcome of OUTCOME_RANK) {
    const found = deliveries.find((d) => d.outcome === outcome);
    if (found !== undefined) return found;
  }
  return { outcome: 'offline' };
}

/** A single process's outbox claims: taken at start only, so their length matters only to a later cluster. */
const LOCAL_CLAIM_MS = 10_000;
/** How long another node has to answer, beyond its own wait for a device (a QoS 1 downlink's PUBACK). */
const PEER_ANSWER_MS = 3_000;
/** A replay answer to another node stays well under NATS's default 1 MiB message: the oldest events that fit. */
const MAX_REPLAY_ANSWER_BYTES = 512 * 1024;

export function boundedReplay(events: PlatformEvent[]): PlatformEvent[] {
  let bytes = 0;
  const out: PlatformEvent[] = [];
  for (const event of events) {
    bytes += Buffer.byteLength(JSON.stringify(event)); // bytes, not UTF-16 units: a text payload of CJK is 3 bytes a character
    if (bytes > MAX_REPLAY_ANSWER_BYTES) break;
    out.push(event);
  }
  return out;
}

export class Platform {
  readonly options: PlatformOptions;
  readonly hub: EventHub;
  readonly store: MessageStore;
  readonly webhooks: WebhookDispatcher;
  readonly runner: ScriptRunner;
  readonly #deps: PlatformDeps;
  readonly #log: Logger;
  readonly #parsers = new Map<string, { parser: GatewayParser; name: string }>();
  readonly #taps = new Map<string, UplinkTap>();
  /** Property values waiting to be written, per device; a newer post overwrites an older one. */
  readonly #pendingProperties = new Map<string, { productKey: string; deviceName: string; values: Record<string, PropertyValue> }>();
  #propertyWrite: Promise<void> | null = null;
  /** Property posts queued so far, and how many of them are written: journal rows wait for theirs. */
  #propertiesQueued = 0;
  #propertiesWritten = 0;
  #propertyWaiters: { upTo: number; resolve: () => void }[] = [];
  readonly #journal: UplinkJournal | null;
  /** Property posts refused since start, by the limit they would have broken. */
  readonly #propertiesRefused = { too_many: 0, too_large: 0 };
  readonly #unsubscribe: (() => void)[] = [];
  /** Whether this thread's event loop is saturated: parsing is shed meanwhile (MQTT traffic goes first). */
  readonly loopPressure = new LoopPressure();
  #closed = false;
  /** /stream consumers here (watchOthers), and the other nodes' events heard for them (and a grace after the last). */
  #watchers = 0;
  #hearing: { ready: Promise<void>; stop(): void } | null = null;
  #graceTimer: NodeJS.Timeout | null = null;

  constructor(deps: PlatformDeps) {
    this.#deps = deps;
    this.runner = deps.runner;
    this.options = resolvePlatformOptions(deps.options);
    this.#log = deps.logger.child({ component: 'platform' });
    this.hub = new EventHub(this.options.streamReplay, this.options.streamReplayBytes);
    this.#journal = deps.journal === undefined ? null : new UplinkJournal(deps.journal, this.#log);
    this.store = new MessageStore(deps.messages, this.options.messages, this.#log, (tickets) => this.#settle(tickets));
    this.webhooks = new WebhookDispatcher(deps.registry.webhooks, this.hub, this.options.webhooks, this.#log, {
      nodeId: deps.peers?.nodeId ?? deps.nodeId ?? 'local', claimMs: deps.peers?.claimMs ?? LOCAL_CLAIM_MS, shared: deps.peers !== undefined,
    });
  }

  /** Loads webhooks and starts tapping gateways (those running now and those started later). */
  async start(): Promise<void> {
    const events = this.#deps.registry.events;
    this.#unsubscribe.push(
      events.on('webhook.changed', () => this.webhooks.reload()), // its promise: the API answers once it is read again
      // Counters of a deleted gateway go with it (its tap is closed when the runtime stops it).
      events.on('gateway.deleted', ({ gatewayId }) => this.#parsers.delete(gatewayId)),
      this.#deps.runtime.observeInstances((change, instance) => this.#instanceChanged(change, instance)),
    );
    const peers = this.#deps.peers;
    if (peers !== undefined) {
      this.#unsubscribe.push(peers.serve((request) => this.#answer(request)));
    }
    await this.webhooks.reload();
    await this.#replayJournal();
  }

  /** Parsing counters of a gateway since the process started. */
  parsingStats(gatewayId: string): ParsingStats {
    const parser = this.#parsers.get(gatewayId)?.parser;
    return { parsed: 0, failed: 0, dropped: 0, shed: 0, ...parser?.counters, enabled: parser?.enabled ?? false };
  }

  /** `parsingStats` of every gateway that ran since start, by gateway id (a worker's part of the machine's, workers.ts). */
  parsingStatsByGateway(): Record<string, ParsingStats> {
    return Object.fromEntries([...this.#parsers.keys()].map((gatewayId) => [gatewayId, this.parsingStats(gatewayId)]));
  }

  /** Parsing counters of every gateway that ran since start, by gateway name (for metrics). */
  allParsingStats(): { gateway: string; counters: ParsingCounters }[] {
    return [...this.#parsers.values()].map(({ parser, name }) => ({ gateway: name, counters: parser.counters }));
  }

  webhookIds(): string[] {
    return this.webhooks.ids();
  }

  storeStats(): MessageStoreStats {
    return this.store.stats;
  }

  webhookStats(webhookId: string): WebhookStats | undefined {
    return this.webhooks.stats(webhookId);
  }

  /** `webhookStats` of every webhook this process delivers for, by id (a worker's part of the machine's, workers.ts). */
  webhookStatsById(): Record<string, WebhookStats> {
    return Object.fromEntries(this.webhooks.ids().flatMap((id) => {
      const stats = this.webhooks.stats(id);
      return stats === undefined ? [] : [[id, stats]];
    }));
  }

  async queryMessages(query: MessageQuery): Promise<MessageView[]> {
    return (await this.store.query(query)).map(messageView);
  }

  /**
   * Sends a message to one device through the gateway it is connected to: on this node and, in a cluster,
   * on every other node (each sends it to the device's connections it holds); the best outcome wins.
   */
  async downlink(productKey: string, deviceName: string, request: DownlinkRequest): Promise<DownlinkResult> {
    const here = this.#downlinkHere(productKey, deviceName, request);
    const there = this.#ask({
      kind: 'downlink', productKey, deviceName, topic: request.topic, payloadBase64: request.payload.toString('base64'), qos: request.qos,
    }, this.options.downlinkAckTimeoutMs);
    const { outcome, reasonCode } = best([await here, ...(await there).flatMap((a) => (a.kind === 'downlink' ? [a.delivery] : []))]);
    const result: DownlinkResult = {
      online: outcome !== 'offline',
      result: outcome.toUpperCase() as DownlinkResult['result'],
      acknowledged: outcome === 'acked' || outcome === 'refused' ? true : outcome === 'timeout' ? false : null,
    };
    if (outcome === 'refused') result.reasonCode = reasonCode;
    return result;
  }

  async #downlinkHere(productKey: string, deviceName: string, request: DownlinkRequest): Promise<DirectDelivery> {
    for (const instance of this.#deps.runtime.instances()) {
      if (instance.config.productKey !== productKey) continue;
      // A device may hold several connections (different client ids): each subscribed one gets it.
      const connections = instance.broker.clients().filter((c) => (c.identity as DeviceIdentity | undefined)?.deviceName === deviceName);
      return best(await Promise.all(connections.map((c) => instance.broker.deliverTo(c.clientId, request, this.options.downlinkAckTimeoutMs))));
    }
    return { outcome: 'offline' };
  }

  /** The device's MQTT sessions on its gateway, connected or kept (device-sessions.ts), on every node of a cluster. */
  async deviceSessions(productKey: string, deviceName: string): Promise<DeviceSessionView[]> {
    const here = deviceSessions(this.#deps.runtime.instances(), productKey, deviceName);
    if (this.#deps.peers === undefined) return here;
    const there = await this.#ask({ kind: 'sessions', productKey, deviceName }, 0);
    return mergeSessionViews([here, ...there.flatMap((a) => (a.kind === 'sessions' ? [a.sessions] : []))]);
  }

  /** Ends every connection of the device now, on every node (the operator's action); how many ended. It may connect again. */
  async disconnectDevice(productKey: string, deviceName: string): Promise<number> {
    let n = this.#disconnectHere(productKey, deviceName);
    for (const a of await this.#ask({ kind: 'disconnect', productKey, deviceName }, 0)) if (a.kind === 'disconnect') n += a.disconnected;
    return n;
  }

  #disconnectHere(productKey: string, deviceName: string): number {
    let n = 0;
    for (const instance of this.#deps.runtime.instances()) {
      if (instance.config.productKey === productKey) n += instance.disconnectDevice(deviceName);
    }
    return n;
  }

  /**
   * The other nodes of a cluster write the connection events they hold for their next batch (resolves once they
   * answered, or were waited for as long as any request): a read through this node's API follows. Undefined alone.
   */
  get flushConnectionEventsElsewhere(): (() => Promise<void>) | null {
    if (this.#deps.peers === undefined) return null;
    return async () => {
      await this.#ask({ kind: 'flush-connection-events' }, 0);
    };
  }

  /** The other nodes' answers (none without a cluster); `waitMs`: how long they may wait for a device first. */
  #ask(request: PeerRequest, waitMs: number): Promise<PeerAnswer[]> {
    return this.#deps.peers === undefined ? Promise.resolve([]) : this.#deps.peers.ask(request, waitMs + PEER_ANSWER_MS);
  }

  /** Another node asks about the device's connections this node holds. */
  async #answer(request: PeerRequest): Promise<PeerAnswer> {
    switch (request.kind) {
      case 'downlink':
        return {
          kind: 'downlink',
          delivery: await this.#downlinkHere(request.productKey, request.deviceName,
            { topic: request.topic, payload: Buffer.from(request.payloadBase64, 'base64'), qos: request.qos }),
        };
      case 'sessions':
        return { kind: 'sessions', sessions: deviceSessions(this.#deps.runtime.instances(), request.productKey, request.deviceName) };
      case 'disconnect':
        return { kind: 'disconnect', disconnected: this.#disconnectHere(request.productKey, request.deviceName) };
      case 'flush-connection-events':
        await this.#deps.flushConnectionEvents?.();
        return { kind: 'flush-connection-events' };
      case 'replay':
        return { kind: 'replay', events: boundedReplay(this.hub.replayAfter(request.after, request.filter)) };
    }
  }

  /**
   * The events after `lastId` that match `filter`, oldest first, for a /stream resumed with Last-Event-ID: this node's
   * replay ring and, on a cluster node, every other node's (a resume reaches any node, and under GATEHOUSE_WORKERS
   * the next worker: this one heard another node's events only while it had a stream open). Never rejects.
   */
  async replayAfter(lastId: string, filter: EventFilter): Promise<PlatformEvent[]> {
    const events = new Map(this.hub.replayAfter(lastId, filter).map((e) => [e.id, e]));
    const answers = await this.#ask({ kind: 'replay', after: lastId, filter }, 0).catch(() => [] as PeerAnswer[]);
    for (const answer of answers) {
      if (answer.kind !== 'replay' || !Array.isArray(answer.events)) continue;
      for (const e of answer.events) if (typeof e?.id === 'string' && e.id > lastId && !events.has(e.id)) events.set(e.id, e);
    }
    return [...events.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * A consumer of the other nodes' events here (a /stream): on a cluster node they are heard only while one is
   * open, and `streamHearingGraceMs` after the last closed, so no node pays for events nobody reads (the other
   * nodes do not even send them). `ready`: from then on what the other nodes share reaches the hub (at once on a
   * single process). `close` once the consumer is gone.
   */
  watchOthers(): { ready: Promise<void>; close(): void } {
    const peers = this.#deps.peers;
    if (peers === undefined || this.#closed) return { ready: Promise.resolve(), close: () => undefined };
    this.#watchers++;
    if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
    const hearing = (this.#hearing ??= peers.hear((shared) => this.#heard(shared)));
    let closed = false;
    return {
      ready: hearing.ready,
      close: () => {
        if (closed) return;
        closed = true;
        if (--this.#watchers > 0 || this.#closed) return;
        this.#graceTimer = setTimeout(() => this.#stopHearing(), this.options.streamHearingGraceMs);
        this.#graceTimer.unref();
      },
    };
  }

  #stopHearing(): void {
    if (this.#graceTimer !== null) clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
    this.#hearing?.stop();
    this.#hearing = null;
  }

  /** An event of another node's device: for this node's streams (and its replay ring), not its webhooks. */
  #heard(shared: SharedEvent): void {
    if (this.#closed) return;
    if (shared.kind === 'message') {
      const r = shared.record;
      this.hub.publish({ id: r.id, type: 'message', gatewayId: r.gatewayId, deviceName: r.deviceName, data: messageView(r) }, true);
    } else {
      this.hub.publish(shared.event, true);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.loopPressure.stop();
    this.#stopHearing();
    for (const off of this.#unsubscribe.splice(0)) off();
    for (const tap of this.#taps.values()) tap.close();
    this.#taps.clear();
    this.#journal?.close();
    await this.webhooks.close();
    await this.store.close();
    await this.#propertyWrite;
  }

  /** Property posts refused since start (over the count or the byte limit). */
  propertyRefusals(): { too_many: number; too_large: number } {
    return { ...this.#propertiesRefused };
  }

  /** Uplinks journaled since start and journal writes that failed (for metrics). */
  journalStats(): { journaled: number; failed: number } | null {
    return this.#journal === null ? null : { ...this.#journal.stats };
  }

  /**
   * Runs the gateway's saved script, or a draft, on a sample: what the operator sees before saving.
   * Compiled afresh and disposed: a draft must not replace the running script.
   */
  async testParsing(gatewayId: string, input: { script?: string; topic: string; payload: Buffer }): Promise<ParsingTestResult> {
    const config = await this.#deps.registry.getGatewayRuntimeConfig(gatewayId);
    const source = input.script ?? config.dataParsing.script;
    if (source === null || source.trim() === '') throw new GatehouseError('GW_ERR_SCRIPT_REQUIRED', 'The gateway has no saved script; send one as "script"', 'script');
    let script;
    try {
      script = await this.runner.compile(source, {
        kind: 'module-function', entry: 'transformPayload', filename: TRANSFORM_FILENAME, result: 'object',
        timeoutMs: this.options.parsing.timeoutMs, memoryMb: this.options.parsing.memoryMb,
      });
    } catch (err) {
      if (err instanceof ScriptCompileError) throw new GatehouseError('GW_ERR_SCRIPT_SYNTAX', `script: ${err.message}`, 'script');
      throw err;
    }
    try {
      const result = await script.invoke([input.topic, new Uint8Array(input.payload)]);
      const output = result.ok ? (result.value as Record<string, unknown>) : null;
      const values = output === null ? null : propertyPostValues(output, Date.now());
      return {
        output,
        error: result.ok ? null : { kind: result.error.kind, message: result.error.message, ...(result.error.line === undefined ? {} : { line: result.error.line }) },
        propertyPost: values !== null,
        logs: result.logs,
        durationMs: result.durationMs,
      };
    } finally {
      script.dispose();
    }
  }

  #instanceChanged(change: InstanceChange, instance: GatewayInstance): void {
    const gatewayId = instance.config.id;
    if (change === 'stopped') {
      this.#taps.get(gatewayId)?.close();
      this.#taps.delete(gatewayId);
      return;
    }
    const tap = this.#taps.get(gatewayId);
    if (tap !== undefined) {
      tap.reconfigured();
      const entry = this.#parsers.get(gatewayId);
      if (entry !== undefined) entry.name = instance.config.name;
      return;
    }
    const parser = this.#parserFor(gatewayId, instance.config.name);
    // A device's presence comes through its gateway's tap, in order with its messages (not from the registry's
    // device.connected, which comes once the record is written: after the messages the device sent meanwhile).
    const output = { uplink: (uplink: Uplink): void => this.#received(uplink), presence: (presence: DevicePresence): void => this.#presence(presence) };
    this.#taps.set(gatewayId, new UplinkTap(instance, parser, output, this.#journal ?? undefined));
  }

  #parserFor(gatewayId: string, name: string): GatewayParser {
    let entry = this.#parsers.get(gatewayId);
    if (entry === undefined) {
      entry = { parser: new GatewayParser(this.#deps.parsingRunner ?? this.runner, this.options.parsing, this.#log.child({ gatewayId }), this.loopPressure), name };
      this.#parsers.set(gatewayId, entry);
    }
    entry.name = name;
    return entry.parser;
  }

  /**
   * Uplinks a previous run acknowledged but may not have stored, fed to webhooks or applied as
   * properties (it crashed in between): each goes through the same path again, parsed with the
   * gateway's current script. Writes are idempotent (message ids, outbox keys), so one that was
   * in fact written is not doubled; a webhook may see an event twice (deliveries are at least once).
   */
  async #replayJournal(): Promise<void> {
    if (this.#journal === null) return;
    const rows = this.#journal.leftOver();
    if (rows.length === 0) return;
    this.#log.warn({ messages: rows.length }, 'uplink_journal_replay');
    const parsers = new Map<string, GatewayParser | null>();
    const gone: JournalTicket[] = [];
    for (const { uplink: row, ticket } of rows) {
      let parser = parsers.get(row.gatewayId);
      if (parser === undefined) {
        try {
          const config = await this.#deps.registry.getGatewayRuntimeConfig(row.gatewayId);
          parser = this.#parserFor(row.gatewayId, config.name);
          parser.configure(config.dataParsing);
        } catch {
          parser = null; // the gateway was deleted: its messages went with it
        }
        parsers.set(row.gatewayId, parser);
      }
      if (parser === null) {
        gone.push(ticket);
        continue;
      }
      const parsing = parser.parse(row.topic, row.payload);
      this.#received({ ...row, outcome: parsing === null ? null : await parsing, ticket });
    }
    // The taps compile the script again when their gateway starts; nothing runs it until then.
    for (const parser of parsers.values()) parser?.dispose();
    if (gone.length > 0) {
      this.#log.warn({ messages: gone.length }, 'uplink_journal_gateway_gone');
      this.#journal.settled(gone);
    }
    await this.store.flush();
  }

  /**
   * A batch of messages is in the store: once the webhook outbox entries and property updates
   * queued with them are written too, their journal rows go (QoS 0 never had one).
   */
  async #settle(tickets: readonly JournalTicket[]): Promise<void> {
    if (this.#journal === null) return;
    const propertiesDue = this.#propertiesQueued;
    await this.webhooks.flushOutbox();
    if (this.#propertiesWritten < propertiesDue) {
      await new Promise<void>((resolve) => this.#propertyWaiters.push({ upTo: propertiesDue, resolve }));
    }
    this.#journal.settled(tickets);
  }

  #received(u: Uplink | (JournaledUplink & Pick<Uplink, 'outcome' | 'ticket'>)): void {
    // A parse that finished during shutdown: storage may be gone (a QoS 1/2 one stays journaled).
    if (this.#closed) return;
    const outcome = u.outcome;
    const parsed = outcome?.ok === true ? outcome.value : null;
    const record: MessageRecord = {
      id: u.id, gatewayId: u.gatewayId, productKey: u.productKey, deviceName: u.deviceName,
      topic: u.topic, qos: u.qos, payload: u.payload, parsed,
      parseError: outcome !== null && !outcome.ok ? outcome.error : null,
      receivedAt: new Date(u.receivedAt).toISOString(),
    };
    if (record.parseError !== null) this.#log.debug({ gatewayId: u.gatewayId, deviceName: u.deviceName, reason: record.parseError }, 'parse_failed');

    // A property post as the script made it, or as an Alink device sent it when nothing parses.
    const post = parsed ?? (outcome === null && isPropertyPostTopic(u.topic) ? jsonObject(u.payload) : null);
    const values = post === null ? null : propertyPostValues(post, u.receivedAt);
    if (values !== null) this.#queueProperties(u.productKey, u.deviceName, values);

    this.store.add(record, u.ticket);
    const view = messageView(record);
    this.hub.publish({ id: record.id, type: 'message', gatewayId: u.gatewayId, deviceName: u.deviceName, data: view });
    // Stored and sent to webhooks here only; the other nodes' streams show it too.
    this.#deps.peers?.share({ kind: 'message', record });
  }

  /** A stored connection event goes live on /stream (deviceName '' for a device without a record). */
  publishConnectionEvent(record: ConnectionEventRecord): void {
    this.#publishLocal({ id: newEventId(), type: 'connection', gatewayId: record.gatewayId, deviceName: record.deviceName ?? '', data: record });
  }

  /** An event of this node's device: its streams and webhooks, and the other nodes' streams. */
  #publishLocal(event: Exclude<PlatformEvent, { type: 'message' }>): void {
    this.hub.publish(event);
    this.#deps.peers?.share({ kind: 'event', event });
  }

  #presence({ type, identity, at, clientAddress }: DevicePresence): void {
    if (this.#closed) return;
    const { gatewayId, productKey, deviceName } = identity;
    const event: Exclude<PlatformEvent, { type: 'message' }> = {
      id: newEventId(), type, gatewayId, deviceName,
      data: { gatewayId, productKey, deviceName, at: at.toISOString(), ...(type === 'online' ? { clientAddress } : {}) },
    };
    this.#publishLocal(event);
  }

  #queueProperties(productKey: string, deviceName: string, values: Record<string, PropertyValue>): void {
    const key = `${productKey}\u0000${deviceName}`;
    const pending = this.#pendingProperties.get(key);
    if (pending === undefined) this.#pendingProperties.set(key, { productKey, deviceName, values });
    else Object.assign(pending.values, values);
    this.#propertiesQueued++;
    this.#propertyWrite ??= Promise.resolve().then(() => this.#flushProperties());
  }

  /** One read-merge-write per device at a time, from this loop only, so posts never overwrite each other. */
  async #flushProperties(): Promise<void> {
    while (this.#pendingProperties.size > 0) {
      const batch = [...this.#pendingProperties.values()];
      this.#pendingProperties.clear();
      const upTo = this.#propertiesQueued;
      for (const p of batch) {
        try {
          const result = await this.#deps.registry.devices.mergeProperties(p.productKey, p.deviceName, p.values, new Date(), this.options.deviceProperties);
          if (result === 'too_many' || result === 'too_large') {
            this.#propertiesRefused[result]++;
            this.#log.warn({ productKey: p.productKey, deviceName: p.deviceName, reason: result, posted: Object.keys(p.values).length, limits: this.options.deviceProperties }, 'device_properties_refused');
          }
        } catch (err) {
          this.#log.error({ err, deviceName: p.deviceName }, 'device_properties_update_failed');
        }
      }
      this.#propertiesWritten = upTo;
      this.#propertyWaiters = this.#propertyWaiters.filter((w) => {
        if (w.upTo > upTo) return true;
        w.resolve();
        return false;
      });
    }
    this.#propertyWrite = null;
  }
}

function jsonObject(payload: Buffer): Record<string, unknown> | null {
  if (payload.length === 0 || payload[0] !== 0x7b) return null; // '{'
  try {
    const value: unknown = JSON.parse(payload.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
