/**
 * A session's topic access control: the gateway's rules (after any a third-party answer carried for
 * this device) with their placeholders filled once at CONNECT, then matched per packet. PUBLISH
 * decisions are cached per topic name, so a device publishing on the same few topics pays one Map
 * lookup per message.
 */
import { parseAclTopic, type AclAction, type AclLevel, type AclPlaceholder, type AclRule } from '../../registry/access-control.ts';

/** The values the placeholders take for one session; undefined = the session has none (e.g. no certificate). */
export type AclValues = Readonly<Record<AclPlaceholder, string | undefined>>;

interface CompiledRule {
  allow: boolean;
  publish: boolean;
  subscribe: boolean;
  /** The filled filter, split at '/'. */
  levels: string[];
}

/** Topics remembered per session; beyond it the cache starts again (a device cycling through topics). */
const PUBLISH_CACHE_SIZE = 256;

export class SessionAcl {
  readonly #rules: CompiledRule[];
  readonly #defaultAllow: boolean;
  readonly #published = new Map<string, boolean>();

  constructor(rules: readonly CompiledRule[], defaultAction: AclAction) {
    this.#rules = rules.slice();
    this.#defaultAllow = defaultAction === 'ALLOW';
  }

  /** True when nothing can be refused: the hot path skips the hook's work. */
  get allowsEverything(): boolean {
    return this.#defaultAllow && this.#rules.every((r) => r.allow);
  }

  /** May this session publish on `topic` (a topic name)? The first PUBLISH/ALL rule matching it decides. */
  canPublish(topic: string): boolean {
    const cached = this.#published.get(topic);
    if (cached !== undefined) return cached;
    const levels = topic.split('/');
    let verdict = this.#defaultAllow;
    for (const rule of this.#rules) {
      if (rule.publish && matches(rule.levels, levels)) {
        verdict = rule.allow;
        break;
      }
    }
    if (this.#published.size >= PUBLISH_CACHE_SIZE) this.#published.clear();
    this.#published.set(topic, verdict);
    return verdict;
  }

  /**
   * May this session subscribe to `filter` (without any `$share/<group>/` prefix)? An ALLOW rule decides
   * only when its filter covers every topic the requested one can match; a DENY rule decides as soon as
   * the two can match a common topic. So `devices/${deviceName}/#` allows `devices/d1/+/t` for d1 but not
   * `devices/+/t`, and a DENY on `devices/+/secret` refuses `devices/#` — no delivery ever needs checking.
   */
  canSubscribe(filter: string): boolean {
    const levels = filter.split('/');
    for (const rule of this.#rules) {
      if (!rule.subscribe) continue;
      if (rule.allow ? covers(rule.levels, levels) : intersects(rule.levels, levels)) return rule.allow;
    }
    return this.#defaultAllow;
  }
}

/**
 * Fills the rules' placeholders for one session. A placeholder whose value is missing, empty or holds
 * '+', '#' or '/' would widen or shift the filter: that rule never matches this session.
 */
export function compileSessionAcl(rules: readonly AclRule[], defaultAction: AclAction, values: AclValues): SessionAcl {
  const compiled: CompiledRule[] = [];
  for (const rule of rules) {
    const levels: string[] = [];
    let usable = true;
    for (const level of parsedTopic(rule)) {
      if ('literal' in level) {
        levels.push(level.literal);
        continue;
      }
      const value = values[level.placeholder];
      if (value === undefined || value === '' || /[+#/]/.test(value)) {
        usable = false;
        break;
      }
      levels.push(value);
    }
    if (!usable) continue;
    compiled.push({
      allow: rule.action === 'ALLOW',
      publish: rule.access !== 'SUBSCRIBE',
      subscribe: rule.access !== 'PUBLISH',
      levels,
    });
  }
  return new SessionAcl(compiled, defaultAction);
}

/**
 * A rule's topic, parsed once per rule object: every session of a gateway compiles the same rule objects
 * (and a cached third-party accept hands out the same ones again), so a rule edit that recompiles every
 * session of a large fleet, or a reconnect storm, does not parse each rule once per session.
 */
const parsedTopics = new WeakMap<AclRule, readonly AclLevel[]>();

function parsedTopic(rule: AclRule): readonly AclLevel[] {
  let levels = parsedTopics.get(rule);
  if (levels === undefined) parsedTopics.set(rule, (levels = parseAclTopic(rule.topic, 'topic')));
  return levels;
}

/**
 * Does the rule filter match the topic name? Unlike subscription matching, '#' and '+' here also cover
 * `$`-topics [MQTT-4.7.2-1 is about delivery, not authority]: a DENY on '#' must refuse `$x` too.
 */
function matches(rule: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < rule.length; i++) {
    const r = rule[i];
    if (r === '#') return true; // also the parent level [MQTT-4.7.1-2]
    if (i >= topic.length) return false;
    if (r !== '+' && r !== topic[i]) return false;
  }
  return rule.length === topic.length;
}

/** Is every topic `filter` can match also matched by `rule`? */
export function covers(rule: readonly string[], filter: readonly string[]): boolean {
  for (let i = 0; i < rule.length; i++) {
    const r = rule[i]!;
    if (r === '#') return true;
    if (i >= filter.length) return false;
    const f = filter[i]!;
    if (f === '#') return false; // the filter reaches deeper than a rule without '#'
    if (r === '+') continue;
    if (f === '+' || f !== r) return false;
  }
  return rule.length === filter.length;
}

/** Can some topic match both filters? */
export function intersects(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#' || y === '#') return true;
    if (x === undefined || y === undefined) return false;
    if (x !== '+' && y !== '+' && x !== y) return false;
  }
  return true;
}
