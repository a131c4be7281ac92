/**
 * Subscriptions and matching: a qlobber trie for filters, shared-subscription groups kept here
 * (qlobber sees `$share/...` as a literal), and the `$`-topic rule qlobber does not know.
 */
import { QlobberDedup } from 'qlobber';
import type { QoS } from '../mqtt/codec.ts';
import type { Session, Subscription } from './session.ts';
import { DEFAULT_BROKER_OPTIONS } from './options.ts';

/**
 * A `$share/{group}/{filter}` group: each message goes to one member [MQTT-4.8.2-2]. On a cluster node the
 * group's candidates are its members here and, once each, the other nodes holding members of it (`remotes`,
 * told by the cluster link): a pick that falls on another node sends the message there, and that node picks
 * among its own members. A group with members on this node only picks as a single process does.
 */
interface SharedGroup {
  readonly kind: 'group';
  readonly key: string;
  readonly group: string;
  readonly filter: string;
  readonly members: Subscription[];
  /** Other nodes (process instances) with members of this group; empty without a cluster. */
  remotes: readonly string[];
  /** The round robin over members here and other nodes (a message published here). */
  next: number;
  /**
   * The round robin over members here only, for a message whose pick (made on the node it was published on)
   * fell on this node: kept apart, or those picks would reset the rotation over the nodes.
   */
  nextLocal: number;
}

/** A shared group's pick that fell on another node: the message goes there for one of its members. */
export type RemotePick = (node: string, group: string, filter: string) => void;

