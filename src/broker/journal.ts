/**
 * Records changes to durable engine state and commits them once per event-loop turn (before that
 * turn's socket writes). Only sessions that outlive their connection are journaled.
 */
import type { Logger } from '../core/logger.ts';
import type { Message } from './message.ts';
import type { Session } from './session.ts';
import { scheduleCommit, type Committable } from './flush-scheduler.ts';
import type { CommitGate } from './commit-gate.ts';
import {
  emptyBatch, isBatchEmpty, storedSubscription, type BrokerPersistence, type PersistenceBatch, type StoredMessage, type StoredOutbound, type StoredSubscription,
} from './persistence.ts';

export function storedMessage(m: Message): StoredMessage {
  return { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, properties: m.properties, expiresAt: m.expiresAt, senderId: m.senderId };
}

/**
 * What a record costs while it waits for the writer: its topic and payload (or filter), and a row's
 * worth of the rest. An estimate for the commit gate's byte bound, not the file's size.
 */
const ROW_BYTES = 64;

export interface OutboundRecord {
  seq: number;
  message: Message;
  qos: 0 | 1 | 2;
  retain: boolean;
  subIds: readonly number[] | undefined;
  packetId: number;
  state: 'publish' | 'pubrel';
}

export class Journal implements Committable {
  #batch: PersistenceBatch = emptyBatch();
  /** The engine's retained messages in `#batch`, told to `#onRetainedWritten` once the batch is written. */
  #retainedMessages = new Map<string, Message>();
  readonly #onRetainedWritten: ((message: Message) => void) | undefined;
  #scheduled = false;
  readonly #store: BrokerPersistence;
  readonly #logger: Logger;
  readonly #gate: CommitGate;
  /** Sessions whose snapshot must be rewritten at commit. */
  readonly #dirty = new Set<Session>();
  /** Bytes recorded in `#batch` (told to the gate as they come: see `CommitGate`). */
  #batchBytes = 0;
  /** `#batch.streamPosition` must be written with this turn's batch even if it has no rows. */
  #positionDue = false;

  /** `gate`: a store that writes asynchronously holds the engine's output there until each batch is written. */
  constructor(store: BrokerPersistence, logger: Logger, gate: CommitGate, onRetainedWritten?: (message: Message) => void) {
    this.#store = store;
    this.#logger = logger;
    this.#gate = gate;
    this.#onRetainedWritten = onRetainedWritten;
  }

  retained(topic: string, message: Message | null): void {
    this.#count(ROW_BYTES + topic.length + (message === null ? 0 : message.payload.length));
    this.#batch.retained.set(topic, message === null ? null : storedMessage(message));
    if (message === null) this.#retainedMessages.delete(topic);
    else this.#retainedMessages.set(topic, message);
    this.#schedule();
  }

  session(session: Session): void {
    this.#dirty.add(session);
    this.#schedule();
  }

  sessionDeleted(clientId: string, session: Session): void {
    this.#count(ROW_BYTES);
    this.#dirty.delete(session);
    this.#batch.sessions.set(clientId, null);
    this.#batch.sessionsEnded.add(clientId); // the store drops its messages and subscriptions with it, first
    const prefix = `${clientId}\u0000`;
    for (const key of this.#batch.outbound.keys()) if (key.startsWith(prefix)) this.#batch.outbound.delete(key);
    this.#batch.subscriptions.delete(clientId);
    session.subscriptionsStored = false;
    this.#schedule();
  }

  /** One filter of a session was added, replaced (`sub`) or removed (null). */
  subscription(clientId: string, raw: string, sub: StoredSubscription | null): void {
    this.#count(ROW_BYTES + raw.length);
    this.#subscriptionsOf(clientId).set(raw, sub);
    this.#schedule();
  }

  #subscriptionsOf(clientId: string): Map<string, StoredSubscription | null> {
    let subs = this.#batch.subscriptions.get(clientId);
    if (subs === undefined) this.#batch.subscriptions.set(clientId, (subs = new Map<string, StoredSubscription | null>()));
    return subs;
  }

  outbound(clientId: string, r: OutboundRecord): void {
    this.#count(ROW_BYTES + r.message.topic.length + r.message.payload.length);
    const stored: StoredOutbound = {
      clientId, seq: r.seq, message: storedMessage(r.message), qos: r.qos, retain: r.retain,
      subIds: r.subIds === undefined ? undefined : [...r.subIds], packetId: r.packetId, state: r.state,
    };
    this.#batch.outbound.set(`${clientId}\u0000${r.seq}`, stored);
    this.#schedule();
  }

  outboundDone(clientId: string, seq: number): void {
    this.#count(ROW_BYTES);
    this.#batch.outbound.set(`${clientId}\u0000${seq}`, null);
    this.#schedule();
  }

  /**
   * The cluster stream's message `seq` was handed to the engine by the live feed and delivered (`due`: to a persistent
   * session). The position is written with the turn's batch when it has rows or is due, and otherwise rides with the
   * next one: a position written late only makes a restarted node replay messages that reached no persistent session
   * (they reach none again), while writing it alone would hold every turn's output behind a commit.
   */
  streamPosition(seq: number, due: boolean): void {
    this.#batch.streamPosition = seq;
    if (!due) return;
    this.#positionDue = true;
    this.#schedule();
  }

  #count(bytes: number): void {
    this.#batchBytes += bytes;
    this.#gate.add(bytes);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    scheduleCommit(this);
  }

  commit(): void {
    this.#scheduled = false;
    for (const s of this.#dirty) {
      if (s.expiryInterval <= 0) continue;
      this.#count(ROW_BYTES);
      this.#batch.sessions.set(s.clientId, s.snapshot());
      // A session becoming durable (or written for the first time) takes its filters along once.
      if (!s.subscriptionsStored) {
        const stored = this.#subscriptionsOf(s.clientId);
        for (const sub of s.subscriptions.values()) {
          this.#count(ROW_BYTES + sub.raw.length);
          stored.set(sub.raw, storedSubscription(sub));
        }
        s.subscriptionsStored = true;
      }
    }
    this.#dirty.clear();
    const bytes = this.#batchBytes;
    this.#batchBytes = 0;
    if (isBatchEmpty(this.#batch) && !this.#positionDue) {
      this.#gate.release(bytes);
      return;
    }
    this.#positionDue = false;
    const batch = this.#batch;
    this.#batch = emptyBatch();
    const retained = this.#retainedMessages;
    if (retained.size > 0) this.#retainedMessages = new Map();
    const written = (): void => {
      if (this.#onRetainedWritten !== undefined) for (const m of retained.values()) this.#onRetainedWritten(m);
    };
    try {
      const r = this.#store.write(batch);
      if (r instanceof Promise) {
        this.#gate.track(r, bytes);
        r.then(written, (err: unknown) => this.#logger.error({ err }, 'persistence_write_failed'));
      } else {
        this.#gate.release(bytes);
        written();
      }
    } catch (err) {
      // Not written: the payloads stay in memory (a later write of the same topic may still succeed).
      this.#gate.release(bytes);
      this.#logger.error({ err }, 'persistence_write_failed');
    }
  }
}
