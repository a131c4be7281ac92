/**
 * One network connection: framing and decoding of what the socket reads, batched writes with
 * backpressure, keep alive bookkeeping, and the protocol state that lives only as long as the
 * connection (negotiated limits, topic aliases). Session state lives in `Session`.
 */
import type { Socket } from 'node:net';
import { isUtf8 } from 'node:buffer';
import { Framer, type FrameSink } from '../mqtt/framer.ts';
import {
  decodeAckFast, decodeConnectFast, decodeDisconnectFast, decodeFrame, decodePublishFast, encodeAck, encodePacket, encodePublish, PacketLimitError,
  variableHeaderOffset, type Packet, type ProtocolVersion, type QoS,
} from '../mqtt/codec.ts';
import { RC, v3ConnackCode } from '../mqtt/reason-codes.ts';
import { checkProperties, subscribeHasZeroSubscriptionId } from '../mqtt/properties.ts';
import { forwardedBytesOf, remainingExpiry, topicBytesOf, type Message } from './message.ts';
import type { Session, SessionLink } from './session.ts';
import type { ClientInfo, Farewell } from './hooks.ts';
import type { BrokerContext } from './context.ts';
import { flushIfOverdue, scheduleFlush, type Flushable } from './flush-scheduler.ts';
import { acceptedAt } from './admission.ts';
import { Pacer } from './pacer.ts';

export type ConnectionState = 'awaiting-connect' | 'connecting' | 'connected' | 'closed';

const EMPTY_TOPIC = Buffer.alloc(0);
/** Longer topic names are decoded for every PUBLISH rather than kept per connection. */
const MAX_REMEMBERED_TOPIC = 256;
/** Above this many buffered bytes, a flush writes chunks one by one instead of concatenating them. */
const CONCAT_LIMIT = 256 * 1024;

export class Connection implements SessionLink, ClientInfo, Flushable, FrameSink {
  readonly socket: Socket;
  readonly broker: BrokerContext;
  state: ConnectionState = 'awaiting-connect';
  protocolVersion: ProtocolVersion = 4;
  clientId = '';
  username: string | undefined;
  identity: unknown;
  session: Session | null = null;
  /** Seconds; 0 = no keep alive. */
  keepalive = 0;
  readonly createdAt: number;
  lastActivity: number;
  /** Set when the client sent DISCONNECT 0x00: no will [MQTT-3.1.2-10]. */
  normalDisconnect = false;
  will: Message | null = null;
  willDelay = 0;
  /** The will's Message Expiry Interval (seconds, 0 = none), applied when it is published. */
  willExpiry = 0;
  /** The client's limits towards us (v5 CONNECT properties). */
  clientReceiveMaximum = 65535;
  clientMaxPacketSize = 0;
  clientTopicAliasMaximum = 0;
  /** What the CONNECT presented, kept for connection events until a CONNACK accepts it. */
  presented: { clientId: string; username: string | undefined } | null = null;
  /** What the peer was told when this connection ended, set by whoever ends it (connection events). */
  farewell: Farewell | null = null;
  /** A cluster node's place for this connection among the gateway's maxConnections (given back when it ends). */
  holdsPlace = false;
  /** A cluster node's place for a new session of this owner among its maxSessionsPerOwner, until the session opens. */
  sessionPlaceOf: string | undefined = undefined;
  /**
   * The last PUBACK/PUBREC still waiting (a retained message on its way to a cluster's store): later ones
   * queue behind it, so they leave in the order the PUBLISHes came [MQTT-4.6.0-2]. Null when none waits.
   */
  acksPending: Promise<void> | null = null;
  /**
   * On a cluster node, while an inbound QoS 2 message's store id is being written into its session's record: settles
   * once that message is handed on (`Broker.publish`). Later PUBLISHes of this connection are handed on after it, so
   * they reach the stream, and the subscribers, in the order they came [MQTT-4.6.0-6]. Null when none waits.
   */
  publishGate: Promise<unknown> | null = null;

