/**
 * Taps one running gateway's uplink: every PUBLISH its devices make is, after the engine has routed
 * it, parsed (when the gateway parses), stored, streamed and handed to webhooks. The engine's event
 * fires before routing, so all work here is deferred to a microtask: the MQTT path pays for one
 * closure per message and nothing else.
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
  readonly broker: Pick<Broker, 'on' | 'off'>;
  readonly config: { readonly dataParsing: DataParsingConfig };
}

export class UplinkTap {
  readonly parser: GatewayParser;
  readonly #instance: TappedGateway;
  readonly #listener: (message: Message, client: ClientInfo | null) => void;

  /**
   * With a journal, every QoS 1/2 uplink is appended to it synchronously, in the engine's event, so
   * it is committed before the engine's PUBACK/PUBREC for it leaves.
   */
  constructor(instance: TappedGateway, parser: GatewayParser, onUplink: (uplink: Uplink) => void, journal?: UplinkJournal) {
    this.#instance = instance;
    this.parser = parser;
    parser.configure(instance.config.dataParsing);
    this.#listener = (message, client) => {
      // Messages from the platform itself (downlink) have no client and are not uplink.
      const identity = client?.identity as DeviceIdentity | undefined;
      if (identity === undefined) return;
      const receivedAt = Date.now();
      const base = {
        id: newEventId(receivedAt), gatewayId: identity.gatewayId, productKey: identity.productKey, deviceName: identity.deviceName,
        topic: message.topic, qos: message.qos, payload: message.payload, receivedAt,
      };
      const ticket = message.qos > 0 && journal !== undefined ? journal.add(base) : null;
      queueMicrotask(() => {
        const parsing = this.parser.parse(message.topic, message.payload);
        if (parsing === null) onUplink({ ...base, outcome: null, ticket });
        else void parsing.then((outcome) => onUplink({ ...base, outcome, ticket }));
      });
    };
    instance.broker.on('message_published', this.#listener);
  }

  /** The gateway's configuration was edited: a new script is compiled once, here. */
  reconfigured(): void {
    this.parser.configure(this.#instance.config.dataParsing);
  }

  close(): void {
    this.#instance.broker.off('message_published', this.#listener);
    this.parser.dispose();
  }
}
