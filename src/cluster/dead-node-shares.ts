/**
 * A dead node's shared groups' messages (issue 16 item 5): "If the Client's Session terminates before the Client
 * reconnects, the Server SHOULD send the Application Message to another Client that is subscribed to the same Shared
 * Subscription" (MQTT 5 §4.8.2). A QoS 1/2 message is picked once, by the node it is published on, and the pick
 * travels in the stored message's header (durable-messages.ts); the publishing node keeps a pick of another node and
 * picks again if that node dies first (shared-groups.ts). Two picks have no keeper left when their node dies: one the
 * dead node published and picked itself, and one whose keeper died too. The survivor that reaps the dead process
 * (will-reaper.ts) picks those again, from what the dead node's lease said at its last renewal (`SharesHeld`, per
 * gateway):
 *
 * - `held`: the stored messages whose QoS 1 delivery to one of its members was not completed (no PUBACK yet): picked
 *   again. At most MAX_HELD_REPORTED a gateway and MAX_HELD_REPORTED_IN_ALL in the lease; beyond, the lowest of them
 *   becomes `from` (more duplicates, no loss).
 * - `from`: the first stored message not yet handed to its members. From there on a QoS 1 message picked for it is
 *   picked again (handed after that renewal and completed, it is a duplicate, which QoS 1 allows). A QoS 2 message is
 *   picked again only if stored a heartbeat after the lease's last write (NATS server time, the stream's clock): by
 *   then the node had stopped renewing, and it cannot have been handed to a member, whose delivery MUST NOT go to
 *   another member [MQTT-4.8.2-4, MQTT-4.8.2-5]. One stored in between is left: a member there may be completing it.
 * - below `from` and not held: handed and completed (QoS 0 and 2 complete at the hand-over, QoS 1 at its PUBACK).
 *
 * The read is headers only (MessageStream.headersFrom), from the lowest of those sequences to the stream's end; only
 * a message picked again is read whole. Once per death, on one survivor.
 */
import type { Message } from '../broker/index.ts';
import type { Logger } from '../core/logger.ts';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { DeadLease } from './node-leases.ts';

/** Per gateway: the first stored sequence not yet handed to the node's members, and those whose QoS 1 delivery is open. */
export type SharesHeld = Record<string, { from: number; held: number[] }>;

/** Sequences a lease lists per gateway (≈ 10 bytes each); beyond, only a floor. */
export const MAX_HELD_REPORTED = 256;
/** Sequences a lease lists in all (its gateways together): a lease stays a few KiB; beyond, floors. */
export const MAX_HELD_REPORTED_IN_ALL = 2_048;
/** Messages one reap picks again at most (each read whole from the stream); beyond, counted undeliverable and logged. */
export const MAX_REPICKED = 100_000;

/** A gateway's part of a lease: `from` (Infinity: no feed runs) and the open sequences, at most `room` of them. */
export function heldOf(from: number, held: Iterable<number>, room = MAX_HELD_REPORTED): { from: number; held: number[] } {
  const seqs = [...held];
  if (seqs.length <= Math.min(room, MAX_HELD_REPORTED)) return { from: Number.isFinite(from) ? from : 0, held: seqs };
  // Too many to list: everything from the lowest open one on is picked again (duplicates at QoS 1, nothing lost).
  let lowest = from;
  for (const seq of seqs) if (seq < lowest) lowest = seq;
  return { from: lowest, held: [] };
}

/** One shared group's pick as the stored message's header holds it (durable-messages.ts). */
export type StoredPick = [group: string, filter: string, node: string, reply?: string];

/** What a reap needs of the node: the stream's headers and messages, the picks' reading, and the gateways' engines. */
export interface DeadSharesDeps {
  headersFrom(gatewayId: string, fromSeq: number, each: (seq: number, headers: MsgHdrs | undefined, storedAtMs: number) => void): Promise<number>;
  read(seq: number): Promise<Message | null>;
  picksOf(headers: MsgHdrs | undefined): StoredPick[];
  keeperOf(reply: string): string;
  /** Whether a node process is alive (its lease renewed). */
  alive(instance: string): boolean;
  /** Picks the message again for the gateway's group, `avoid` left out; false: nobody to pick (or not running here). */
  reshare(gatewayId: string, group: string, filter: string, message: Message, avoid: string): boolean;
  counted(gatewayId: string, repicked: boolean): void;
  logger: Logger;
  heartbeatMs: number;
}

