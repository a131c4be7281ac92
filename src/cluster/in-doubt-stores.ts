/**
 * Inbound QoS 2 stores a dead process made whose session records may not say so (issue 16 item 2: none delivered
 * twice).
 *
 * A node stores an inbound QoS 2 PUBLISH under a stream message id its session record determines
 * (`<epoch>.<packet id>.<uses>`, session-states.ts) and names the packet id as received with the record's next write,
 * within a second; the PUBREC does not wait for that write. A node killed in that second leaves a record that does
 * not name the id: the node resuming the session stores the client's resend again under the same id, and the stream
 * drops it as a duplicate only within its duplicate window (2 min). A client back later was delivered the message
 * twice.
 *
 * The survivor that reaps the dead process (will-reaper.ts) closes that: it reads the ids of the messages stored in
 * the dead process's gateways from shortly before its lease's last write (`IN_DOUBT_BEFORE_DEATH_MS`) to now, and every
 * one that is a store of one of the dead process's sessions under the id its record determines, not named received,
 * is written into that record as received. A resend of it, at any time, is then answered PUBREC with no second store
 * [MQTT-4.3.3-10], and its PUBREL with PUBCOMP.
 */
import { isPacketId, type SessionState } from './session-records.ts';

/**
 * How long before a dead process's last lease write a store of its can still lack its `received` write: the write is
 * made within a second of the store's ack and fails after NATS's request timeout (5 s), a session's writes one after
 * the other; the rest is margin. Counted from the lease write's NATS server time (`DeadLease.writtenAt`), the clock of
 * the stream's times, so a node's clock ahead of the server's does not move the read past its stores.
 */
export const IN_DOUBT_BEFORE_DEATH_MS = 30_000;

interface EpochOf<K> {
  key: K;
  uses: Map<number, number>;
  received: Set<number>;
}

/** The dead process's sessions, by what their records determine; fed the stream's ids, it tells which stores landed. */
export class InDoubtStores<K> {
  /** Sessions by their store ids' epoch. */
  readonly #epochs = new Map<string, EpochOf<K>>();
  /** Ids the records list as `receiving` (written before their store: a new epoch's, or an id whose release failed to write). */
  readonly #named = new Map<string, { key: K; packetId: number }>();
  readonly #landed = new Map<K, Set<number>>();

  /**
   * A session of the dead process; false when its record determines no store id (nothing of it can be in doubt).
   * The record is read as data (another version of Gatehouse may have written it): entries of another shape are left
   * out, never a reason to stop the reap.
   */
  add(key: K, state: SessionState): boolean {
    let determined = false;
    for (const entry of listOf(state.receiving)) {
      if (!Array.isArray(entry) || !isPacketId(entry[0]) || typeof entry[1] !== 'string') continue;
      this.#named.set(entry[1], { key, packetId: entry[0] });
      determined = true;
    }
    if (typeof state.qos2Epoch === 'string' && state.qos2Epoch !== '') {
      const uses = new Map<number, number>();
      for (const entry of listOf(state.qos2Uses)) {
        if (Array.isArray(entry) && isPacketId(entry[0]) && Number.isSafeInteger(entry[1])) uses.set(entry[0], entry[1] as number);
      }
      this.#epochs.set(state.qos2Epoch, { key, uses, received: new Set(listOf(state.received).filter(isPacketId)) });
      determined = true;
    }
    return determined;
  }

  /** The id of a message the stream holds: a store of one of these sessions its record does not name as received, or not. */
  heard(msgId: string): void {
    const named = this.#named.get(msgId);
    if (named !== undefined) return this.#land(named.key, named.packetId);
    const id = parseStoreId(msgId);
    if (id === undefined) return;
    const session = this.#epochs.get(id.epoch);
    if (session === undefined || session.received.has(id.packetId)) return;
    // Fewer uses than the record's: an earlier message under that packet id, released (the record learnt the release
    // before its PUBCOMP left, and only then could the client reuse the id).
    if (id.uses !== (session.uses.get(id.packetId) ?? 0)) return;
    this.#land(session.key, id.packetId);
  }

  #land(key: K, packetId: number): void {
    let ids = this.#landed.get(key);
    if (ids === undefined) this.#landed.set(key, (ids = new Set()));
    ids.add(packetId);
  }

  /** The session's state with its landed stores named received (out of `receiving`); undefined when none of its landed. */
  settled(key: K, state: SessionState): { state: SessionState; landed: number } | undefined {
    const landed = this.#landed.get(key);
    if (landed === undefined) return undefined;
    const received = new Set([...listOf(state.received).filter(isPacketId), ...landed]);
    const receiving = listOf(state.receiving).filter((entry) => !(Array.isArray(entry) && landed.has(entry[0] as number))) as SessionState['receiving'];
    return { state: { ...state, receiving, received: [...received] }, landed: landed.size };
  }
}

/** A record's list, or none when it holds something else. */
function listOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value as unknown[] : [];
}

/**
 * An inbound QoS 2 store id, `<epoch>.<packet id>.<uses>` (session-states.ts); undefined for any other message id
 * (a QoS 1 store's `<process>.<n>`, or one of another shape).
 */
export function parseStoreId(msgId: string): { epoch: string; packetId: number; uses: number } | undefined {
  const last = msgId.lastIndexOf('.');
  const middle = msgId.lastIndexOf('.', last - 1);
  if (middle <= 0) return undefined;
  const packetId = Number(msgId.slice(middle + 1, last));
  const uses = Number(msgId.slice(last + 1));
  if (!isPacketId(packetId) || !Number.isSafeInteger(uses) || uses < 0) return undefined;
  return { epoch: msgId.slice(0, middle), packetId, uses };
}
