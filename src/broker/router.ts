/**
 * Subscriptions and matching: a qlobber trie for filters, shared-subscription groups kept here
 * (qlobber sees `$share/...` as a literal), and the `$`-topic rule qlobber does not know.
 */
import { QlobberDedup } from 'qlobber';
import type { QoS } from '../mqtt/codec.ts';
import type { Session, Subscription } from './session.ts';
import { DEFAULT_BROKER_OPTIONS } from './options.ts';

/** A `$share/{group}/{filter}` group: each message goes to one member [MQTT-4.8.2-?]. */
interface SharedGroup {
  readonly kind: 'group';
  readonly key: string;
  readonly filter: string;
  readonly members: Subscription[];
  next: number;
}

type Entry = Subscription | SharedGroup;

/** Topics whose trie answers are kept: a publisher sending to ever new topics must not grow it without end. */
export const MATCH_CACHE_SIZE = 10_000;

/** How long one turn may spend taking retired subscriptions out of the trie. */
const RETIRE_BUDGET_MS = 2;

/** One delivery: a session and the merged options of all its subscriptions that matched. */
export interface Delivery {
  session: Session;
  qos: QoS;
  retainAsPublished: boolean;
  subIds: number[] | undefined;
}

export class Router {
  readonly #trie: QlobberDedup<Entry>;
  readonly #groups = new Map<string, SharedGroup>();
  /**
   * Trie answers per topic. Devices publish to a small set of topics over and over, and matching
   * (splitting the topic, walking the trie) was the router's main cost; any subscription change clears it.
   */
  readonly #cache = new Map<string, Entry[]>();
  readonly #cacheSize: number;
  /**
   * The subscriptions held (retired ones leave it at once), so that adding one twice, or removing or
   * retiring one that is not here, changes nothing: the count followed every call, and a shared group
   * took the same member twice.
   */
  readonly #subscriptions = new Set<Subscription>();
  /** Subscriptions of ended sessions still in the trie, taken out a slice per turn (see `retire`). */
  #retiring: Subscription[] = [];
  #retiringAt = 0;
  #sweep: NodeJS.Immediate | undefined;