/** Whether a message picked for the dead node is picked again (see the module's comment). */
export function pickAgain(seq: number, qos: number, storedAtMs: number, share: { from: number; held: ReadonlySet<number> },
  dead: Pick<DeadLease, 'writtenAt'>, heartbeatMs: number): boolean {
  if (share.held.has(seq)) return true;
  if (share.from === 0 || seq < share.from) return false;
  if (qos !== 2) return true;
  return storedAtMs > dead.writtenAt + heartbeatMs;
}

/** A stored message to read whole: the groups whose pick named the dead process and nobody keeps. */
interface Candidate {
  seq: number;
  storedAtMs: number;
  groups: [group: string, filter: string][];
}

/** Picks again the dead process's shared groups' messages that nobody else will; resolves with how many. */
export async function repickDeadShares(dead: DeadLease, deps: DeadSharesDeps): Promise<{ repicked: number; left: number }> {
  let repicked = 0;
  let left = 0;
  for (const [gatewayId, part] of Object.entries(dead.shares ?? {})) {
    const share = readShare(part);
    if (share === null) continue;
    const start = Math.min(share.from === 0 ? Infinity : share.from, ...share.held);
    if (!Number.isFinite(start)) continue;
    const candidates: Candidate[] = [];
    let over = 0;
    try {
      await deps.headersFrom(gatewayId, start, (seq, headers, storedAtMs) => {
        // Handed and completed there: not read at all.
        if (!share.held.has(seq) && (share.from === 0 || seq < share.from)) return;
        let picks: StoredPick[];
        try {
          picks = deps.picksOf(headers);
        } catch {
          return; // the feed logged it when it handed the message
        }
        const groups: [string, string][] = [];
        for (const [group, filter, node, reply] of picks) {
          if (node !== dead.instance) continue;
          // Its keeper alive picks it again itself (SharedRelay.nodesDead).
          if (reply !== undefined && deps.alive(deps.keeperOf(reply))) continue;
          groups.push([group, filter]);
        }
        if (groups.length === 0) return;
        if (candidates.length < MAX_REPICKED) candidates.push({ seq, storedAtMs, groups });
        else over += groups.length;
      });
    } catch (err) {
      deps.logger.warn({ err, gatewayId, deadInstance: dead.instance }, 'cluster_dead_shares_unread');
      continue;
    }
    for (let i = 0; i < over; i++) deps.counted(gatewayId, false);
    left += over;
    for (const c of candidates) {
      let message: Message | null;
      try {
        message = await deps.read(c.seq);
      } catch (err) {
        deps.logger.warn({ err, gatewayId, seq: c.seq }, 'cluster_dead_shares_unread');
        message = null;
      }
      for (const [group, filter] of c.groups) {
        if (message !== null && !pickAgain(c.seq, message.qos, c.storedAtMs, share, dead, deps.heartbeatMs)) continue;
        // Null: the stream's limits removed it meanwhile.
        const placed = message !== null && deps.reshare(gatewayId, group, filter, message, dead.instance);
        deps.counted(gatewayId, placed);
        if (placed) repicked++;
        else left++;
      }
    }
  }
  if (repicked + left > 0) deps.logger.info({ deadInstance: dead.instance, repicked, left }, 'cluster_dead_shares_repicked');
  return { repicked, left };
}

/** A gateway's part of a lease, read as data (a lease of another version, or odd, is skipped). */
function readShare(part: unknown): { from: number; held: ReadonlySet<number> } | null {
  if (typeof part !== 'object' || part === null) return null;
  const { from, held } = part as { from?: unknown; held?: unknown };
  if (typeof from !== 'number' || !(from >= 0) || !Array.isArray(held)) return null;
  const seqs = held.filter((seq): seq is number => Number.isSafeInteger(seq) && seq > 0).slice(0, MAX_HELD_REPORTED);
  return { from: Number.isSafeInteger(from) ? from : 0, held: new Set(seqs) };
}
