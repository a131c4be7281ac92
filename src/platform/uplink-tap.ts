/**
 * Taps one running gateway's uplink: every PUBLISH its devices make is, after the engine has routed
 * it, parsed (when the gateway parses), stored, streamed and handed to webhooks. The engine's event
 * fires before routing, so all work here is deferred to a microtask (one a turn): the MQTT path pays
 * for one object per message and nothing else. Its devices' connections and disconnections come the
 * same way, and each device's items are handed on in the order the engine saw them (device-order.ts).
 */
import type { Broker, ClientInfo, Message } from '../broker/index.ts';
import type { DeviceIdentity, DevicePresence } from '../gateway/ports.ts';
import { settledWithin } from '../core/settled-within.ts';
import { DeviceOrder } from './device-order.ts';
import type { DataParsingConfig } from '../registry/index.ts';
import { newEventId } from './ids.ts';
import type { GatewayParser, ParseOutcome } from './parser.ts';
import type { JournalTicket, JournaledUplink, UplinkJournal } from './uplink-journal.ts';

/** An uplink on its way through the platform: as journaled, plus what parsing and the journal made of it. */
export interface Uplink extends JournaledUplink {
  outcome: ParseOutcome | null;
  /** The journal record holding this uplink until it is written everywhere (QoS 1/2 with a journal). */
  ticket: JournalTicket | null;
}

/** What a tap needs of a running gateway (a `GatewayInstance`, or a bare engine in the bench). */
export interface TappedGateway {
  readonly broker: Pick<Broker, 'on' | 'off' | 'commits'>;
  readonly config: { readonly dataParsing: DataParsingConfig };
  /** Its devices' connections and disconnections, told synchronously in the engine's order (returns the unsubscribe). */
  observePresence?(listener: (presence: DevicePresence) => void): () => void;
}

/** Where a tap hands on what it saw, each device's items in the order its engine saw them. */
export interface TapOutput {
  uplink(uplink: Uplink): void;
  /** A device came online or went offline, once the registry recorded it (one it did not record is not told). */
  presence?(presence: DevicePresence): void;
}

/** A device's items waiting behind one of its own still being parsed or recorded, at most (device-order.ts). */
export const MAX_HELD_PER_DEVICE = 1_000;
/** How long a device's items wait at most for the registry to record its connection or disconnection. */
export const PRESENCE_RECORD_WAIT_MS = 5_000;

export class UplinkTap {
  readonly parser: GatewayParser;
  readonly #instance: TappedGateway;
  readonly #listener: (message: Message, client: ClientInfo | null) => void;
  readonly #output: TapOutput;
  readonly #order = new DeviceOrder(MAX_HELD_PER_DEVICE);
  /** Uplinks in the parser's queue, each with its place in its device's order (bounded by that queue). */
  readonly #parsing = new Map<Uplink, (handOn: () => void) => void>();
  readonly #stopObservingPresence: () => void;
  /** Uplinks of this turn, handed on after routing: one microtask a turn, not one a message. */
  #due: Uplink[] = [];
  #drainScheduled = false;

  /**
   * With a journal, every QoS 1/2 uplink is appended to it synchronously, in the engine's event, so
   * it is committed before the engine's PUBACK/PUBREC for it leaves.
   */
  constructor(instance: TappedGateway, parser: GatewayParser, output: TapOutput, journal?: UplinkJournal) {
    this.#instance = instance;
    this.parser = parser;
    this.#output = output;
    parser.configure(instance.config.dataParsing);
    this.#listener = (message, client) => {
      // Messages from the platform itself (downlink) have no client and are not uplink.
      const identity = client?.identity as DeviceIdentity | undefined;
      if (identity === undefined) return;
      const receivedAt = Date.now();
      // One object a message, of one shape, filled in as it goes (a spread copy per message was a
      // tenth of the engine's time at saturation).
      const uplink: Uplink = {
        id: newEventId(receivedAt), gatewayId: identity.gatewayId, productKey: identity.productKey, deviceName: identity.deviceName,
        topic: message.topic, qos: message.qos, payload: message.payload, receivedAt, outcome: null, ticket: null,
      };
      if (message.qos > 0 && journal !== undefined) uplink.ticket = journal.add(uplink, instance.broker.commits);
      this.#due.push(uplink);
      if (!this.#drainScheduled) {
        this.#drainScheduled = true;
        queueMicrotask(this.#drain);
      }
    };
    instance.broker.on('message_published', this.#listener);
    this.#stopObservingPresence = instance.observePresence?.((presence) => this.#presence(presence)) ?? (() => undefined);
  }

  /**
   * A presence change takes its place after the uplinks the engine accepted before it (those of this turn are
   * drained first) and is handed on once recorded, or after PRESENCE_RECORD_WAIT_MS if the registry is slow
   * (told then: the engine saw it); a disconnection the registry did not record (the device is online on another
   * node since) is not told at all.
   */
  #presence(presence: DevicePresence): void {
    if (this.#due.length > 0) this.#drain();
    const done = this.#order.pending(presence.identity.deviceName);
    const output = this.#output;
    let recorded = true;
    void settledWithin(presence.recorded.then((r) => (recorded = r)), PRESENCE_RECORD_WAIT_MS)
      .then(() => done(() => { if (recorded) output.presence?.(presence); }));
  }

  readonly #drain = (): void => {
    this.#drainScheduled = false;
    const due = this.#due;
    this.#due = [];
    for (const uplink of due) {
      const parsing = this.parser.submit(uplink, this.#parsed);
      if (parsing === null) {
        this.#handOn(uplink);
      } else if (parsing === 'queued') {
        this.#parsing.set(uplink, this.#order.pending(uplink.deviceName));
        // A payload that is a view of the socket read it came in would keep that whole read's memory alive while it
        // waits for the sandbox (up to its queue's length of messages): it waits with a copy.
        if (uplink.payload.byteLength < uplink.payload.buffer.byteLength) uplink.payload = Buffer.from(uplink.payload);
      } else {
        // Not parsed (the queue is full, the script does not compile): known at once.
        uplink.outcome = parsing;
        this.#handOn(uplink);
      }
    }
  };

  /** An uplink ready now: handed on at once, unless its device waits for an earlier item (no closure made then). */
  #handOn(uplink: Uplink): void {
    if (this.#order.holds(uplink.deviceName)) this.#order.ready(uplink.deviceName, () => this.#output.uplink(uplink));
    else this.#output.uplink(uplink);
  }

  /** A queued uplink's outcome: one function for them all. */
  readonly #parsed = (uplink: Uplink, outcome: ParseOutcome): void => {
    uplink.outcome = outcome;
    const done = this.#parsing.get(uplink);
    this.#parsing.delete(uplink);
    if (done === undefined) this.#output.uplink(uplink);
    else done(() => this.#output.uplink(uplink));
  };

  /** The gateway's configuration was edited: a new script is compiled once, here. */
  reconfigured(): void {
    this.parser.configure(this.#instance.config.dataParsing);
  }

  close(): void {
    this.#instance.broker.off('message_published', this.#listener);
    this.#stopObservingPresence();
    this.parser.dispose();
  }
}