  readonly #framer: Framer;
  #inAliases: Map<number, string> | undefined;
  #outAliases: Map<string, number> | undefined;
  #out: Buffer[] = [];
  #outBytes = 0;
  /**
   * Output flushed while a commit it depends on was in flight (see `CommitGate`): it leaves in order,
   * each batch once its commit has settled. Null when nothing is held.
   */
  #gated: GatedOutput[] | null = null;
  #gatedBytes = 0;
  /** The connection is closed: the socket ends once what it owes has left (`#outDrainAndEnd`). */
  #endWhenReleased = false;
  readonly #release = (): void => this.#releaseGated();
  #flushQueued = false;
  #suspended = false;
  #held: Buffer[] | undefined;
  /** The topic of the last PUBLISH received, and its bytes as sent (see #sameTopicAsLast). */
  #lastTopic = '';
  #lastTopicBytes: Buffer | undefined;
  /** Created when a message or byte rate is first set for this connection. */
  #pacer: Pacer | undefined;

  constructor(socket: Socket, broker: BrokerContext) {
    this.socket = socket;
    this.broker = broker;
    this.lastActivity = broker.now();
    // The CONNECT deadline counts from the TCP accept, so a slow TLS handshake does not extend it.
    this.createdAt = acceptedAt(socket, this.lastActivity);
    this.#framer = new Framer(broker.options.maxPacketSize);
    // Shared listeners that find their connection on the socket: no closures per idle device.
    (socket as SocketWithConnection)[CONNECTION] = this;
    socket.on('data', onSocketData);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);
  }

  /**
   * The peer's address, asked of the socket when first needed (a getpeername call that Node then
   * caches): the bare engine never needs it for most connections. Undefined once the socket is gone
   * if nobody asked before.
   */
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get sendQuota(): number {
    return this.clientReceiveMaximum;
  }

  get congested(): boolean {
    return this.socket.writableLength + this.#outBytes + this.#gatedBytes > this.broker.options.maxWriteBuffer;
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** This server is not reading the connection (pacing, a pending step, writes behind): its silence is ours. */
  get readingSuspended(): boolean {
    return this.#suspended;
  }

  get isV5(): boolean {
    return this.protocolVersion === 5;
  }

  /** The largest packet read from now on (the limit CONNACK announces). */
  setMaxPacketSize(bytes: number): void {
    this.#framer.maxPacketSize = bytes;
  }

  /** The client is accepted: its big frames may go to shared memory from now on (framer.ts). */
  shareLargeFrames(): void {
    this.#framer.shareLargeFrames = true;
  }

  setProtocolVersion(v: ProtocolVersion): void {
    this.protocolVersion = v;
  }

  // ---- reading ----

  /** @internal socket 'data' */
  onData(chunk: Buffer): void {
    this.lastActivity = this.broker.now();
    // [MQTT-3.1.0-1] the first packet is a CONNECT: a stream starting with any other byte (an HTTP
    // request, a TLS hello on a plain port) is dropped at once rather than framed into a bogus packet.
    if (this.state === 'awaiting-connect' && this.#framer.bufferedBytes === 0 && chunk.length > 0 && chunk[0] !== 0x10) {
      this.broker.stats.protocolErrors++;
      this.close('first_packet_not_connect');
      return;
    }
    if (this.#suspended) {
      (this.#held ??= []).push(chunk);
      return;
    }
    this.#process(chunk);
    flushIfOverdue();
  }

  #process(chunk: Buffer | null): void {
    if (this.state === 'connected' && this.broker.commits.overloaded) {
      // The gateway's writes are behind its input: read nothing more until they catch up (frames the
      // framer still holds wait with it).
      if (chunk !== null) (this.#held ??= []).push(chunk);
      this.#pauseForWrites();
      return;
    }
    const err = this.#framer.push(chunk, this);
    if (err === 'too-large') {
      // [MQTT-3.2.2-15] packets above our Maximum Packet Size end the connection with 0x95.
      this.broker.stats.packetsTooLarge++;
      this.protocolViolation(RC.PACKET_TOO_LARGE, 'packet_too_large');
    } else if (err === 'malformed-length') {
      this.protocolViolation(RC.MALFORMED_PACKET, 'malformed_remaining_length');
    }
  }

  /** @internal one whole frame from the framer; false stops reading frames for now. */
  onFrame(frame: Buffer, type: number): boolean {
    try {
      return this.#onFrame(frame, type);
    } catch (err) {
      // A bug must cost this one connection, never the process.
      this.broker.stats.handlerCrashes++;
      this.broker.logger.error({ err, clientId: this.clientId, type }, 'packet_handler_crashed');
      this.protocolViolation(RC.IMPLEMENTATION_SPECIFIC_ERROR, 'packet_handler_crashed');
      return false;
    }
  }

  #onFrame(frame: Buffer, type: number): boolean {
    if (this.state === 'closed') return false;
    // Most devices publish to one topic: when the bytes are those of the previous PUBLISH, the name
    // is already decoded and was checked to be UTF-8.
    const knownTopic = type === 3 ? this.#sameTopicAsLast(frame) : undefined;
    if (type === 3 && knownTopic === undefined && !publishTopicIsUtf8(frame)) {
      // [MQTT-1.5.4-1] ill-formed UTF-8 in a topic name is a malformed packet.
      this.protocolViolation(RC.MALFORMED_PACKET, 'invalid_utf8_topic');
      return false;
    }
    if (type === 1 && this.state === 'awaiting-connect') {
      const level = connectProtocolLevel(frame);
      if (level === 5) this.setProtocolVersion(5);
      else if (level === 3 || level === 4) this.setProtocolVersion(level);
      else if (level !== null) {
        // [MQTT-3.1.2-2] unsupported protocol level: CONNACK 0x01 (v3 form, the client's version is unknown) and close.
        this.write(encodePacket({ cmd: 'connack', returnCode: 1, sessionPresent: false }, 4));
        this.farewell = { sent: 1, reasonCode: RC.UNSUPPORTED_PROTOCOL_VERSION, detail: `protocol level ${level}` };
        this.close('unsupported_protocol_version');
        return false;
      }
    }
    if (type === 8 && this.protocolVersion === 5 && subscribeHasZeroSubscriptionId(frame)) {
      this.protocolViolation(RC.PROTOCOL_ERROR, 'subscription_identifier_zero');
      return false;
    }
    let packet: Packet | Error;
    try {
      const fast = type === 1 ? decodeConnectFast(frame)
        : this.state !== 'connected' ? null
          : type === 3 ? decodePublishFast(frame, this.protocolVersion, knownTopic)
            : type >= 4 && type <= 7 ? decodeAckFast(frame, type, this.protocolVersion)
              : type === 14 ? decodeDisconnectFast(frame) : null;
      packet = fast ?? decodeFrame(frame, this.protocolVersion, this.broker.decodeLimits);
    } catch (err) {
      packet = err instanceof Error ? err : new Error(String(err)); // the codec threw on hostile bytes
    }
    if (packet instanceof PacketLimitError) {
      // Within the specification, over this server's limits: an administrative limit, 0x97.
      if (packet.limit === 'maxUserProperties') this.broker.stats.packetsOverUserProperties++;
      else this.broker.stats.packetsOverFilters++;
      this.protocolViolation(RC.QUOTA_EXCEEDED, 'packet_over_limits', packet.message);
      return false;
    }
    if (packet instanceof Error) {
      this.protocolViolation(RC.MALFORMED_PACKET, 'malformed_packet', packet.message);
      return false;
    }
    if (packet.cmd === 'publish' && knownTopic === undefined) this.#rememberTopic(frame, packet.topic);
    if (this.protocolVersion === 5 && 'properties' in packet) {
      const rc = checkProperties(packet.properties);
      if (rc !== RC.SUCCESS) {
        this.protocolViolation(rc, 'invalid_properties');
        return false;
      }
    }
    const pending = this.broker.dispatch(this, packet);
    const wait = type === 3 ? this.#paceFor(frame.length) : 0;
    if (pending !== undefined || wait > 0) {
      this.#suspend(wait === 0 ? pending! : (pending ?? Promise.resolve()).then(() => pause(wait)));
      return false;
    }
    if (this.broker.commits.overloaded && !this.closed) {
      this.#pauseForWrites();
      return false;
    }
    return !this.closed;
  }

  /**
   * Stops reading until the gateway's unwritten state is back under half its bound (`CommitGate`): a
   * client that publishes faster than the disk writes (3.1.1 QoS 1 without waiting for PUBACKs) is
   * slowed to the disk's pace instead of growing the writer's queue.
   */
  #pauseForWrites(): void {
    this.broker.stats.readsPausedForWrites++;
    this.#suspend(this.broker.commits.relieved());
  }

  /** Ms to stop reading after a PUBLISH of `size` bytes, for a client over its message or byte rate (counted). */
  #paceFor(size: number): number {
    const { messagesPerSecondPerClient: messages, bytesPerSecondPerClient: bytes } = this.broker.options;
    if (messages === 0 && bytes === 0) return 0;
    const now = this.broker.now();
    const wait = (this.#pacer ??= new Pacer(now)).take(size, messages, bytes, now);
    if (wait > 0) this.broker.stats.publishesPaced++;
    return wait;
  }

  /** Stops reading until an asynchronous step (authentication, authorization) settles. */
  #suspend(pending: Promise<void>): void {
    this.#suspended = true;
    this.socket.pause();
    pending.then(
      () => this.#resumeReading(),
      (err: unknown) => {
        this.broker.stats.handlerCrashes++;
        this.broker.logger.error({ err, clientId: this.clientId }, 'connection_handler_failed');
        this.protocolViolation(RC.UNSPECIFIED_ERROR, 'handler_failed');
      },
    );
  }

  #resumeReading(): void {
    this.#suspended = false;
    if (this.state === 'closed') return;
    // Time we kept the client waiting (authentication, pacing) is not silence on its part [MQTT-3.1.2-24].
    this.lastActivity = this.broker.now();
    const held = this.#held;
    this.#held = undefined;
    this.socket.resume();
    this.#process(held === undefined ? null : Buffer.concat(held));
  }

  /** The previous PUBLISH's topic name when this frame carries the same topic bytes, else undefined. */
  #sameTopicAsLast(frame: Buffer): string | undefined {
    const last = this.#lastTopicBytes;
    if (last === undefined) return undefined;
    const at = variableHeaderOffset(frame);
    if (at + 2 + last.length > frame.length || frame.readUInt16BE(at) !== last.length) return undefined;
    for (let i = 0, p = at + 2; i < last.length; i++, p++) if (frame[p] !== last[i]) return undefined;
    return this.#lastTopic;
  }

  #rememberTopic(frame: Buffer, topic: string): void {
    // An empty name (v5 topic alias) or a very long one is not worth keeping.
    if (topic.length === 0 || topic.length > MAX_REMEMBERED_TOPIC) return;
    const at = variableHeaderOffset(frame);
    this.#lastTopicBytes = Buffer.from(frame.subarray(at + 2, at + 2 + frame.readUInt16BE(at)));
    this.#lastTopic = topic;
  }

  // ---- topic aliases ----

  /** Inbound alias table (aliases the client set towards us). */
  get inboundAliases(): Map<number, string> {
    return (this.#inAliases ??= new Map<number, string>());
  }

  #outboundAlias(topic: string): { alias: number; known: boolean } {
    if (this.clientTopicAliasMaximum === 0) return { alias: 0, known: false };
    const aliases = (this.#outAliases ??= new Map<string, number>());
    const existing = aliases.get(topic);
    if (existing !== undefined) return { alias: existing, known: true };
    if (aliases.size >= this.clientTopicAliasMaximum) return { alias: 0, known: false };
    const alias = aliases.size + 1; // 1 … client's Topic Alias Maximum [MQTT-3.3.2-9]
    aliases.set(topic, alias);
    return { alias, known: false };
  }

  // ---- writing ----

  write(buf: Buffer): void {
    if (this.state === 'closed') return;
    this.#out.push(buf);
    this.#outBytes += buf.length;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      scheduleFlush(this);
    }
  }

  send(packet: Packet): void {
    this.write(encodePacket(packet, this.protocolVersion));
  }

  flush(): void {
    this.#flushQueued = false;
    const out = this.#out;
    if (this.socket.destroyed) return;
    if (out.length > 0) {
      const bytes = this.#outBytes;
      this.#out = [];
      this.#outBytes = 0;
      // Behind a commit still in flight (or behind output already held): held, in order [MQTT-4.6.0-2].
      const commit = this.broker.commits.required;
      if (this.#gated !== null || commit !== 0) this.#hold(out, bytes, commit);
      else this.#writeOut(out, bytes);
    }
    if (this.#endWhenReleased && this.#gated === null) {
      this.#endWhenReleased = false;
      this.socket.end();
    }
  }

  #writeOut(out: Buffer[], bytes: number): void {
    if (out.length === 1) {
      this.socket.write(out[0]!);
    } else if (bytes <= CONCAT_LIMIT) {
      this.socket.write(Buffer.concat(out, bytes));
    } else {
      this.socket.cork();
      for (const b of out) this.socket.write(b);
      this.socket.uncork();
    }
  }

  sendPublish(m: Message, qos: QoS, retain: boolean, packetId: number, dup: boolean, subIds: readonly number[] | undefined): boolean {
    let frame: Buffer;
    let newAlias = false;
    if (this.protocolVersion !== 5) {
      frame = encodePublish({
        topic: topicBytesOf(m), payload: m.payload, qos, retain, dup, packetId, protocolVersion: this.protocolVersion,
        forwarded: EMPTY_TOPIC, messageExpiry: -1, topicAlias: 0, subscriptionIds: undefined,
      });
    } else {
      const expiry = remainingExpiry(m, this.broker.now());
      const { alias, known } = this.#outboundAlias(m.topic);
      newAlias = alias > 0 && !known;
      frame = encodePublish({
        topic: known ? EMPTY_TOPIC : topicBytesOf(m), payload: m.payload, qos, retain, dup, packetId,
        protocolVersion: 5, forwarded: forwardedBytesOf(m), messageExpiry: expiry, topicAlias: alias, subscriptionIds: subIds,
      });
    }
    // [MQTT-3.1.2-24] never send a packet larger than the client's Maximum Packet Size.
    if (this.clientMaxPacketSize > 0 && frame.length > this.clientMaxPacketSize) {
      // The client never saw this alias being set: forget it, or later messages would use it.
      if (newAlias) this.#outAliases?.delete(m.topic);
      this.broker.stats.droppedTooLarge++;
      return false;
    }
    this.broker.stats.messagesDelivered++;
    this.write(frame);
    return true;
  }

  sendPubrel(packetId: number): void {
    this.sendAck('pubrel', packetId, 0);
  }

  sendAck(cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', packetId: number, reasonCode: number): void {
    this.write(encodeAck(cmd, packetId, reasonCode, this.protocolVersion));
  }

  /** @internal socket 'drain': the client reads again, queued messages may go. */
  onDrain(): void {
    this.session?.drain();
  }

  // ---- closing ----

  /**
   * Ends the connection because of what the client did. v5 clients are told why: in CONNACK before
   * the connection is accepted, in DISCONNECT after [MQTT-3.14.0-1, MQTT-4.13.1-1].
   */
  protocolViolation(reasonCode: number, event: string, detail?: string): void {
    if (this.state === 'closed') return;
    this.broker.stats.protocolErrors++;
    this.broker.logger.debug({ clientId: this.clientId, remoteAddress: this.remoteAddress, reasonCode, detail }, event);
    if (this.isV5) {
      if (this.state === 'connected') this.send({ cmd: 'disconnect', reasonCode });
      else this.send({ cmd: 'connack', reasonCode, sessionPresent: false });
    }
    this.farewell ??= { sent: this.isV5 ? reasonCode : null, reasonCode, detail };
    this.close(event);
  }

  /**
   * Ends a CONNECT not yet answered: CONNACK with the reason code (v3.1.1: its closest return code), then the close
   * [MQTT-3.2.2-7]. `why.step`, `why.detail` go to connection events; `why.reasonString` to a v5 client too.
   */
  refuseConnect(reasonCode: number, why: { step: string; reasonString?: string; detail?: string; cause?: string }): void {
    if (this.state === 'closed') return;
    let sent: number;
    if (this.isV5) {
      sent = reasonCode;
      this.send({ cmd: 'connack', sessionPresent: false, reasonCode, properties: why.reasonString === undefined ? undefined : { reasonString: why.reasonString } });
    } else {
      sent = v3ConnackCode(reasonCode);
      this.send({ cmd: 'connack', sessionPresent: false, returnCode: sent });
    }
    this.farewell = { sent, reasonCode, step: why.step, detail: why.detail ?? why.reasonString };
    this.close(why.cause ?? 'connect_refused');
  }

  /** Server-initiated DISCONNECT with a reason (v5), then close. */
  disconnect(reasonCode: number, reason: string): void {
    if (this.state === 'closed') return;
    const sent = this.isV5 && this.state === 'connected';
    if (sent) this.send({ cmd: 'disconnect', reasonCode });
    this.farewell ??= { sent: sent ? reasonCode : null, reasonCode };
    this.close(reason);
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    const was = this.state;
    this.state = 'closed';
    this.#outDrainAndEnd();
    this.broker.connectionClosed(this, reason, was);
  }

  /**
   * What is owed (a PUBACK, the DISCONNECT) leaves, then the socket ends — in the flush scheduler's
   * turn, after this turn's commits, so the last acknowledgements still follow the state they cover.
   */
  #outDrainAndEnd(): void {
    const socket = this.socket;
    if (socket.destroyed) {
      this.#out = [];
      this.#outBytes = 0;
      return;
    }
    // A peer that never finishes the close handshake must not hold the socket (nor a commit that never settles).
    this.broker.lingerAfterEnd(socket);
    this.#endWhenReleased = true;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      scheduleFlush(this);
    }
  }

  #hold(out: Buffer[], bytes: number, commit: number): void {
    if (this.#gated === null) {
      this.#gated = [];
      this.broker.commits.wait(this.#release);
    }
    // A batch never waits for less than the one before it: they leave in order.
    const previous = this.#gated.at(-1)?.commit ?? 0;
    this.#gated.push({ out, bytes, commit: Math.max(commit, previous) });
    this.#gatedBytes += bytes;
  }

  /** Commits settled: the held batches whose commit has, in order. */
  #releaseGated(): void {
    const gated = this.#gated;
    if (gated === null) return;
    const commits = this.broker.commits;
    let i = 0;
    while (i < gated.length && commits.passed(gated[i]!.commit)) i++;
    if (i === 0) return;
    const due = gated.splice(0, i);
    if (gated.length === 0) {
      this.#gated = null;
      commits.unwait(this.#release);
    }
    for (const batch of due) {
      this.#gatedBytes -= batch.bytes;
      if (!this.socket.destroyed) this.#writeOut(batch.out, batch.bytes);
    }
    if (this.#gated === null && this.#endWhenReleased) {
      this.#endWhenReleased = false;
      if (!this.socket.destroyed) this.socket.end();
    }
  }

  /**
   * Output held for a commit that did not hold: a QoS 2 PUBLISH or PUBREL whose record write found the session claimed
   * by another node (broker.ts `#withholdIfLost`). None of it leaves; the connection closes without it, with 0x8E in
   * v5 (its will is the claiming node's to handle), or, closed already by the takeover, its DISCONNECT goes alone.
   */
  abandonHeld(): void {
    if (this.socket.destroyed) return;
    this.#out = [];
    this.#outBytes = 0;
    this.#dropGated();
    if (this.state !== 'closed') {
      this.will = null;
      this.disconnect(RC.SESSION_TAKEN_OVER, 'session_taken_over');
      return;
    }
    this.#endWhenReleased = false;
    const farewell = this.farewell?.sent;
    if (this.isV5 && typeof farewell === 'number') this.socket.end(encodePacket({ cmd: 'disconnect', reasonCode: farewell }, 5));
    else this.socket.end();
  }

  /** @internal socket 'error' */
  onError(err: Error): void {
    this.broker.logger.debug({ err: err.message, clientId: this.clientId }, 'socket_error');
    this.socket.destroy();
  }

  /** @internal socket 'close' */
  onClose(): void {
    this.close(this.state === 'connected' ? 'connection_lost' : 'closed_before_connect');
    // Output still held for a commit has nowhere to go now.
    this.#dropGated();
  }

  /** Forgets the output held for commits (it will never be written), and stops waiting for them. */
  #dropGated(): void {
    if (this.#gated === null) return;
    this.#gated = null;
    this.#gatedBytes = 0;
    this.broker.commits.unwait(this.#release);
  }
}