  /**
   * @param maxLevels deepest topic the engine lets through: the trie throws on deeper ones ('too many
   * words', 100 by default), so its limit is the engine's.
   * @param cacheSize topics whose answers are kept (MATCH_CACHE_SIZE; smaller in tests).
   */
  constructor(maxLevels = DEFAULT_BROKER_OPTIONS.maxTopicLevels, cacheSize = MATCH_CACHE_SIZE) {
    this.#trie = new QlobberDedup<Entry>({
      separator: '/',
      wildcard_one: '+',
      wildcard_some: '#',
      match_empty_levels: true,
      max_words: maxLevels,
    });
    this.#cacheSize = cacheSize;
  }

  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  /** Topics whose answers are cached (for the bound's test). */
  get cachedTopics(): number {
    return this.#cache.size;
  }

  add(sub: Subscription): void {
    if (this.#subscriptions.has(sub)) return;
    this.#subscriptions.add(sub);
    this.#cache.clear();
    if (sub.group === undefined) {
      this.#trie.add(sub.filter, sub);
      return;
    }
    const key = `${sub.group}\u0000${sub.filter}`;
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = { kind: 'group', key, filter: sub.filter, members: [], next: 0 };
      this.#groups.set(key, group);
      this.#trie.add(sub.filter, group);
    }
    group.members.push(sub);
  }

  remove(sub: Subscription): void {
    if (!this.#subscriptions.delete(sub)) return;
    this.#cache.clear();
    this.#detach(sub);
  }

  /** Takes a subscription that was held (removed, or retired) out of the trie, once. */
  #detach(sub: Subscription): void {
    if (sub.group === undefined) {
      this.#trie.remove(sub.filter, sub);
      return;
    }
    // It was held, so its group exists and has it as a member.
    const key = `${sub.group}\u0000${sub.filter}`;
    const group = this.#groups.get(key)!;
    group.members.splice(group.members.indexOf(sub), 1);
    // A group leaves the trie with its last member.
    if (group.members.length === 0) {
      this.#groups.delete(key);
      this.#trie.remove(sub.filter, group);
    }
  }

  /**
   * Takes an ended session's subscriptions out of matching at once, and out of the trie a slice per
   * event-loop turn (at most RETIRE_BUDGET_MS each). A trie removal costs microseconds, but a session
   * holds up to 1,000 filters and a fleet drops its connections together: 1,000 such sessions closing
   * in one poll phase held the event loop for seconds (`npm run bench:abuse`, subscribers-1000 then
   * the next phase), every other gateway's PINGs waiting behind. Until its removal a retired
   * subscription is still in the trie, and `match` skips it.
   */
  retire(subs: Iterable<Subscription>): void {
    const before = this.#retiring.length;
    for (const sub of subs) {
      if (!this.#subscriptions.delete(sub)) continue; // not held (never added, removed, retired already): nothing to retire
      sub.retired = true;
      this.#retiring.push(sub);
    }
    // The match cache may keep answers naming these: `match` skips them, and the sweep's end clears it.
    if (this.#retiring.length === before) return;
    this.#sweep ??= setImmediate(() => this.#removeRetired());
  }

  /** Subscriptions retired but not yet out of the trie (for tests and metrics). */
  get retiring(): number {
    return this.#retiring.length - this.#retiringAt;
  }

  /** Removes every retired subscription now (at shutdown, or in tests). */
  drainRetired(): void {
    clearImmediate(this.#sweep);
    this.#removeRetired(Number.POSITIVE_INFINITY);
  }

  #removeRetired(budgetMs = RETIRE_BUDGET_MS): void {
    this.#sweep = undefined;
    const until = performance.now() + budgetMs;
    const list = this.#retiring;
    let i = this.#retiringAt;
    // The clock read per removal costs tens of nanoseconds; a removal, microseconds.
    while (i < list.length && performance.now() < until) this.#detach(list[i++]!);
    this.#retiringAt = i;
    if (i < list.length) {
      this.#sweep = setImmediate(() => this.#removeRetired());
      return;
    }
    this.#retiring = [];
    this.#retiringAt = 0;
    // Answers cached while the sweep ran may name retired subscriptions (`match` skips them) and groups
    // it emptied (nobody to pick): kept, they would keep the ended sessions alive.
    this.#cache.clear();
  }

  /**
   * Who gets a message on `topic`. A client with overlapping subscriptions gets one copy at the
   * highest granted QoS carrying every matching Subscription Identifier [MQTT-3.3.4-2, MQTT-3.3.4-3].
   */
  match(topic: string, senderId: string): Delivery[] {
    let entries = this.#cache.get(topic);
    if (entries === undefined) {
      entries = [...this.#trie.match(topic)];
      if (this.#cache.size >= this.#cacheSize) this.#cache.clear();
      this.#cache.set(topic, entries);
    }
    const out: Delivery[] = [];
    const dollar = topic.charCodeAt(0) === 0x24;
    let bySession: Map<Session, Delivery> | undefined;
    for (const entry of entries) {
      // A filter starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1].
      if (dollar && (entry.filter.charCodeAt(0) === 0x2b || entry.filter.charCodeAt(0) === 0x23)) continue;
      const sub = 'kind' in entry ? pickMember(entry) : entry;
      if (sub === undefined || sub.retired === true) continue;
      // No Local: not back to the publisher's own session [MQTT-3.8.3-3].
      if (sub.noLocal && sub.group === undefined && sub.session.clientId === senderId) continue;
      // Each shared group delivers its own copy; only non-shared overlaps are merged.
      if (entries.length === 1 || sub.group !== undefined) {
        out.push(deliveryOf(sub));
        continue;
      }
      bySession ??= new Map();
      const existing = bySession.get(sub.session);
      if (existing === undefined) {
        const d = deliveryOf(sub);
        bySession.set(sub.session, d);
        out.push(d);
      } else {
        existing.qos = Math.max(existing.qos, sub.qos) as QoS;
        existing.retainAsPublished ||= sub.retainAsPublished;
        if (sub.subscriptionId !== undefined) (existing.subIds ??= []).push(sub.subscriptionId);
      }
    }
    return out;
  }
}

function deliveryOf(sub: Subscription): Delivery {
  return {
    session: sub.session,
    qos: sub.qos,
    retainAsPublished: sub.retainAsPublished,
    subIds: sub.subscriptionId === undefined ? undefined : [sub.subscriptionId],
  };
}

/** Round robin over the group, preferring members whose client is connected. */
function pickMember(group: SharedGroup): Subscription | undefined {
  // An empty group (emptied by the retirement sweep while its answer was cached) has nobody to pick.
  const n = group.members.length;
  for (let i = 0; i < n; i++) {
    const sub = group.members[(group.next + i) % n]!;
    if (sub.session.link !== null && sub.retired !== true) {
      group.next = (group.next + i + 1) % n;
      return sub;
    }
  }
  // Nobody online: queue on the next persistent member (a retired one is gone, whatever the trie still holds).
  for (let i = 0; i < n; i++) {
    const sub = group.members[(group.next + i) % n]!;
    if (sub.retired !== true) {
      group.next = (group.next + i + 1) % n;
      return sub;
    }
  }
  return undefined;
}
