/**
 * Taps one running gateway's uplink: every PUBLISH its devices make is, after the engine has routed
 * it, parsed (when the gateway parses), stored, streamed and handed to webhooks. The engine's event
 * fires before routing, so all work here is deferred to a microtask (one a turn): the MQTT path pays
 * for one object per message and nothing else.
 */
import type { Broker, ClientInfo, Message } from '../broker/index.ts';
import type { DeviceIdentity } from '../gateway/ports.ts';
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
}

export class UplinkTap {
  readonly parser: GatewayParser;
  readonly #instance: TappedGateway;
  readonly #listener: (message: Message, client: ClientInfo | null) => void;
  readonly #onUplink: (uplink: Uplink) => void;
  /** Uplinks of this turn, handed on after routing: one microtask a turn, not one a message. */
  #due: Uplink[] = [];
  #drainScheduled = false;

  /**
   * With a journal, every QoS 1/2 uplink is appended to it synchronously, in the engine's event, so
   * it is committed before the engine's PUBACK/PUBREC for it leaves.
   */
  constructor(instance: TappedGateway, parser: GatewayParser, onUplink: (uplink: Uplink) => void, journal?: UplinkJournal) {
    this.#instance = instance;
    this.parser = parser;
    this.#onUplink = onUplink;
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
  }

  readonly #drain = (): void => {
    this.#drainScheduled = false;
    const due = this.#due;
    this.#due = [];
    for (const uplink of due) {
      const parsing = this.parser.submit(uplink, this.#parsed);
      if (parsing === null) {
        this.#onUplink(uplink);
      } else if (parsing === 'queued') {
        // A payload that is a view of the socket read it came in would keep that whole read's memory alive while it
        // waits for the sandbox (up to its queue's length of messages): it waits with a copy.
        if (uplink.payload.byteLength < uplink.payload.buffer.byteLength) uplink.payload = Buffer.from(uplink.payload);
      } else {
        // Not parsed (the queue is full, the script does not compile): known at once.
        uplink.outcome = parsing;
        this.#onUplink(uplink);
      }
    }
  };

  /** A queued uplink's outcome: one function for them all. */
  readonly #parsed = (uplink: Uplink, outcome: ParseOutcome): void => {
    uplink.outcome = outcome;
    this.#onUplink(uplink);
  };

  /** The gateway's configuration was edited: a new script is compiled once, here. */
  reconfigured(): void {
    this.parser.configure(this.#instance.config.dataParsing);
  }

  close(): void {
    this.#instance.broker.off('message_published', this.#listener);
    this.parser.dispose();
  }
}