/** Output held behind a commit: written once commit `commit` of the engine's gate has settled. */
interface GatedOutput {
  out: Buffer[];
  bytes: number;
  commit: number;
}

const CONNECTION = Symbol('gatehouse.connection');
type SocketWithConnection = Socket & { [CONNECTION]: Connection };

function onSocketData(this: Socket, chunk: Buffer): void {
  (this as SocketWithConnection)[CONNECTION].onData(chunk);
}
function onSocketError(this: Socket, err: Error): void {
  (this as SocketWithConnection)[CONNECTION].onError(err);
}
function onSocketClose(this: Socket): void {
  (this as SocketWithConnection)[CONNECTION].onClose();
}
function onSocketDrain(this: Socket): void {
  (this as SocketWithConnection)[CONNECTION].onDrain();
}

/** The Protocol Level byte of a CONNECT frame, or null when the frame is too short to tell. */
function connectProtocolLevel(frame: Buffer): number | null {
  const pos = variableHeaderOffset(frame);
  if (pos + 2 > frame.length) return null;
  const nameLen = frame.readUInt16BE(pos);
  const levelAt = pos + 2 + nameLen;
  return levelAt < frame.length ? frame[levelAt]! : null;
}

/** Checks the topic bytes of a PUBLISH frame are well-formed UTF-8 [MQTT-1.5.4-1]. */
function publishTopicIsUtf8(frame: Buffer): boolean {
  const pos = variableHeaderOffset(frame);
  if (pos + 2 > frame.length) return true; // too short: the decoder reports it as malformed
  const len = frame.readUInt16BE(pos);
  const topic = frame.subarray(pos + 2, pos + 2 + len);
  // Fast path: pure ASCII needs no validation.
  for (let i = 0; i < topic.length; i++) if (topic[i]! >= 0x80) return isUtf8(topic);
  return true;
}

/** Resolves after `ms`; never holds the process open (a paced connection of a stopping engine). */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
