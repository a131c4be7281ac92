/** The seams the gateway layer plugs into, and the events the platform layer consumes. */
import type { Socket } from 'node:net';
import type { IConnectPacket, ProtocolVersion, QoS } from '../mqtt/codec.ts';
import type { Message } from './message.ts';

/** What a CONNECT presented, for the authentication hook. */
export interface ConnectRequest {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  readonly protocolVersion: ProtocolVersion;
  readonly cleanStart: boolean;
  readonly keepalive: number;
  readonly properties: IConnectPacket['properties'];
  readonly remoteAddress: string | undefined;
  /** The socket (a `tls.TLSSocket` on TLS listeners: peer certificate, authorization state). */
  readonly socket: Socket;
  /** When the CONNECT was read (epoch ms; reading stays paused while it is verified). */
  readonly receivedAt: number;
  /** When its TCP connection was accepted (epoch ms), before the TLS handshake and the CONNECT. */
  readonly acceptedAt: number;
}

export type AuthResult =
  /**
   * `owner`: who the client is (a gateway's device). A session created under one owner is never resumed
   * nor taken over under another: that CONNECT is refused 0x85 (v3.1.1: 2). Absent = no ownership.
   */
  | { ok: true; identity?: unknown; owner?: string }
  | { ok: false; reasonCode: number; reasonString?: string };

/** A connected client as hooks and events see it. */
export interface ClientInfo {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly protocolVersion: ProtocolVersion;
  readonly remoteAddress: string | undefined;
  /** Whatever the authentication hook attached (device identity in a gateway). */
  readonly identity: unknown;
}

export interface BrokerHooks {
  /** Decides a CONNECT. Reading from the socket pauses while it runs. Anonymous allow when absent. */
  authenticate?: (request: ConnectRequest) => AuthResult | Promise<AuthResult>;
  /** 0x00 allows; any other v5 reason code refuses (PUBACK/PUBREC carry it; QoS 0 is dropped). */
  authorizePublish?: (client: ClientInfo, topic: string, message: Message) => number | Promise<number>;
  /** Returns the granted QoS (≤ requested) or a failure reason code (≥ 0x80). */
  authorizeSubscribe?: (client: ClientInfo, filter: string, qos: QoS) => number | Promise<number>;
  /**
   * A message a session was owed that none of its subscriptions covers any more (queued for it on the node it moved
   * from, before a subscription was removed): whether it may still receive it (`identity`: the authentication hook's).
   * Absent: it may.
   */
  mayReceive?: (identity: unknown, topic: string) => boolean;
}

/** How a connection ended, as far as the peer was told: for connection events. */
export interface Farewell {
  /** What was sent (v5 CONNACK / DISCONNECT reason code, v3.1.1 CONNACK return code); null when nothing was. */
  readonly sent: number | null;
  /** The reason in v5 numbering, also for v3.1.1 clients (null: the connection just closed). */
  readonly reasonCode: number | null;
  /** The CONNECT step that refused (`checkWill`, `authenticate` …), when one did. */
  readonly step?: string;
  /** The decoder's or the step's words (never device secrets). */
  readonly detail?: string;
}

/** A connection that ended before a CONNACK accepted it: refused, broken, or left by its client. */
export interface EndedConnect {
  readonly socket: Socket;
  readonly remoteAddress: string | undefined;
  /** What the CONNECT presented; undefined when none was read. */
  readonly clientId: string | undefined;
  readonly username: string | undefined;
  readonly protocolVersion: ProtocolVersion | undefined;
  /** `connect_refused`, a protocol violation (`malformed_packet` …), `connect_timeout`, `closed_before_connect` … */
  readonly cause: string;
  /** `awaiting-connect` (no CONNECT read yet) or `connecting` (its CONNECT was being decided). */
  readonly stage: 'awaiting-connect' | 'connecting';
  readonly farewell: Farewell | null;
}

/** A per-address admission limit that refused a raw socket. */
export type AdmissionLimit = 'maxConnectionsPerAddress' | 'connectionRatePerAddress';

export interface BrokerEvents {
  client_connected: [client: ClientInfo];
  client_disconnected: [client: ClientInfo, reason: string, farewell: Farewell | null];
  /** Emitted only when listened to (the bare engine builds nothing for it). */
  connect_ended: [attempt: EndedConnect];
  /** A raw socket refused by admission before TLS or MQTT (the socket is destroyed). */
  socket_refused: [remoteAddress: string, limit: AdmissionLimit];
  /** A message accepted from a client (after authorization), before routing. */
  message_published: [message: Message, client: ClientInfo | null];
}