/** The node picked for one shared group matching a message: null for this node, or another node's name. */
export interface SharedPick {
  group: string;
  filter: string;
  node: string | null;
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
  /** A shared group's pick: the member's subscription, naming the group and its filter (another member can be picked for it). */
  shared: Subscription | undefined;
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
  /**
   * Told when this node gets its first member of a shared group and when its last one goes (the cluster link
   * tells the other nodes); unset without a cluster.
   */
  onLocalGroup: ((group: string, filter: string, present: boolean) => void) | undefined;
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
    const group = this.#group(sub.group, sub.filter);
    group.members.push(sub);
    if (group.members.length === 1) this.onLocalGroup?.(group.group, group.filter, true);
  }

  #group(name: string, filter: string): SharedGroup {
    const key = `${name}\u0000${filter}`;
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = { kind: 'group', key, group: name, filter, members: [], remotes: [], next: 0, nextLocal: 0 };
      this.#groups.set(key, group);
      this.#trie.add(filter, group);
    }
    return group;
  }

  /** A group leaves the trie once it has no member here and no other node has any. */
  #dropIfEmpty(group: SharedGroup): void {
    if (group.members.length > 0 || group.remotes.length > 0) return;
    this.#groups.delete(group.key);
    this.#trie.remove(group.filter, group);
  }

  /**
   * The other nodes holding members of a shared group (the cluster link follows them): a message published
   * here goes to one candidate of the group, here or on one of those nodes.
   */
  setRemotes(name: string, filter: string, nodes: readonly string[]): void {
    const existing = this.#groups.get(`${name}\u0000${filter}`);
    if (existing === undefined && nodes.length === 0) return;
    this.#cache.clear();
    const group = existing ?? this.#group(name, filter);
    group.remotes = nodes;
    group.next = 0;
    this.#dropIfEmpty(group);
  }

  /**
   * A shared group's next candidate, for a message picked again (the node it went to died or had no member
   * left): a member here, or another node's name; never `avoid`. Undefined: nobody else to pick.
   */
  pick(name: string, filter: string, avoid: string): Delivery | string | undefined {
    const group = this.#groups.get(`${name}\u0000${filter}`);
    if (group === undefined) return undefined;
    // Round robin: at most one turn lands on `avoid` before every other candidate had one.
    for (let i = 0; i < 2; i++) {
      const sub = pickMember(group, true);
      if (sub === undefined) return undefined;
      if (typeof sub !== 'string') return deliveryOf(sub);
      if (sub !== avoid) return sub;
    }
    return undefined;
  }

  /**
   * One member here of a shared group, for a message another node sent to this group (its pick fell on this
   * node); undefined when none is left.
   */
  /**
   * Another member here of a shared group, for a message `except`'s session never got (its session ended, its
   * queue refused it): round robin, skipping that session and members whose session ended.
   */
  pickOther(name: string, filter: string, except: Session): Delivery | undefined {
    const group = this.#groups.get(`${name}\u0000${filter}`);
    if (group === undefined) return undefined;
    for (let i = 0; i < group.members.length; i++) {
      const sub = pickMember(group, false);
      if (sub === undefined || typeof sub === 'string') return undefined;
      if (sub.session !== except && sub.retired !== true) return deliveryOf(sub);
    }
    return undefined;
  }

  pickLocal(name: string, filter: string): Delivery | undefined {
    const group = this.#groups.get(`${name}\u0000${filter}`);
    if (group === undefined) return undefined;
    const sub = pickMember(group, false);
    return sub === undefined || typeof sub === 'string' ? undefined : deliveryOf(sub);
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
    const group = this.#groups.get(`${sub.group}\u0000${sub.filter}`)!;
    group.members.splice(group.members.indexOf(sub), 1);
    if (group.members.length > 0) return;
    this.onLocalGroup?.(group.group, group.filter, false);
    this.#dropIfEmpty(group);
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
   * `remote`: a cluster node publishing (a group's pick may fall on another node, which is told through it);
   * null: the message was published on another node, which picked every shared group's member itself, so
   * only the non-shared subscriptions here get it; undefined: a single process.
   */
  match(topic: string, senderId: string, remote?: RemotePick | null): Delivery[] {
    const entries = this.#entries(topic);
    const out: Delivery[] = [];
    const dollar = topic.charCodeAt(0) === 0x24;
    let bySession: Map<Session, Delivery> | undefined;
    for (const entry of entries) {
      // A filter starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1].
      if (dollar && (entry.filter.charCodeAt(0) === 0x2b || entry.filter.charCodeAt(0) === 0x23)) continue;
      let sub: Subscription | string | undefined;
      if ('kind' in entry) {
        if (remote === null) continue;
        sub = pickMember(entry, remote !== undefined);
        if (typeof sub === 'string') {
          remote!(sub, entry.group, entry.filter);
          continue;
        }
      } else {
        sub = entry;
      }
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

  #entries(topic: string): Entry[] {
    let entries = this.#cache.get(topic);
    if (entries === undefined) {
      entries = [...this.#trie.match(topic)];
      if (this.#cache.size >= this.#cacheSize) this.#cache.clear();
      this.#cache.set(topic, entries);
    }
    return entries;
  }

  /**
   * A cluster node's QoS 1/2 message (issue 16 item 2) reaches every node from the cluster's stream, so the node
   * it is published on picks each matching shared group's member (here, or another node holding members) before
   * storing it, and only the picked node delivers it to that group: one member in the whole cluster [MQTT-4.8.2-2].
   * Empty when no shared group matches.
   */
  sharedPicks(topic: string): SharedPick[] {
    const picks: SharedPick[] = [];
    const dollar = topic.charCodeAt(0) === 0x24;
    for (const entry of this.#entries(topic)) {
      if (!('kind' in entry)) continue;
      // A filter starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1].
      if (dollar && (entry.filter.charCodeAt(0) === 0x2b || entry.filter.charCodeAt(0) === 0x23)) continue;
      const sub = pickMember(entry, true);
      if (sub === undefined || (typeof sub !== 'string' && sub.retired === true)) continue;
      picks.push({ group: entry.group, filter: entry.filter, node: typeof sub === 'string' ? sub : null });
    }
    return picks;
  }
}

function deliveryOf(sub: Subscription): Delivery {
  return {
    session: sub.session,
    qos: sub.qos,
    retainAsPublished: sub.retainAsPublished,
    subIds: sub.subscriptionId === undefined ? undefined : [sub.subscriptionId],
    // Always present (one shape for every delivery): the matching loop stays monomorphic.
    shared: sub.group === undefined ? undefined : sub, // no object per match: the subscription names both
  };
}

/**
 * Round robin over the group, preferring members whose client is connected; with `remotes`, the other nodes
 * holding members are candidates too (one turn each, taken as connected: that node picks among its own), and
 * a pick that falls on one returns its name.
 */
function pickMember(group: SharedGroup, remotes: boolean): Subscription | string | undefined {
  // An empty group (emptied by the retirement sweep while its answer was cached) has nobody to pick.
  const local = group.members.length;
  const n = remotes ? local + group.remotes.length : local;
  const start = remotes ? group.next : group.nextLocal;
  const advance = (at: number, of: number): void => {
    if (remotes) group.next = (at + 1) % of;
    else group.nextLocal = (at + 1) % of;
  };
  for (let i = 0; i < n; i++) {
    const at = (start + i) % n;
    if (at >= local) {
      advance(at, n);
      return group.remotes[at - local]!;
    }
    const sub = group.members[at]!;
    if (sub.session.link !== null && sub.retired !== true) {
      advance(at, n);
      return sub;
    }
  }
  // Nobody online (nor another node): queue on the next persistent member (a retired one is gone, whatever the trie still holds).
  for (let i = 0; i < local; i++) {
    const at = (start + i) % local;
    const sub = group.members[at]!;
    if (sub.retired !== true) {
      advance(at, local);
      return sub;
    }
  }
  return undefined;
}
