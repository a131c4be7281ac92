/**
 * Topic access control of a gateway (issue 13): `{ defaultAction, rules: [{ action, access, topic }] }`.
 * The rule topic is a topic filter whose levels may be one of a closed set of placeholders, filled per
 * session at CONNECT. This module parses and checks rules (the registry's save, a third-party answer);
 * `src/gateway/acl/` compiles and matches them on the data plane.
 */
import { GatehouseError, type ErrorCode } from '../core/errors.ts';

export type AclAction = 'ALLOW' | 'DENY';
export type AclAccess = 'PUBLISH' | 'SUBSCRIBE' | 'ALL';

export interface AclRule {
  action: AclAction;
  access: AclAccess;
  /** A topic filter; a level may be exactly one of `ACL_PLACEHOLDERS` as `${name}`. */
  topic: string;
}

export interface AccessControl {
  /** What applies when no rule does. */
  defaultAction: AclAction;
  /** Read in order; the first rule that applies decides. */
  rules: AclRule[];
}

export const ACL_ACTIONS: readonly AclAction[] = ['ALLOW', 'DENY'];
export const ACL_ACCESSES: readonly AclAccess[] = ['PUBLISH', 'SUBSCRIBE', 'ALL'];
export const ACL_PLACEHOLDERS = ['deviceName', 'username', 'clientId', 'productKey', 'cert.cn'] as const;
export type AclPlaceholder = (typeof ACL_PLACEHOLDERS)[number];
/** Bounds a session's work per packet and the size of a gateway record. */
export const MAX_ACL_RULES = 100;
export const MAX_ACL_TOPIC_LENGTH = 256;

/** Default for new gateways and gateways stored before access control existed: firmware that cannot change keeps working. */
export const DEFAULT_ACCESS_CONTROL: AccessControl = { defaultAction: 'ALLOW', rules: [] };

/** The console's one-click template: each device publishes and subscribes only under `devices/<its name>/`. */
export const PER_DEVICE_TEMPLATE: AccessControl = {
  defaultAction: 'DENY',
  rules: [{ action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' }],
};

/** One level of a parsed rule topic: literal text (`+` and `#` included) or a placeholder. */
export type AclLevel = { literal: string } | { placeholder: AclPlaceholder };

function fail(code: ErrorCode, field: string, message: string): never {
  throw new GatehouseError(code, message, field);
}

/**
 * Splits a rule topic into levels. A placeholder fills a whole level (`devices/${deviceName}/#`);
 * `dev-${deviceName}` is refused rather than half-supported. Throws GW_ERR_ACL_TOPIC_INVALID /
 * GW_ERR_ACL_PLACEHOLDER_UNKNOWN naming `field`.
 */
export function parseAclTopic(topic: unknown, field: string): AclLevel[] {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_ACL_TOPIC_LENGTH) {
    fail('GW_ERR_ACL_TOPIC_INVALID', field, `${field} must be a topic filter of 1-${MAX_ACL_TOPIC_LENGTH} characters`);
  }
  if (topic.startsWith('$share/')) fail('GW_ERR_ACL_TOPIC_INVALID', field, `${field}: write the filter without $share/<group>/ (shared subscriptions are checked on their filter)`);
  const parts = topic.split('/');
  return parts.map((level, i): AclLevel => {
    if (level.includes('\u0000')) fail('GW_ERR_ACL_TOPIC_INVALID', field, `${field} contains U+0000`);
    if (level.includes('${')) {
      const name = /^\$\{([^}]*)\}$/.exec(level)?.[1];
      if (name === undefined) fail('GW_ERR_ACL_TOPIC_INVALID', field, `${field}: a placeholder must fill a whole level ("${level}")`);
      if (!(ACL_PLACEHOLDERS as readonly string[]).includes(name)) {
        fail('GW_ERR_ACL_PLACEHOLDER_UNKNOWN', field,
          `${field}: unknown placeholder \${${name}}; use ${ACL_PLACEHOLDERS.map((p) => `\${${p}}`).join(', ')}`);
      }
      return { placeholder: name as AclPlaceholder };
    }
    // [MQTT-4.7.1-1] '#' alone and last; [MQTT-4.7.1-2] '+' alone in its level.
    if (level.includes('#') && (level !== '#' || i !== parts.length - 1)) fail('GW_ERR_ACL_TOPIC_INVALID', field, `${field}: "#" must be the last level, alone`);
    if (level.includes('+') && level !== '+') fail('GW_ERR_ACL_TOPIC_INVALID', field, `${field}: "+" must fill a whole level`);
    return { literal: level };
  });
}

/** Checks a rule list (a gateway's, or one a third-party answer carried); returns a clean copy. */
export function checkAclRules(rules: unknown, field: string): AclRule[] {
  if (!Array.isArray(rules)) fail('GW_ERR_VALIDATION', field, `${field} must be an array`);
  if (rules.length > MAX_ACL_RULES) fail('GW_ERR_ACL_TOO_MANY_RULES', field, `${field} has ${rules.length} rules; at most ${MAX_ACL_RULES}`);
  return rules.map((rule: unknown, i): AclRule => {
    const at = `${field}[${i}]`;
    if (typeof rule !== 'object' || rule === null) fail('GW_ERR_VALIDATION', at, `${at} must be an object`);
    const { action, access, topic } = rule as Record<string, unknown>;
    if (!(ACL_ACTIONS as readonly unknown[]).includes(action)) fail('GW_ERR_ACL_ACTION_INVALID', `${at}.action`, `${at}.action must be ALLOW or DENY`);
    if (!(ACL_ACCESSES as readonly unknown[]).includes(access)) fail('GW_ERR_ACL_ACCESS_INVALID', `${at}.access`, `${at}.access must be PUBLISH, SUBSCRIBE or ALL`);
    parseAclTopic(topic, `${at}.topic`);
    return { action: action as AclAction, access: access as AclAccess, topic: topic as string };
  });
}

export function checkAccessControl(value: unknown, field = 'accessControl'): AccessControl {
  if (typeof value !== 'object' || value === null) fail('GW_ERR_VALIDATION', field, `${field} must be an object`);
  const { defaultAction, rules } = value as Record<string, unknown>;
  if (!(ACL_ACTIONS as readonly unknown[]).includes(defaultAction)) {
    fail('GW_ERR_ACL_ACTION_INVALID', `${field}.defaultAction`, `${field}.defaultAction must be ALLOW or DENY`);
  }
  return { defaultAction: defaultAction as AclAction, rules: checkAclRules(rules, `${field}.rules`) };
}
